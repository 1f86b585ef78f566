"""The dock widget's sliding-window fields reach the run; bad values are messages."""

from __future__ import annotations

import numpy as np

from maskscope import SegRISE, SlidingWindow
from maskscope.napari import explain_in_viewer
from tests.gui.patch_only import PatchOnly

from .conftest import Threshold, run_to_end


def _image() -> np.ndarray:
    img = np.zeros((24, 26), np.float32)
    img[3:9, 3:10] = 1.0
    img[14:21, 15:23] = 1.0
    return img


def test_the_model_runs_on_patches_of_the_given_size(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(_image(), name="two")
    model = PatchOnly(Threshold(2), (16, 12))
    widget = explain_in_viewer(viewer, model, method="SegRISE", n_masks=12, grid=4, batch_size=4)
    widget.add_prediction.setChecked(False)
    patches = widget.models.patches
    patches.widget("patch_size").setText("16, 12")
    patches.widget("patch_overlap").setValue(0.5)
    patches.widget("patch_blend").setCurrentText("gaussian")
    patches.widget("patch_batch").setValue(3)
    run_to_end(qtbot, widget)
    snap = widget.last_snapshot
    assert snap.done, widget.status.text()
    assert max(model.sizes) == 3  # every call was a (b, 1, 16, 12) patch batch, b <= 3
    window = SlidingWindow(model, (16, 12), overlap=0.5, blend="gaussian", patch_batch=3)
    want = SegRISE(window).explain(_image(), n_masks=12, grid=4, batch_size=4)
    np.testing.assert_allclose(snap.map, want.map, rtol=1e-5, atol=1e-6)
    assert {k: snap.params[k] for k in ("patch_size", "patch_overlap", "patch_blend")} == {
        "patch_size": [16, 12],
        "patch_overlap": 0.5,
        "patch_blend": "gaussian",
    }
    assert snap.params["patch_batch"] == 3 == want.params["patch_batch"]

    # an empty patch size: the whole image at once (the patch-only model refuses it)
    widget.models.patches.widget("patch_size").setText("")
    widget.set_values(n_masks=4)
    run_to_end(qtbot, widget)
    assert "patches of (16, 12) only, got (24, 26)" in widget.status.text()


def test_bad_values_are_messages_and_the_widget_stays_usable(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(_image(), name="two")
    model = PatchOnly(Threshold(2), (16, 16))
    widget = explain_in_viewer(viewer, model, method="SegRISE", n_masks=8, grid=4)
    size = widget.models.patches.widget("patch_size")
    for text, overlap, message in [
        ("abc", 0.25, "patch size takes a number or numbers separated by commas, got 'abc'"),
        ("0", 0.25, "patch size takes a positive int, or one per axis separated by commas"),
        ("16, 16, 16", 0.25, "patch size has 3 values (16, 16, 16), but the model runs on 2"),
    ]:
        size.setText(text)
        widget.models.patches.widget("patch_overlap").setValue(overlap)
        assert widget.run() is None
        assert any(message in e for e in errors()), (message, errors())
        assert message in widget.status.text()
    assert model.sizes == []  # the model never ran
    overlap = widget.models.patches.widget("patch_overlap")
    overlap.setValue(1.0)  # the box holds no overlap of 1 (a window that never moves)
    assert overlap.value() < 1.0
    overlap.setValue(0.25)
    widget.set_values(patch_size=16)
    assert size.text() == "16"
    run_to_end(qtbot, widget)
    assert widget.last_snapshot.done and widget.last_snapshot.params["patch_size"] == 16
    assert set(model.sizes) <= {1, 2, 3, 4}
