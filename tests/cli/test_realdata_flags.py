"""``--normalize``, ``--percentiles``, ``--axes``, the prediction line and ``--png``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from maskscope import SegRISE
from maskscope.cli import main
from maskscope.intensity import normalize
from maskscope.io import read_image
from tests.conftest import ThresholdNet

FACTORY = "tests.cli.threshold_factory:make"


def scanner_image() -> np.ndarray:
    """A bright square on a dark field, in scanner-like units (100 … 900)."""
    img = np.full((24, 24), 100.0, np.float32)
    img[6:15, 5:17] = 900.0
    return img


def _explain(tmp_path, *extra, image="img.npy"):
    out = tmp_path / ("map" + "".join((tmp_path / image).suffixes))
    argv = ["explain", "--model", FACTORY, "--image", str(tmp_path / image), "--out", str(out)]
    return main([*argv, "--n-masks", "20", "--grid", "4", "--seed", "1", "--quiet", *extra]), out


def test_normalize_flag_gives_the_api_map_and_the_prediction_comes_first(tmp_path, capsys):
    np.save(tmp_path / "img.npy", scanner_image())
    code, out = _explain(tmp_path, "--normalize", "percentile", "--percentiles", "1,99")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    want = SegRISE(ThresholdNet(2)).explain(
        normalize(scanner_image(), "percentile", percentiles=(1, 99)), n_masks=20, grid=4, seed=1
    )
    counts = np.bincount(want.prediction.ravel())
    assert lines[0] == f"prediction: class 0 {counts[0]} voxels, class 1 {counts[1]}"
    assert lines[1].startswith("wrote ")
    np.testing.assert_allclose(np.load(out), want.map, rtol=1e-6)
    assert captured.err == ""


def test_an_empty_prediction_warns_naming_the_flags(tmp_path, capsys):
    np.save(tmp_path / "img.npy", scanner_image() - 2000.0)  # all below the threshold
    np.save(tmp_path / "ref.npy", (scanner_image() > 500).astype(np.uint8))
    code, _ = _explain(tmp_path, "--reference", str(tmp_path / "ref.npy"))
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("prediction: class 0 576 voxels; Dice 0.000 against the")
    assert captured.err == (
        "maskscope: warning: the model predicts no foreground voxel on this input: explaining "
        "it would explain a failed segmentation; check --normalize (the intensities the model "
        "was trained on) and --axes (a transposed volume); a multi-label model (one sigmoid "
        "per channel, overlapping) needs one channel chosen: --output-key 'channel C'\n"
    )


def test_axes_kji_reads_the_nifti_reversed_and_writes_it_back(tmp_path, capsys):
    nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")
    vol = np.zeros((10, 12, 6), np.float32)  # (i, j, k) on disk
    vol[3:7, 4:9, 1:5] = 1.0
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(vol.astype(">f4"), affine), str(tmp_path / "v.nii.gz"))
    argv = ["explain", "--model", "tests.cli.threshold_factory:make3d", "--image"]
    argv += [str(tmp_path / "v.nii.gz"), "--n-masks", "8", "--grid", "2", "--seed", "0"]
    for axes in ("ijk", "kji"):
        out = tmp_path / f"{axes}.nii.gz"
        assert main([*argv, "--axes", axes, "--out", str(out), "--quiet"]) == 0
        written = nib.load(str(out))
        np.testing.assert_allclose(written.affine, affine)
        assert written.shape == vol.shape
    want = SegRISE(ThresholdNet(3)).explain(
        np.ascontiguousarray(vol.T), n_masks=8, grid=2, seed=0, voxel_spacing=(3.0, 2.0, 1.0)
    )
    np.testing.assert_allclose(
        read_image(tmp_path / "kji.nii.gz", axes="kji").data, want.map, rtol=1e-6
    )
    capsys.readouterr()


def test_png_is_readable_size_with_a_colour_bar(tmp_path, capsys):
    np.save(tmp_path / "img.npy", scanner_image() / 1000.0)
    code, _ = _explain(tmp_path, "--png")
    assert code == 0
    png = Image.open(io.BytesIO((tmp_path / "map.png").read_bytes()))
    assert min(png.size) >= 512
    rgb = np.asarray(png.convert("RGB"))
    bar = rgb[60:-20, -80:-60]  # the colour bar beside the slice: many colours
    assert len(np.unique(bar.reshape(-1, 3), axis=0)) > 50
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--normalize", "zz"], "argument --normalize: invalid choice: 'zz'"),
        (["--axes", "xyz"], "argument --axes: invalid choice: 'xyz'"),
        (["--percentiles", "5"], "--percentiles takes two numbers like 0.5,99.5, got 5.0"),
        (["--percentiles", "90,10"], "percentiles must satisfy 0 <= low < high <= 100"),
        (["--axes", "kji"], "--axes applies to NIfTI images (.nii, .nii.gz) only, got --image"),
    ],
)
def test_bad_flags_name_the_flag(tmp_path, capsys, argv, message):
    np.save(tmp_path / "img.npy", scanner_image())
    try:
        code, _ = _explain(tmp_path, "--normalize", "percentile", *argv)
    except SystemExit as exc:  # argparse's own choices check
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_axes_on_an_array_file_is_refused_in_evaluate_too(tmp_path, capsys):
    np.save(tmp_path / "img.npy", scanner_image() / 1000.0)
    argv = ["evaluate", "--model", FACTORY, "--image", str(tmp_path / "img.npy"), "--method"]
    argv += ["segrise"]
    assert main([*argv, "--axes", "ijk"]) == 2
    err = capsys.readouterr().err
    assert "--axes applies to NIfTI images (.nii, .nii.gz) only, got --image img.npy" in err


def test_a_strongly_negative_split_half_reliability_is_described():
    # Spearman-Brown of a negative half-correlation goes below -1 (8 masks, 9 voxels: -5.6)
    from maskscope.explanation import describe_reliability

    assert describe_reliability(-5.64, "SegRISE").startswith("reliability -5.64 (mostly noise")
