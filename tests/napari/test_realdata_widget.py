"""The widget on NIfTI volumes: array order for the model, normalisation shown, prediction
first, and the NIfTI writer."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from maskscope import SegRISE
from maskscope.intensity import normalize
from maskscope.napari import explain_in_viewer
from maskscope.napari._reader import write_nifti

from .conftest import Threshold, run_to_end, saliency_layers


def _volume(tmp_path, scale=1.0):
    vol = np.zeros((14, 10, 8), np.float32)  # (i, j, k), asymmetric
    vol[3:10, 2:7, 1:6] = 1.0
    vol[11:13, 7:9, 5:7] = 1.0
    affine = np.diag([-1.5, 1.0, 2.0, 1.0])
    affine[:3, 3] = (20.0, -5.0, 3.0)
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image((vol * scale).astype(">f4"), affine), str(path))
    return path, vol, affine


@pytest.mark.parametrize("dims", [3, 2])
def test_kji_model_on_an_ijk_layer_gets_the_reversed_volume(
    make_napari_viewer, plugin, qtbot, tmp_path, dims
):
    path, vol, _ = _volume(tmp_path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="maskscope")
    np.testing.assert_array_equal(layer.data, vol)  # the file's own order on screen
    widget = explain_in_viewer(viewer, Threshold(dims), method="SegRISE", n_masks=12, grid=2)
    widget.inputs.set_axes("kji")
    if dims == 2:
        widget.inputs.scope.setCurrentText("all slices")
    run_to_end(qtbot, widget)

    (out,) = saliency_layers(viewer)
    want = SegRISE(Threshold(dims), spatial_dims=dims).explain(
        np.ascontiguousarray(vol.T), n_masks=12, grid=2
    )
    np.testing.assert_allclose(out.data, want.map.T, rtol=1e-5, atol=1e-6)  # back in ijk
    np.testing.assert_allclose(out.scale, layer.scale)
    np.testing.assert_allclose(out.affine.affine_matrix, layer.affine.affine_matrix)
    prediction = viewer.layers["vol prediction"]
    np.testing.assert_array_equal(prediction.data, want.prediction.T)
    assert out.metadata["nifti_axes"] == "ijk"


def test_normalisation_is_chosen_for_the_data_and_shown(make_napari_viewer, plugin, tmp_path):
    path, vol, _ = _volume(tmp_path, scale=800.0)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="maskscope")
    widget = explain_in_viewer(viewer, Threshold(3), method="SegRISE", n_masks=8, grid=2)
    assert widget.inputs.normalization.currentText() == "percentile"
    assert widget.inputs.normalization_note.text() == (
        "percentile: clip to the 0.5–99.5th percentiles, rescale to [0, 1] "
        "(input range 0 … 800) (chosen for this image)"
    )
    viewer.add_image(vol, name="unit")
    widget.inputs.set_image(viewer.layers["unit"])
    assert widget.inputs.normalization.currentText() == "none"


def test_prediction_is_shown_first_and_a_failed_one_warns(
    make_napari_viewer, plugin, qtbot, tmp_path, monkeypatch
):
    path, vol, _ = _volume(tmp_path, scale=800.0)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="maskscope")
    warnings = []
    monkeypatch.setattr("maskscope.napari._prediction.show_warning", warnings.append)
    widget = explain_in_viewer(viewer, Threshold(3), method="SegRISE", n_masks=8, grid=2)
    widget.inputs.normalization.setCurrentText("none")
    viewer.layers["vol"].data = np.asarray(viewer.layers["vol"].data) - 5000.0  # dark
    run_to_end(qtbot, widget)
    assert widget.prediction.text().startswith(f"prediction: class 0 {vol.size} voxels")
    (message,) = warnings
    assert message.startswith("maskscope: the model predicts no foreground voxel")
    assert "check the normalisation" in message and "the array order" in message

    widget.inputs.normalization.setCurrentText("minmax")
    warnings.clear()
    run_to_end(qtbot, widget)
    assert warnings == [] and "warning" not in widget.prediction.text()
    counts = np.bincount(viewer.layers["vol prediction"].data.ravel())
    assert (
        widget.prediction.text() == f"prediction: class 0 {counts[0]} voxels, class 1 {counts[1]}"
    )
    want = SegRISE(Threshold(3)).explain(normalize(vol, "minmax"), n_masks=8, grid=2)
    np.testing.assert_allclose(saliency_layers(viewer)[0].data, want.map, rtol=1e-5, atol=1e-6)


def test_writer_saves_maps_in_the_source_space(make_napari_viewer, plugin, qtbot, tmp_path):
    path, vol, affine = _volume(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="maskscope")
    widget = explain_in_viewer(viewer, Threshold(3), method="SegRISE", n_masks=8, grid=2)
    widget.inputs.set_axes("kji")
    run_to_end(qtbot, widget)
    (out,) = saliency_layers(viewer)
    written = out.save(str(tmp_path / "map.nii.gz"), plugin="maskscope")
    assert written == [str(tmp_path / "map.nii.gz")]
    saved = nib.load(written[0])
    np.testing.assert_allclose(saved.affine, affine)
    np.testing.assert_allclose(np.asarray(saved.dataobj), out.data)
    # a layer without NIfTI metadata: (i, j, k) with its scale as voxel size
    (bare,) = write_nifti(str(tmp_path / "bare.nii"), vol, {"scale": (2.0, 3.0, 4.0)})
    np.testing.assert_allclose(nib.load(bare).affine, np.diag([2.0, 3.0, 4.0, 1.0]))


def test_each_image_layer_keeps_the_normalisation_chosen_for_it(make_napari_viewer, model2d):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    scan = viewer.add_image(rng.random((24, 24)).astype(np.float32) * 3000.0, name="scan")
    photo = viewer.add_image(rng.random((24, 24)).astype(np.float32), name="photo")
    widget = explain_in_viewer(viewer, model2d, method="SegRISE")
    inputs = widget.inputs
    inputs.set_image(scan)
    suggested = inputs.normalization.currentText()
    chosen = next(m for m in ("zscore", "minmax", "none") if m != suggested)
    inputs.set_normalization(chosen)
    inputs.set_image(photo)
    inputs.set_image(scan)
    assert inputs.normalization.currentText() == chosen
