"""3D volumes: a 2D model slice by slice (current slice, range) and a 3D model on the whole."""

from __future__ import annotations

import numpy as np

from maskscope.data import phantom3d
from maskscope.methods import RISE
from maskscope.napari import explain_in_viewer

from .conftest import run_to_end


def _phantom(viewer):
    viewer.open_sample("maskscope", "phantom3d")
    return viewer.layers["phantom"]


def test_2d_model_on_the_current_slice(make_napari_viewer, plugin, qtbot, model2d):
    viewer = make_napari_viewer()
    source = _phantom(viewer)
    z = int(np.argmax(viewer.layers["phantom lesion"].data.sum(axis=(1, 2))))
    viewer.dims.set_point(0, z * 2.0)  # world coordinates: the slices are 2 mm apart
    widget = explain_in_viewer(viewer, model2d, method="RISE", n_masks=16, image=source)
    assert widget.inputs.scope.isVisibleTo(widget)
    assert widget.inputs.scope.currentText() == "current slice"
    assert widget.inputs.current_slice() == z
    run_to_end(qtbot, widget)

    layer = viewer.layers["phantom RISE"]
    assert layer.data.shape == (64, 96, 96)
    np.testing.assert_allclose(layer.scale, (2.0, 1.0, 1.0))
    computed = np.flatnonzero(np.abs(layer.data).sum(axis=(1, 2)))
    assert computed.tolist() == [z]
    assert layer.metadata["maskscope"]["slices"] == [z]
    expected = RISE(model2d).explain(phantom3d(0).image[:, z], n_masks=16)
    np.testing.assert_allclose(layer.data[z], expected.map, rtol=1e-5, atol=1e-6)


def test_2d_model_on_a_slice_range(make_napari_viewer, plugin, qtbot, model2d):
    viewer = make_napari_viewer()
    _phantom(viewer)
    widget = explain_in_viewer(viewer, model2d, method="RISE", n_masks=8, batch_size=8)
    inputs = widget.inputs
    inputs.scope.setCurrentText("range")
    assert inputs.start.isVisibleTo(widget)
    inputs.start.setValue(33)
    inputs.stop.setValue(31)
    run_to_end(qtbot, widget)
    layer = viewer.layers["phantom RISE"]
    assert layer.metadata["maskscope"]["slices"] == [31, 32, 33]
    assert layer.metadata["maskscope"]["n_total"] == 24


def test_3d_model_on_the_whole_volume(make_napari_viewer, plugin, qtbot, model3d):
    viewer = make_napari_viewer()
    source = _phantom(viewer)
    source.translate = (5.0, 0.0, -2.0)
    widget = explain_in_viewer(viewer, model3d, method="RISE", n_masks=12, grid=4)
    assert widget.inputs.scope.isVisibleTo(widget)  # shown; a 3D model ignores it
    run_to_end(qtbot, widget)

    layer = viewer.layers["phantom RISE"]
    np.testing.assert_allclose(layer.scale, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(layer.translate, (5.0, 0.0, -2.0))
    meta = layer.metadata["maskscope"]
    assert meta["slices"] is None and meta["voxel_spacing"] == [2.0, 1.0, 1.0]
    expected = RISE(model3d).explain(
        phantom3d(0).image, n_masks=12, grid=4, voxel_spacing=(2.0, 1.0, 1.0)
    )
    np.testing.assert_allclose(layer.data, expected.map, rtol=1e-5, atol=1e-6)
    assert np.count_nonzero(np.abs(layer.data).sum(axis=(1, 2))) > 32
