"""The documentation builds strictly, and every Python example in it runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text())


def test_mkdocs_build_is_strict_clean(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def test_there_are_examples_to_run():
    assert {"getting-started.md", "methods.md", "napari.md"} <= {p.name for p in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_docs_examples_run(page, tmp_path, monkeypatch, request):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    uses_napari = any("import napari" in b for b in blocks)
    if uses_napari:
        qtbot = request.getfixturevalue("qtbot")
        import napari

        monkeypatch.setattr(napari, "run", lambda *a, **k: None)
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{page.name}[{i}]", "exec"), namespace)
        if uses_napari and "widget" in namespace:
            widget = namespace["widget"]
            qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
            assert widget.last_snapshot is not None and widget.last_snapshot.done
    finally:
        viewer = namespace.get("viewer")
        if viewer is not None:
            viewer.close()
