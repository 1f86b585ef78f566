"""``maskscope explain --roi/--crop/--patch-size``: the same maps as the API; errors name flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import SegRISE, SlidingWindow
from maskscope.cli import main
from maskscope.io import read_image, write_map
from tests.conftest import ThresholdNet

FACTORY = "tests.cli.threshold_factory:make"


def _image() -> np.ndarray:
    img = np.zeros((24, 26), np.float32)
    img[3:9, 3:10] = 1.0
    img[14:21, 15:23] = 1.0
    return img


def _run(tmp_path, *flags: str) -> int:
    src = tmp_path / "img.npy"
    write_map(src, _image())
    args = ["explain", "--model", FACTORY, "--image", str(src), "--out", str(tmp_path / "m.npy")]
    return main([*args, "--n-masks", "20", "--grid", "4", "--quiet", *flags])


@pytest.mark.parametrize("crop", [None, "auto", "2", "off"])
def test_roi_box_and_crop_give_the_api_map(tmp_path, crop, capsys):
    flags = ["--roi", "12:22,13:25"] + ([] if crop is None else ["--crop"])
    flags += [] if crop in (None, "auto") else [crop]
    assert _run(tmp_path, *flags) == 0, capsys.readouterr().err
    given = {"auto": True, "2": 2, "off": False}
    kw = {} if crop is None else {"crop": given[crop]}
    want = SegRISE(ThresholdNet(2)).explain(_image(), roi="12:22,13:25", n_masks=20, grid=4, **kw)
    np.testing.assert_allclose(read_image(tmp_path / "m.npy").data, want.map, rtol=1e-6)
    out = capsys.readouterr().out
    with torch.no_grad():
        labels = ThresholdNet(2)(torch.from_numpy(_image())[None, None]).argmax(1)[0].numpy()
    assert f"; inside --roi: class 1 {int(labels[12:22, 13:25].sum())}\n" in out
    assert int(labels[12:22, 13:25].sum()) < int(labels.sum())
    if crop == "off":
        assert "crop_window" not in want.params and "--window" not in out
    else:  # the window is printed, as 'maskscope evaluate --window' takes it
        box = ",".join(f"{a}:{b}" for a, b in want.params["crop_window"])
        assert f"the model ran on the window {box}" in out
        flags = f"maskscope evaluate --map {tmp_path / 'm.npy'} --roi 12:22,13:25 --window {box} "
        assert flags in out


def test_open_ended_roi_box_is_a_box_not_a_file(tmp_path, capsys):
    assert _run(tmp_path, "--roi", "12:,13:") == 0, capsys.readouterr().err
    want = SegRISE(ThresholdNet(2)).explain(_image(), roi="12:24,13:26", n_masks=20, grid=4)
    np.testing.assert_allclose(read_image(tmp_path / "m.npy").data, want.map, rtol=1e-6)


def test_roi_mask_file(tmp_path, capsys):
    mask = np.zeros((24, 26), np.uint8)
    mask[2:10, 2:11] = 1
    write_map(tmp_path / "roi.npy", mask)
    assert _run(tmp_path, "--roi", str(tmp_path / "roi.npy")) == 0, capsys.readouterr().err
    want = SegRISE(ThresholdNet(2)).explain(_image(), roi=mask.astype(bool), n_masks=20, grid=4)
    np.testing.assert_allclose(read_image(tmp_path / "m.npy").data, want.map, rtol=1e-6)


def test_patch_size_runs_by_sliding_window(tmp_path, capsys):
    assert _run(tmp_path, "--patch-size", "16", "--patch-overlap", "0.5") == 0
    model = SlidingWindow(ThresholdNet(2), 16, overlap=0.5)
    want = SegRISE(model).explain(_image(), n_masks=20, grid=4)
    np.testing.assert_allclose(read_image(tmp_path / "m.npy").data, want.map, rtol=1e-6)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--roi", "0:4,30:40"], "--roi: the ROI box 0:4,30:40 must lie inside the image"),
        (
            ["--roi", "nofile.npy"],
            "--roi must be a box like 10:42,0:64,5:37 (10: runs to the end) or a mask file",
        ),
        (["--roi", "0:4"], "--roi: the ROI box needs one range per spatial axis"),
        (["--crop"], "--crop needs --roi"),
        (["--roi", "0:4,0:4", "--crop", "a"], "--crop takes no value, 'off' or a margin in voxels"),
        (["--patch-size", "0"], "--patch-size must be a positive int"),
        (["--patch-size", "16", "--patch-overlap", "1"], "--patch-overlap must be in [0, 1)"),
        (
            ["--patch-overlap", "0.5", "--patch-blend", "gaussian"],
            "--patch-overlap, --patch-blend only tune(s) the sliding window of --patch-size",
        ),
        (
            ["--patch-size", "16,16,16"],
            "--patch-size needs one value or 2 (one per spatial axis of the 2D model), got 3",
        ),
    ],
)
def test_bad_flags_name_the_flag(tmp_path, capsys, flags, message):
    assert _run(tmp_path, *flags) == 2
    assert message in capsys.readouterr().err


def test_a_crop_margin_too_small_is_one_warning_line_in_flags(tmp_path, capsys):
    """ThresholdNet's 3×3 filter needs a margin of 1: with 0, the window's edge is padding."""
    img = _image() + 0.3 * np.random.default_rng(0).random((24, 26)).astype(np.float32)
    write_map(tmp_path / "img.npy", img)
    args = ["explain", "--model", FACTORY, "--image", str(tmp_path / "img.npy"), "--quiet"]
    args += ["--out", str(tmp_path / "m.npy"), "--n-masks", "8", "--grid", "4"]
    args += ["--roi", "12:22,13:25", "--pad-multiple", "1"]
    assert main([*args, "--crop", "0"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("maskscope: warning: the crop margin 0 is too small for this model")
    assert "or --crop to estimate it" in err and "crop=True" not in err and ".py:" not in err
    assert main([*args, "--crop", "1"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_crop_skipped_says_why_and_prints_no_window(tmp_path, capsys):
    img = np.zeros((16, 16), np.float32)
    img[4:10, 5:12] = 1.0
    write_map(tmp_path / "small.npy", img)
    args = ["explain", "--model", FACTORY, "--image", str(tmp_path / "small.npy"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "m.npy"), "--roi", "4:10,5:12"]) == 0
    out = capsys.readouterr().out
    assert "not cropped, the model ran on the whole image: the ROI's box plus the receptive " in out
    assert "--window" not in out
