"""The engine and the methods never import a GUI package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import maskscope

GUI = (
    "napari",
    "qtpy",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
    "magicgui",
    "ipywidgets",
    "superqt",
    "vispy",
    "matplotlib",
)
PKG = Path(maskscope.__file__).parent
CORE = ["_engine", "methods", "gui", "explanation.py", "render.py", "__init__.py"]


def test_importing_maskscope_loads_no_gui_package():
    code = (
        "import sys, maskscope, maskscope._engine, maskscope.methods, maskscope.render\n"
        "import maskscope.gui, maskscope.cli\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {GUI!r}]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_core_sources_have_no_gui_imports():
    files = []
    for entry in CORE:
        p = PKG / entry
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    assert len(files) > 10
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in GUI, f"{f} imports {n}"
