"""On the real volume, the anatomy stays readable under the default saliency overlay.

Screenshot the canvas twice on the slice through the segment: with the outputs as the
widget leaves them (map, outlined prediction and reference), and with the image alone.
Over the image's region, the luminance of the first must still correlate with the second
(the displayed slice) at r ≥ 0.5, at least 30 % of the pixels must show the image
unchanged (within 4 grey levels), and the overlay must visibly change the picture. The
previous default (additive, opaque inferno over the map's full range) left no pixel
unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from maskscope.napari import explain_in_viewer
from tests.napari.conftest import run_to_end, saliency_layers

MIN_CORRELATION = 0.5
MIN_UNCHANGED = 0.3


def _rgb(viewer) -> np.ndarray:
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def overlay_effect(viewer, image) -> tuple[float, float, float]:
    """In the image's on-screen bounding box: r between the luminance shown and that of the
    image alone, the fraction of pixels left unchanged, the mean absolute change."""
    shown = _rgb(viewer)
    visible = {ly.name: ly.visible for ly in viewer.layers}
    for ly in viewer.layers:
        ly.visible = ly is image
    alone = _rgb(viewer)
    for ly in viewer.layers:
        ly.visible = visible[ly.name]
    rows, cols = np.nonzero(_luminance(alone) > 0)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    shown, alone = shown[box], alone[box]
    r = _correlation(_luminance(shown), _luminance(alone))
    unchanged = float((np.abs(shown - alone).max(axis=-1) <= 4).mean())
    return r, unchanged, float(np.abs(_luminance(shown) - _luminance(alone)).mean())


def test_anatomy_stays_readable_under_the_default_overlay(case, make_napari_viewer, plugin, qtbot):
    viewer = make_napari_viewer(show=True)
    (image,) = viewer.open(str(case.image_path), plugin="maskscope")
    (label,) = viewer.open(str(case.label_path), plugin="maskscope")
    widget = explain_in_viewer(
        viewer,
        torch.jit.load(str(case.model_path)),
        method="SegRISE",
        image=image.name,
        n_masks=256,
        grid=4,
        seed=0,
    )
    widget.inputs.set_reference(label)
    widget.inputs.normalization.setCurrentText("zscore")
    run_to_end(qtbot, widget, timeout=60_000)
    (layer,) = saliency_layers(viewer)
    assert layer.visible and layer.colorbar.visible
    assert widget.legend.text().startswith("colours: SegRISE importance (Dice units)")

    centre = round(float(np.nonzero(case.label)[0].mean()))
    viewer.dims.set_point(0, image.data_to_world((centre, 0, 0))[0])
    viewer.reset_view()
    layer.colorbar.visible = False  # the bar is drawn over the canvas, not the image
    r, unchanged, change = overlay_effect(viewer, image)
    assert r >= MIN_CORRELATION, r
    assert unchanged >= MIN_UNCHANGED, unchanged
    assert change > 5.0, change  # the map is on screen, not hidden

    # the previous default coloured the whole field
    layer.blending, layer.colormap, layer.opacity = "additive", "inferno", 0.7
    layer.contrast_limits = (float(layer.data.min()), float(layer.data.max()))
    _, old_unchanged, _ = overlay_effect(viewer, image)
    assert old_unchanged < 0.05 < unchanged
