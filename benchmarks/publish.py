"""Where a run's report goes: plots (``plots.py``), and the tables into docs/benchmarks.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from common import HERE, ROOT

DOCS_START = "<!-- results:start (written by benchmarks/run.py) -->"
DOCS_END = "<!-- results:end -->"


def write_docs(report_md: str, out: Path, docs: Path | None = None) -> None:
    """Replace the results section of docs/benchmarks.md with the report; copy the plots."""
    docs = docs or ROOT / "docs" / "benchmarks.md"
    images = docs.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    for png in out.glob("bench-*.png"):
        shutil.copy(png, images / png.name)
    body = report_md.split("\n", 1)[1].lstrip("\n")  # drop the report's own title
    body = re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M)  # one level below the page title
    text = docs.read_text() if docs.exists() else f"# Benchmarks\n\n{DOCS_START}\n{DOCS_END}\n"
    if DOCS_START not in text:
        text += f"\n{DOCS_START}\n{DOCS_END}\n"
    head, rest = text.split(DOCS_START, 1)
    tail = rest.split(DOCS_END, 1)[1] if DOCS_END in rest else "\n"
    docs.write_text(f"{head}{DOCS_START}\n\n{body}\n{DOCS_END}{tail}")
    print(f"wrote {docs} and {images}/bench-*.png")


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the section of a markdown page that starts with ``heading``.

    The section runs to the next heading of the same level (or the end of the page).
    """
    level = heading.split(" ", 1)[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if heading in text:
        head, rest = text.split(heading, 1)
        nxt = re.search(rf"^{level} ", rest, flags=re.M)
        tail = rest[nxt.start() :] if nxt else ""
    else:
        head, tail = text.rstrip("\n") + "\n\n", ""
    section = f"{heading}\n\n{body.strip()}\n"
    path.write_text(head + section + ("\n" + tail if tail else ""))
    print(f"wrote {path}")


def plots(out: Path, peers_python: str | None) -> None:
    """Draw ``OUT/bench-*.png`` with matplotlib (the peers' venv's, or this one's)."""
    python = peers_python
    if python is None:
        try:
            import matplotlib  # noqa: F401

            python = sys.executable
        except ImportError:
            print("no matplotlib (peers' venv missing): plots skipped")
            return
    proc = subprocess.run(
        [python, str(HERE / "plots.py"), str(out / "results.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        print("plots failed:", proc.stderr[-800:])
