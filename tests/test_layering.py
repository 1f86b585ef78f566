"""Frontends, the command line and the docs' examples reach the engine only through the
public face (``maskscope``, ``maskscope.io``, ...) and ``maskscope.gui``."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import maskscope

PKG = Path(maskscope.__file__).parent
ROOT = PKG.parents[1]
PRIVATE = "maskscope._engine"

#: The modules that must not import the engine: both frontends and the command line.
FRONTENDS = [
    *sorted((PKG / "napari").rglob("*.py")),
    *sorted((PKG / "notebook").rglob("*.py")),
    PKG / "cli.py",
    PKG / "cli_evaluate.py",
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str = "__main__", is_package: bool = False) -> set[str]:
    """Every module a source imports, relative imports resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            out.add(base)
            out |= {f"{base}.{alias.name}" for alias in node.names}  # from x import submodule
    return out


def _private(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == PRIVATE or n.startswith(PRIVATE + "."))


def test_the_checker_sees_absolute_relative_and_submodule_imports():
    module = "maskscope.napari._widget"
    assert _private(imported_modules("from .._engine.loop import RunOptions", module))
    assert _private(imported_modules("from .. import _engine", module))
    assert _private(imported_modules("import maskscope._engine.cancel", module))
    assert _private(imported_modules("from ._engine import x", "maskscope.cli"))
    assert not _private(imported_modules("from ..gui import Session", module))
    assert not _private(imported_modules("from . import _engine_notes", "maskscope.cli"))


def test_frontend_files_are_listed():
    names = {p.name for p in FRONTENDS}
    assert {"_widget.py", "_form.py", "cli.py", "cli_evaluate.py"} <= names
    assert len(FRONTENDS) > 20


@pytest.mark.parametrize("path", FRONTENDS, ids=lambda p: str(p.relative_to(PKG)))
def test_frontends_and_cli_import_no_engine_module(path):
    names = imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py")
    assert _private(names) == [], f"{path.relative_to(PKG)} imports {_private(names)}"


def _code_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            blocks.append((f"{page.name}[{i}]", code))
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
            code = "".join(cell["source"])
            code = "\n".join(line for line in code.splitlines() if not line.startswith(("%", "!")))
            blocks.append((f"{nb.name}[{i}]", code))
    return blocks


def test_docs_have_python_examples():
    assert len(_code_blocks()) > 10


@pytest.mark.parametrize(("where", "code"), _code_blocks(), ids=lambda v: v[:40])
def test_docs_examples_import_no_engine_module(where, code):
    assert _private(imported_modules(code)) == [], f"{where} imports the engine"
