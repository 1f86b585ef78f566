"""End to end on a real case: nibabel's MRI (big-endian), a MONAI U-Net saved as TorchScript.

The command line with the documented flags (``--axes ijk --normalize zscore``) reports the
model's own Dice as MONAI's inference computes it, and writes a map that lines up with the
input in nibabel; the napari reader and widget give the same map.
"""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from maskscope import SegRISE
from maskscope.cli import main
from maskscope.models import load_model

from .monai_case import zscore

PARAMS = ["--method", "segrise", "--n-masks", "256", "--grid", "4", "--seed", "0"]


def _monai_dice(case) -> float:
    """MONAI-style inference: LoadImage, channel first, NormalizeIntensity, one window."""
    from monai.inferers import sliding_window_inference
    from monai.metrics import DiceMetric
    from monai.transforms import EnsureChannelFirst, LoadImage, NormalizeIntensity

    x = LoadImage(image_only=True)(str(case.image_path))
    x = NormalizeIntensity()(EnsureChannelFirst()(x)).as_tensor().float()[None]
    model = torch.jit.load(str(case.model_path))
    with torch.no_grad():
        out = sliding_window_inference(x, case.raw.shape, 1, model)
    pred = out.argmax(1, keepdim=True)
    truth = torch.from_numpy(case.label.astype(np.int64))[None, None]
    metric = DiceMetric(include_background=False)
    onehot = (torch.cat([pred == 0, pred == 1], 1), torch.cat([truth == 0, truth == 1], 1))
    return float(metric(*onehot).item())


def _run_cli(case, capsys, out, axes="ijk", extra=()):
    argv = ["explain", "--model", str(case.model_path), "--trust-model"]
    argv += ["--image", str(case.image_path)]
    argv += ["--reference", str(case.label_path), "--axes", axes, "--normalize", "zscore"]
    code = main([*argv, *PARAMS, "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    match = re.search(r"Dice (\d\.\d+) against the reference", captured.out)
    assert match, captured.out
    return float(match.group(1)), captured


def test_cli_reproduces_monai_dice_and_writes_an_aligned_map(case, capsys):
    stored = np.asarray(nib.load(str(case.image_path)).dataobj)
    assert stored.dtype.byteorder == ">"  # the file really is big-endian
    out = case.folder / "map.nii.gz"
    dice, captured = _run_cli(case, capsys, out, extra=["--png"])
    monai_dice = _monai_dice(case)
    assert monai_dice > 0.9  # the model works on what it was trained on
    assert abs(dice - monai_dice) <= 0.01
    assert "warning" not in captured.err

    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, case.affine)
    assert written.shape == case.raw.shape == (33, 41, 25)
    # the same map as the API on nibabel-order, normalised data: voxel for voxel aligned
    api = SegRISE(load_model(str(case.model_path), trusted=True)).explain(
        zscore(case.raw), reference=case.label, n_masks=256, grid=4, seed=0
    )
    np.testing.assert_allclose(np.asarray(written.dataobj), api.map, rtol=1e-5, atol=1e-6)
    # the map's top 5 % sits at the segment: at least 3× the share of the region near it
    near = ndimage.binary_dilation(case.label > 0, iterations=2)
    top = api.map >= np.percentile(api.map, 95)
    assert (top & near).sum() / top.sum() >= 3 * near.mean()

    png = Image.open(case.folder / "map.png")
    assert min(png.size) >= 512  # not a 33 × 41 thumbnail


def test_the_wrong_axis_order_loses_dice_but_the_map_still_lines_up(case, capsys):
    right, _ = _run_cli(case, capsys, case.folder / "ijk.nii.gz")
    wrong, _ = _run_cli(case, capsys, case.folder / "kji.nii.gz", axes="kji")
    assert wrong < right - 0.2  # the model sees a transposed volume
    written = nib.load(str(case.folder / "kji.nii.gz"))
    np.testing.assert_allclose(written.affine, case.affine)
    assert written.shape == case.raw.shape


def test_unnormalised_input_is_reported_before_explaining(case, capsys):
    argv = ["explain", "--model", str(case.model_path), "--trust-model"]
    argv += ["--image", str(case.image_path)]
    argv += ["--reference", str(case.label_path), "--method", "segrise", "--n-masks", "4"]
    code = main([*argv, "--out", str(case.folder / "raw.nii.gz"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0
    first = captured.out.splitlines()[0]
    assert first.startswith("prediction: class 0 ") and "Dice" in first
    raw_dice = float(re.search(r"Dice (\d\.\d+)", first).group(1))
    assert raw_dice < _monai_dice(case) - 0.2


def test_napari_reader_and_widget_give_the_same_map(
    case, capsys, make_napari_viewer, plugin, qtbot
):
    from maskscope.napari import explain_in_viewer
    from tests.napari.conftest import run_to_end, saliency_layers

    dice, _ = _run_cli(case, capsys, case.folder / "cli.nii.gz")
    cli_map = np.asarray(nib.load(str(case.folder / "cli.nii.gz")).dataobj)

    viewer = make_napari_viewer()
    (image,) = viewer.open(str(case.image_path), plugin="maskscope")
    (label,) = viewer.open(str(case.label_path), plugin="maskscope")
    assert image.data.shape == (33, 41, 25) and type(label).__name__ == "Labels"
    np.testing.assert_allclose(image.scale, nib.load(str(case.image_path)).header.get_zooms())
    model = torch.jit.load(str(case.model_path))
    widget = explain_in_viewer(
        viewer, model, method="SegRISE", image=image.name, n_masks=256, grid=4, seed=0
    )
    widget.inputs.set_reference(label)
    assert widget.inputs.normalization.currentText() == "percentile"  # chosen for raw data
    widget.inputs.normalization.setCurrentText("zscore")
    assert widget.inputs.axes.currentData() == "ijk"
    run_to_end(qtbot, widget, timeout=60_000)

    (layer,) = saliency_layers(viewer)
    np.testing.assert_allclose(layer.data, cli_map, rtol=1e-5, atol=1e-6)
    assert f"Dice {dice:.3f}" in widget.prediction.text()
    assert label.contour > 0  # the reference is outlined
    prediction = viewer.layers[f"{image.name} prediction"]
    assert prediction.contour > 0 and prediction.data.sum() > 0.9 * case.label.sum()

    # the napari writer saves the map in the source's space
    path = case.folder / "from_napari.nii.gz"
    layer.save(str(path), plugin="maskscope")
    saved = nib.load(str(path))
    np.testing.assert_allclose(saved.affine, case.affine)
    np.testing.assert_allclose(np.asarray(saved.dataobj), cli_map, rtol=1e-6)
