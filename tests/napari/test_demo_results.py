"""``maskscope demo --napari``: finished explanations shown as layers beside their samples."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from maskscope.methods import RISE, SegRISE
from maskscope.napari import ExplainWidget, show_demo_results

from .conftest import saliency_layers, square_image


def test_demo_results_open_as_layers(make_napari_viewer, model2d, model3d):
    img = square_image()
    vol = np.stack([img] * 6)  # (6, 48, 48)
    results = [
        SimpleNamespace(
            label="RISE", sample="square", explanation=RISE(model2d).explain(img, n_masks=8)
        ),
        SimpleNamespace(
            label="SegRISE", sample="square", explanation=SegRISE(model2d).explain(img, n_masks=8)
        ),
        SimpleNamespace(
            label="RISE",
            sample="cube",
            explanation=RISE(model3d).explain(
                vol, n_masks=4, grid=3, voxel_spacing=(3.0, 1.0, 1.0)
            ),
        ),
    ]
    viewer = make_napari_viewer()
    assert show_demo_results(results, viewer=viewer, block=False) is viewer

    names = [ly.name for ly in viewer.layers]
    assert names[:2] == ["square", "square reference"]
    maps = {ly.name: ly for ly in saliency_layers(viewer)}
    assert list(maps) == ["square RISE", "square SegRISE", "cube RISE"]
    assert maps["square RISE"].visible and not maps["square SegRISE"].visible
    np.testing.assert_allclose(maps["square SegRISE"].data, results[1].explanation.map, atol=1e-6)
    cube = viewer.layers["cube"]
    np.testing.assert_allclose(cube.scale, (3.0, 1.0, 1.0))
    assert cube.translate[-1] > 48  # beside the 2D sample, not on top of it
    np.testing.assert_allclose(maps["cube RISE"].translate, cube.translate)
    docked = viewer.window._qt_window.findChildren(ExplainWidget)
    assert len(docked) == 1
