"""Make the guide's screenshot: one lesion of two explained in napari, in crop mode.

Needs a display; on a machine without one run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_roi.py

It builds the two-lesion phantom of ``benchmarks/roi.py``, explains the lesion under a box
drawn in a Shapes layer with SegRISE in crop mode, shows the volume, the prediction
(outlined), the box and the map, and saves ``docs/images/roi-lesion.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    """Explain, show and save the screenshot; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "roi-lesion.png")
    parser.add_argument("--n-masks", type=int, default=1000)
    parser.add_argument("--size", type=int, nargs=2, default=(1100, 760), metavar=("W", "H"))
    args = parser.parse_args(argv)

    import napari

    from maskscope import SegRISE
    from maskscope.napari._roi import roi_from_layer
    from roi import LocalMean, two_lesions

    img, a, _ = two_lesions()
    z = int(np.argwhere(a).mean(0)[0])
    ys, xs = np.nonzero(a[z])
    y0, y1, x0, x1 = ys.min() - 3, ys.max() + 3, xs.min() - 3, xs.max() + 3
    corners = np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], dtype=float)
    viewer = napari.Viewer(show=True, title="maskscope: one lesion")
    viewer.window._qt_window.resize(*args.size)
    viewer.add_image(img, name="phantom", colormap="gray")
    model = LocalMean()
    box = viewer.add_shapes(
        [corners],
        shape_type="rectangle",
        edge_color="yellow",
        face_color="transparent",
        edge_width=1,
        name="box",
    )
    roi = roi_from_layer(box, img.shape)
    expl = SegRISE(model).explain(img, roi=roi, crop=True, n_masks=args.n_masks, grid=8)
    pred = viewer.add_labels(expl.prediction.astype(np.int32), name="explained lesion")
    pred.contour = 1
    viewer.add_image(
        expl.map, name="SegRISE (crop)", colormap="inferno", opacity=0.6, blending="additive"
    )
    viewer.dims.set_point(0, z)
    viewer.reset_view()
    viewer.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out}; window {expl.params['crop_window']}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
