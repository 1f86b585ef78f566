"""Make the guide's screenshot: one lesion of two explained in napari, in crop mode.

Needs a display; on a machine without one run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_roi.py

It builds the two-lesion phantom of ``benchmarks/roi.py`` with a box drawn around one
lesion in a Shapes layer, chooses that layer as the dock widget's region of interest with
crop mode, explains it with SegRISE and saves the window to ``docs/images/roi-lesion.png``.
"""

from __future__ import annotations

import sys

import numpy as np
from napari_shot import ROOT, box_around, run_to_end, save, shot_parser

sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    """Explain in the dock widget, show and save the screenshot; returns the exit status."""
    args = shot_parser(__doc__, "roi-lesion.png", 1000, (1280, 860)).parse_args(argv)

    import napari

    from maskscope.napari import explain_in_viewer
    from roi import LocalMean, two_lesions

    img, a, _ = two_lesions()
    z = int(np.argwhere(a).mean(0)[0])
    corners = box_around(a, z)
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
    snap = run_to_end(widget, viewer, args.timeout, "screenshot")
    if snap is None:
        return 1
    viewer.reset_view()
    viewer.dims.set_point(0, z)
    save(viewer, args.out)
    print(f"wrote {args.out}; window {snap.params['crop_window']}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
