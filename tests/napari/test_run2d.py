"""Runs on 2D images: streaming into one layer, same map as the engine, layer placement."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope.data import shapes2d
from maskscope.methods import HDM, RISE, PixelRISE, SegRISE
from maskscope.models import load_model
from maskscope.napari import explain_in_viewer, register_model, unregister_model

from .conftest import Threshold, run_to_end, saliency_layers, square_image


def test_shapes_run_streams_into_one_layer_and_matches_explain(
    make_napari_viewer, plugin, qtbot, model2d
):
    viewer = make_napari_viewer()
    viewer.open_sample("maskscope", "shapes2d")
    inserted = []
    viewer.layers.events.inserted.connect(lambda e: inserted.append(e.value.name))
    widget = explain_in_viewer(viewer, model2d, method="RISE", n_masks=48, batch_size=8, seed=3)
    widget.yield_every = 0.0
    widget.add_prediction.setChecked(True)
    run_to_end(qtbot, widget)

    assert widget.n_updates >= 2
    assert inserted == ["shapes prediction", "shapes RISE"]  # the prediction first
    (layer,) = [ly for ly in saliency_layers(viewer) if ly.name == "shapes RISE"]
    expected = RISE(model2d).explain(shapes2d(0).image, n_masks=48, batch_size=8, seed=3)
    np.testing.assert_allclose(layer.data, expected.map, rtol=1e-5, atol=1e-6)
    meta = layer.metadata["maskscope"]
    assert meta["partial"] is False and meta["n_done"] == meta["n_total"] == 48
    assert layer.blending == "translucent" and layer.colormap.name == "inferno overlay"
    assert 0 < layer.opacity < 1
    prediction = viewer.layers["shapes prediction"]
    np.testing.assert_array_equal(prediction.data, expected.prediction)
    assert widget.status.text().startswith("done: 48/48")
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()

    # a second run replaces the map in the same layer
    widget.set_values(seed=5)  # seed 4 puts a voxel within ThresholdNet's tie margin
    run_to_end(qtbot, widget)
    assert [ly.name for ly in saliency_layers(viewer)] == ["shapes RISE"]
    assert [ly.name for ly in viewer.layers if "maskscope" in ly.metadata] == [
        "shapes RISE",
        "shapes prediction",  # its outline above the map
    ]
    assert viewer.layers["shapes RISE"] is layer
    assert not np.allclose(layer.data, expected.map)


def test_output_keeps_scale_and_translate_and_a_reference_layer_is_used(
    make_napari_viewer, qtbot, model2d
):
    viewer = make_napari_viewer()
    img = square_image()
    viewer.add_image(img, name="sq", scale=(0.5, 0.25), translate=(10.0, -3.0))
    truth = np.zeros(img.shape, np.int32)
    truth[12:20, 28:36] = 1  # smaller than the bright square
    viewer.add_labels(truth, name="truth", scale=(0.5, 0.25), translate=(10.0, -3.0))
    widget = explain_in_viewer(viewer, model2d, method="SegRISE", n_masks=24, image="sq")
    widget.inputs.set_reference(viewer.layers["truth"])
    run_to_end(qtbot, widget)

    layer = viewer.layers["sq SegRISE"]
    np.testing.assert_allclose(layer.scale, (0.5, 0.25))
    np.testing.assert_allclose(layer.translate, (10.0, -3.0))
    expected = SegRISE(model2d).explain(img, reference=truth, n_masks=24, voxel_spacing=(0.5, 0.25))
    np.testing.assert_allclose(layer.data, expected.map, rtol=1e-5, atol=1e-6)
    assert layer.metadata["maskscope"]["voxel_spacing"] == [0.5, 0.25]


def test_multichannel_image_with_a_channel_axis(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    img = np.stack([square_image(), square_image() * 0.5 + 0.5])  # (2, H, W)
    viewer.add_image(img, name="two", scale=(1.0, 2.0, 2.0))
    model = Threshold(2, in_channels=2)
    widget = explain_in_viewer(viewer, model, method="RISE", n_masks=16)
    combo = widget.inputs.channel
    combo.setCurrentIndex(combo.findData(0))
    assert not widget.inputs.scope.isVisibleTo(widget)  # 2 spatial axes: no slice choice
    run_to_end(qtbot, widget)

    layer = viewer.layers["two RISE"]
    assert layer.data.shape == (48, 48)
    np.testing.assert_allclose(layer.scale, (2.0, 2.0))
    expected = RISE(model).explain(img, n_masks=16)
    np.testing.assert_allclose(layer.data, expected.map, rtol=1e-5, atol=1e-6)


def test_a_trailing_channel_axis_is_kept_with_length_one(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    img = np.stack([square_image(), square_image() * 0.5 + 0.5], axis=-1)  # (H, W, 2)
    viewer.add_image(img, name="last", rgb=False, scale=(1.0, 2.0, 1.0))
    model = Threshold(2, in_channels=2)
    widget = explain_in_viewer(viewer, model, method="RISE", n_masks=8)
    widget.inputs.channel.setCurrentIndex(widget.inputs.channel.findData(2))
    run_to_end(qtbot, widget)
    layer = viewer.layers["last RISE"]
    assert layer.data.shape == (48, 48, 1)  # lines up with the source's axes in napari
    np.testing.assert_allclose(layer.scale, (1.0, 2.0, 1.0))
    expected = RISE(model).explain(np.moveaxis(img, -1, 0), n_masks=8)
    np.testing.assert_allclose(layer.data[..., 0], expected.map, rtol=1e-5, atol=1e-6)


@pytest.fixture
def registered(model2d):
    register_model("tiny threshold", model2d)
    yield model2d
    unregister_model("tiny threshold")


def test_registered_models_are_listed_and_normalisation_applies(
    make_napari_viewer, plugin, qtbot, registered
):
    viewer = make_napari_viewer()
    img = square_image() * 200.0 + 100.0  # far from the model's 0–1 range
    viewer.add_image(img, name="raw")
    _, widget = viewer.window.add_plugin_dock_widget("maskscope", "Explain segmentation")
    items = [widget.models.combo.itemText(i) for i in range(widget.models.combo.count())]
    assert "tiny threshold" in items and "shapes2d (demo)" in items
    widget.models.select("tiny threshold")
    widget.set_method("RISE")
    widget.set_values(n_masks=16)
    widget.inputs.normalization.setCurrentText("minmax")
    run_to_end(qtbot, widget)

    expected = RISE(registered).explain(square_image(), n_masks=16)  # minmax gives 0–1
    np.testing.assert_allclose(viewer.layers["raw RISE"].data, expected.map, atol=1e-5)


def test_extra_maps_become_hidden_layers_and_stale_ones_go(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    widget = explain_in_viewer(viewer, model2d, method="PixelRISE", n_masks=16, merge="max")
    run_to_end(qtbot, widget)
    expected = PixelRISE(model2d).explain(square_image(), n_masks=16, merge="max")
    mean = viewer.layers["sq PixelRISE mean"]
    assert not mean.visible and viewer.layers["sq PixelRISE"].visible
    np.testing.assert_allclose(mean.data, expected.extras["mean"], rtol=1e-5, atol=1e-6)

    widget.set_values(merge="mean")  # no extra map: the old one goes
    run_to_end(qtbot, widget)
    assert [ly.name for ly in saliency_layers(viewer)] == ["sq PixelRISE"]


def test_hdm_adds_better_only_and_worse_only_layers(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq", scale=(2.0, 2.0))
    # one centre per voxel: the per-centre grids have the map's shape, yet are not layers
    values = {"diameter": 12.0, "stride": 2.0, "batch_size": 128}
    widget = explain_in_viewer(viewer, model2d, method="HDM", **values)
    assert widget.form.values()["stride"] == 2.0
    run_to_end(qtbot, widget)

    names = [ly.name for ly in saliency_layers(viewer)]
    assert names == ["sq HDM", "sq HDM better-only", "sq HDM worse-only"]
    assert viewer.layers["sq HDM better-only"].colormap.name == "cyan overlay"
    assert viewer.layers["sq HDM worse-only"].colormap.name == "magenta overlay"
    expected = HDM(model2d).explain(square_image(), voxel_spacing=(2.0, 2.0), **values)
    for name, arr in (
        ("sq HDM", expected.map),
        ("sq HDM worse-only", expected.extras["worse_only"]),
    ):
        np.testing.assert_allclose(viewer.layers[name].data, arr, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(viewer.layers[name].scale, (2.0, 2.0))


def test_bundled_demo_model_from_the_list(make_napari_viewer, plugin, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("maskscope", "shapes2d")
    _, widget = viewer.window.add_plugin_dock_widget("maskscope", "Explain segmentation")
    widget.models.select("shapes2d")
    assert widget.models.combo.currentText() == "shapes2d (demo)"
    assert not widget.models.spec.isVisibleTo(widget)
    widget.set_method("SegRISE")
    widget.set_values(n_masks=16, seed=5)
    run_to_end(qtbot, widget)
    assert widget.status.text().startswith("done"), widget.status.text()

    expected = SegRISE(load_model("shapes2d")).explain(shapes2d(0).image, n_masks=16, seed=5)
    np.testing.assert_allclose(viewer.layers["shapes SegRISE"].data, expected.map, atol=1e-5)
