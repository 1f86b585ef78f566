"""Make the guide's screenshot: one lesion of two explained in napari, in crop mode.

Needs a display; on a machine without one run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_roi.py

It builds the two-lesion phantom of ``benchmarks/roi.py`` with a box drawn around one
lesion in a Shapes layer, chooses that layer as the dock widget's region of interest with
crop mode, explains it with SegRISE and saves the window to ``docs/images/roi-lesion.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    """Explain in the dock widget, show and save the screenshot; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "roi-lesion.png")
    parser.add_argument("--n-masks", type=int, default=1000)
    parser.add_argument("--size", type=int, nargs=2, default=(1280, 860), metavar=("W", "H"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from maskscope.napari import explain_in_viewer
    from roi import LocalMean, two_lesions

    img, a, _ = two_lesions()
    z = int(np.argwhere(a).mean(0)[0])
    ys, xs = np.nonzero(a[z])
    y0, y1, x0, x1 = ys.min() - 3, ys.max() + 3, xs.min() - 3, xs.max() + 3
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], dtype=float)
    viewer = napari.Viewer(show=True, title="maskscope: one lesion")
    viewer.window._qt_window.resize(*args.size)
    viewer.add_image(img, name="phantom", colormap="gray")
    viewer.add_shapes(
        [corners], shape_type="rectangle", edge_color="yellow", face_color="transparent",
        edge_width=1, name="box",
    )  # fmt: skip
    widget = explain_in_viewer(viewer, LocalMean(), method="SegRISE", n_masks=args.n_masks, grid=8)
    widget.inputs.set_normalization("none")  # the phantom is the model's input as it is
    widget.roi_panel.layer.setCurrentText("box")
    widget.roi_panel.crop.setCurrentIndex(widget.roi_panel.crop.findData(True))
    loop = QEventLoop()
    widget.run_finished.connect(lambda *_: loop.quit())
    QTimer.singleShot(int(args.timeout * 1000), loop.quit)
    if widget.run() is None:
        print(f"screenshot: the run did not start: {widget.status.text()}", file=sys.stderr)
        viewer.close()
        return 1
    loop.exec()
    snap = widget.last_snapshot
    if snap is None or not snap.done:
        print(f"screenshot: the run did not finish: {widget.status.text()}", file=sys.stderr)
        viewer.close()
        return 1
    viewer.reset_view()
    viewer.dims.set_point(0, z)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}; window {snap.params['crop_window']}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
