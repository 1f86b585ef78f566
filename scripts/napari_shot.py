"""What the napari screenshot scripts share: their flags, a box, a run waited for, the save."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def shot_parser(doc: str, out: str, n_masks: int, size: tuple[int, int]) -> argparse.ArgumentParser:
    """``--out`` (``docs/images/<out>``), ``--n-masks``, ``--size W H`` and ``--timeout``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / out)
    parser.add_argument("--n-masks", type=int, default=n_masks)
    parser.add_argument("--size", type=int, nargs=2, default=size, metavar=("W", "H"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    return parser


def box_around(mask: np.ndarray, z: int, pad: int = 3) -> np.ndarray:
    """The corners of a rectangle around ``mask`` on slice ``z`` (a Shapes layer's box)."""
    ys, xs = np.nonzero(mask[z])
    y0, y1, x0, x1 = ys.min() - pad, ys.max() + pad, xs.min() - pad, xs.max() + pad
    return np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], dtype=float)


def run_to_end(widget: Any, viewer: Any, timeout: float, name: str) -> Any:
    """Click Run in the dock widget and wait for the run; its last snapshot, or None.

    On None the reason is printed (prefixed ``name``), the run cancelled and the viewer
    closed.
    """
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    widget.run_finished.connect(lambda *_: loop.quit())
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    if widget.run() is None:
        print(f"{name}: the run did not start: {widget.status.text()}", file=sys.stderr)
        viewer.close()
        return None
    loop.exec()
    snap = widget.last_snapshot
    if widget.worker is not None or snap is None or not snap.done:
        print(f"{name}: the run did not finish: {widget.status.text()}", file=sys.stderr)
        widget.cancel()
        viewer.close()
        return None
    return snap


def save(viewer: Any, out: Path) -> None:
    """Save the whole window to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(str(out), canvas_only=False, flash=False)
