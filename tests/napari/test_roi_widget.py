"""The dock widget explains a region of interest chosen as a Shapes or Labels layer."""

from __future__ import annotations

import re

import numpy as np

from maskscope import RISE, ROI, SegRISE
from maskscope.gui import ranking_html
from maskscope.napari import explain_in_viewer
from tests.conftest import OneChannel

from .conftest import run_to_end, saliency_layers


def _two_squares() -> np.ndarray:
    img = np.zeros((40, 44), np.float32)
    img[5:14, 5:15] = 1.0
    img[24:34, 26:38] = 1.0
    return img


def test_a_box_in_a_shapes_layer_and_a_picked_label(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer()
    img = _two_squares()
    viewer.add_image(img, name="two")
    box = viewer.add_shapes(
        [np.array([[22, 24], [22, 40], [36, 40], [36, 24]])], shape_type="rectangle", name="box"
    )
    widget = explain_in_viewer(viewer, model2d, method="SegRISE", n_masks=24, grid=4)
    widget.add_prediction.setChecked(False)
    panel = widget.roi_panel.layer
    assert [panel.itemText(i) for i in range(panel.count())] == ["(whole image)", "box"]
    widget.roi_panel.layer.setCurrentText("box")
    run_to_end(qtbot, widget)
    (layer,) = saliency_layers(viewer)
    roi = box.to_masks(mask_shape=img.shape)[0]
    want = SegRISE(model2d).explain(img, roi=roi, n_masks=24, grid=4)
    np.testing.assert_allclose(layer.data, want.map, rtol=1e-5, atol=1e-6)
    assert widget.last_snapshot.params["roi"].startswith("mask of")
    assert widget.roi_panel.crop.currentData() == "auto" == widget.last_snapshot.params["crop"]

    # crop off: the whole image's run
    widget.roi_panel.crop.setCurrentIndex(widget.roi_panel.crop.findData(False))
    run_to_end(qtbot, widget)
    want = SegRISE(model2d).explain(img, roi=roi, n_masks=24, grid=4, crop=False)
    np.testing.assert_allclose(widget.last_snapshot.map, want.map, rtol=1e-5, atol=1e-6)
    assert widget.last_snapshot.params["crop"] is False
    assert "crop_window" not in widget.last_snapshot.params

    # a Labels layer: its picked label, here the prediction's first square, cropped
    pred = (SegRISE(model2d).explain(img, n_masks=2).prediction).astype(np.int32)
    pred[20:] *= 2  # the second square is label 2
    labels = viewer.add_labels(pred, name="lesions")
    labels.selected_label = 2
    widget.roi_panel.layer.setCurrentText("lesions")
    widget.roi_panel.crop.setCurrentIndex(widget.roi_panel.crop.findData(True))
    run_to_end(qtbot, widget)
    want = SegRISE(model2d).explain(img, roi=ROI.from_label(pred, 2), crop=True, n_masks=24, grid=4)
    np.testing.assert_allclose(widget.last_snapshot.map, want.map, rtol=1e-5, atol=1e-6)
    assert "crop_window" in widget.last_snapshot.params
    assert widget.last_snapshot.params["crop"] is True


def test_bad_roi_choices_are_messages_and_the_widget_stays_usable(
    make_napari_viewer, qtbot, model2d, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(_two_squares(), name="two")
    labels = viewer.add_labels(np.zeros((40, 44), np.int32), name="empty")
    labels.selected_label = 0
    widget = explain_in_viewer(viewer, model2d, method="SegRISE", n_masks=8, grid=4)
    widget.roi_panel.layer.setCurrentText("empty")
    assert widget.run() is None
    assert any("has the background (0) selected" in e for e in errors())
    widget.roi_panel.layer.setCurrentText("(whole image)")
    widget.roi_panel.crop.setCurrentIndex(widget.roi_panel.crop.findData(True))
    assert widget.run() is None
    assert any("crop needs a region of interest" in e for e in errors())
    widget.roi_panel.crop.setCurrentIndex(widget.roi_panel.crop.findData("auto"))
    run_to_end(qtbot, widget)
    assert widget.last_snapshot.done


def test_a_map_per_channel_and_their_ranking(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(3)
    img = rng.random((4, 24, 24)).astype(np.float32) * 0.3
    img[:, 6:16, 5:15] += 0.6
    viewer.add_image(img, name="four")
    model = OneChannel()  # one model: the API run replays the widget's measured batches
    widget = explain_in_viewer(viewer, model, method="RISE", n_masks=150, grid=4)
    widget.inputs.channel.setCurrentIndex(widget.inputs.channel.findData(0))
    widget.add_prediction.setChecked(False)
    widget.roi_panel.per_channel.setChecked(True)
    run_to_end(qtbot, widget)
    names = {ly.name for ly in saliency_layers(viewer)}
    assert {f"four RISE channel-{c}" for c in range(4)} <= names, names
    want = RISE(model).explain(img, per_channel=True, n_masks=150, grid=4)
    np.testing.assert_allclose(
        widget.last_snapshot.extras["channel_importance"], want.extras["channel_importance"]
    )
    ranking = widget.roi_panel.ranking
    order = np.argsort(-want.extras["channel_importance"], kind="stable").tolist()
    assert [r.channel for r in ranking] == order and order[0] == 2
    assert widget.roi_panel.summary.text() == ranking_html(ranking)  # the notebook's table
    cells = re.findall(r"<td[^>]*>(.*?)</td>", widget.roi_panel.summary.text())
    assert cells[:3] == ["1", "2", f"{ranking[0].importance:+.4g}"]
