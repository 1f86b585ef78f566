"""The saliency overlay really renders: bright where the map is high, in 2D and 3D views."""

from __future__ import annotations

import numpy as np

from maskscope.napari import explain_in_viewer

from .conftest import run_to_end, saliency_layers


def _brightness(viewer) -> np.ndarray:
    shot = viewer.screenshot(canvas_only=True, flash=False)
    return shot[..., :3].astype(float).max(axis=-1)


def _camera(viewer):
    scene = getattr(viewer, "scene", None)  # napari >= 0.9; ``viewer.camera`` before
    return scene.camera if scene is not None else viewer.camera


def _screen_position(viewer, world_yx, shape) -> tuple[int, int]:
    """Canvas pixel of a world (y, x) point in a top-down view."""
    camera = _camera(viewer)
    center = np.asarray(camera.center)[-2:]
    row, col = (np.asarray(world_yx) - center) * camera.zoom + np.asarray(shape[:2]) / 2
    return round(float(row)), round(float(col))


def _check_overlay(viewer, layer) -> None:
    """High map values are bright on screen, low ones dark, and nothing without the layer."""
    for other in viewer.layers:  # the prediction's outline is not the map
        other.visible = other is layer
    layer.colorbar.visible = False  # the colour bar is the brightest thing on screen
    data = np.asarray(layer.data)
    # colours over the whole range (the default stops at the 99.5th percentile, so the top
    # voxels all saturate and the brightest pixel could be any of them)
    layer.contrast_limits = (float(data.min()), float(data.max()))
    flat = data.max(axis=0) if data.ndim == 3 else data  # what a top-down view shows
    hi_yx = np.unravel_index(np.argmax(flat), flat.shape)
    lo_yx = np.unravel_index(np.argmin(flat), flat.shape)
    bright = _brightness(viewer)
    scale = np.asarray(layer.scale)[-2:]
    translate = np.asarray(layer.translate)[-2:]
    r_hi, c_hi = _screen_position(viewer, np.asarray(hi_yx) * scale + translate, bright.shape)
    r_lo, c_lo = _screen_position(viewer, np.asarray(lo_yx) * scale + translate, bright.shape)
    around_hi = bright[r_hi - 2 : r_hi + 3, c_hi - 2 : c_hi + 3]
    around_lo = bright[r_lo - 2 : r_lo + 3, c_lo - 2 : c_lo + 3]
    assert around_hi.mean() > 100, around_hi
    assert around_lo.mean() < around_hi.mean() - 20
    # the brightest pixel on screen is where the map peaks (within two voxels)
    peak = np.unravel_index(np.argmax(bright), bright.shape)
    tolerance = 2 * _camera(viewer).zoom * scale.max()
    assert np.hypot(peak[0] - r_hi, peak[1] - c_hi) <= tolerance
    layer.visible = False
    assert _brightness(viewer).max() < 10  # the colour came from the saliency layer
    layer.visible = True


def _blob(shape, center, radius):
    grid = np.indices(shape).astype(np.float32)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, center, strict=True)))
    return (dist <= radius).astype(np.float32)


def test_overlay_renders_in_2d(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer(show=True)
    source = viewer.add_image(_blob((64, 64), (20, 40), 8), name="blob", scale=(1.0, 1.5))
    widget = explain_in_viewer(viewer, model2d, method="RISE", n_masks=64, grid=6)
    run_to_end(qtbot, widget)
    source.visible = False
    viewer.reset_view()
    (layer,) = saliency_layers(viewer)
    _check_overlay(viewer, layer)


def test_overlay_renders_in_3d(make_napari_viewer, qtbot, model3d):
    viewer = make_napari_viewer(show=True)
    source = viewer.add_image(_blob((24, 40, 40), (12, 14, 26), 6), name="ball")
    widget = explain_in_viewer(viewer, model3d, method="RISE", n_masks=96, grid=4)
    run_to_end(qtbot, widget)
    source.visible = False
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    # top-down along the first axis, rows and columns as in the 2D view
    _camera(viewer).set_view_direction((-1.0, 0.0, 0.0), up_direction=(0.0, -1.0, 0.0))
    (layer,) = saliency_layers(viewer)
    assert layer.rendering in ("mip", "attenuated_mip", "translucent", "additive")
    _check_overlay(viewer, layer)
