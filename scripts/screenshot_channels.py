"""Make the guide's second screenshot: which channel matters, with a sliding-window model.

Needs a display; on a machine without one run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshot_channels.py

It builds the 4-channel phantom of ``benchmarks/roi.py`` (two lesions; only channel 2
carries them, the other channels are the same voxels shuffled) and a model that segments
from channel 2 by a local mean. In the dock widget: a box around one lesion in a Shapes
layer as the region of interest (crop off: the whole volume runs by sliding window), *a map
per input channel*, and the sliding-window fields (32-voxel patches, overlap 0.25, Gaussian
blending, 4 patches per call). It explains with SegRISE, shows channel 2's map and saves
the window to ``docs/images/roi-channels.png``.
Needs ``maskscope[monai]`` for the sliding window.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from napari_shot import ROOT, box_around, run_to_end, save, shot_parser

sys.path.insert(0, str(ROOT / "benchmarks"))


def phantom() -> tuple[np.ndarray, np.ndarray, torch.nn.Module]:
    """The 4-channel phantom, the explained lesion's mask and the channel-2 model."""
    from roi import LocalMean, two_lesions

    img0, a, _ = two_lesions((32, 48, 48))
    rng = np.random.default_rng(5)
    shuffled = [rng.permutation(img0.ravel()).reshape(img0.shape) for _ in range(3)]
    img = np.stack([shuffled[0], shuffled[1], img0, shuffled[2]]).astype(np.float32)
    model = LocalMean(in_channels=4)
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.weight[:, 2] = 1 / 125
    return img, a, model


def main(argv: list[str] | None = None) -> int:
    """Explain in the dock widget, show and save the screenshot; returns the exit status."""
    args = shot_parser(__doc__, "roi-channels.png", 500, (1280, 1000)).parse_args(argv)

    import napari

    from maskscope.napari import explain_in_viewer

    img, lesion, model = phantom()
    z = int(np.argwhere(lesion).mean(0)[0])
    viewer = napari.Viewer(show=True, title="maskscope: which channel matters")
    viewer.window._qt_window.resize(*args.size)
    layer = viewer.add_image(img, name="four", colormap="gray")
    viewer.add_shapes(
        [box_around(lesion, z)], shape_type="rectangle", edge_color="yellow",
        face_color="transparent", edge_width=1, name="box",
    )  # fmt: skip
    widget = explain_in_viewer(
        viewer, model, image=layer, method="SegRISE", n_masks=args.n_masks, grid=6,
        batch_size=8, patch_size=32, patch_overlap=0.25, patch_blend="gaussian", patch_batch=4,
    )  # fmt: skip
    widget.inputs.channel.setCurrentIndex(widget.inputs.channel.findData(0))
    widget.inputs.set_normalization("none")  # the phantom is the model's input as it is
    widget.roi_panel.layer.setCurrentText("box")
    widget.roi_panel.crop.setCurrentIndex(widget.roi_panel.crop.findData(False))  # whole volume
    widget.roi_panel.per_channel.setChecked(True)
    snap = run_to_end(widget, viewer, args.timeout, "screenshot")
    if snap is None:
        return 1
    for ly in viewer.layers:  # show channel 2's map instead of the channels' mean
        if ly.name.startswith("four SegRISE"):
            ly.visible = ly.name.endswith("channel-2")
            if ly.visible:
                viewer.layers.selection.active = ly
    viewer.reset_view()
    viewer.dims.set_point(0, 2)  # the image's channel 2 underneath
    viewer.dims.set_point(1, z)
    save(viewer, args.out)
    ranking = ", ".join(f"{r.channel} ({r.importance:+.4f})" for r in widget.roi_panel.ranking)
    params = {k: v for k, v in snap.params.items() if k.startswith("patch_")}
    print(f"wrote {args.out}; channels by importance {ranking}; {params}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
