"""``maskscope explain``: each file format end to end; bad input → one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope import SegRISE
from maskscope.cli import main
from maskscope.io import read_image, write_map
from tests.conftest import ThresholdNet

FACTORY = "tests.cli.threshold_factory:make"


def image2d():
    img = np.zeros((24, 24), np.float32)
    img[6:15, 5:17] = 1.0
    return img


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".tif"])
def test_explain_round_trips_format(tmp_path, suffix, capsys):
    src = tmp_path / f"img{suffix}"
    if suffix == ".npz":
        np.savez(src, image=image2d())
    else:
        write_map(src, image2d())
    out = tmp_path / f"map{suffix}"
    code = main(
        [
            "explain",
            "--model",
            FACTORY,
            "--image",
            str(src),
            "--method",
            "segrise",
            "--n-masks",
            "30",
            "--grid",
            "4",
            "--seed",
            "2",
            "--out",
            str(out),
            "--png",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    got = read_image(out, key="map" if suffix == ".npz" else None).data
    want = SegRISE(ThresholdNet(2)).explain(image2d(), n_masks=30, grid=4, seed=2).map
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert (tmp_path / "map.png").is_file()
    printed = capsys.readouterr().out
    assert "wrote" in printed
    # the summary says, in words, how far another seed's map would agree
    rel = SegRISE(ThresholdNet(2)).explain(image2d(), n_masks=30, grid=4, seed=2).reliability
    assert f"reliability {rel:.2f} (" in printed


def test_explain_nifti_volume_keeps_spacing(tmp_path):
    nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")
    vol = np.zeros((10, 12, 6), np.float32)  # (x, y, z) on disk
    vol[3:7, 4:9, 1:5] = 1.0
    nib.save(nib.Nifti1Image(vol, np.diag([1.0, 1.0, 3.0, 1.0])), str(tmp_path / "v.nii.gz"))
    code = main(
        [
            "explain",
            "--model",
            "tests.cli.threshold_factory:make3d",
            "--image",
            str(tmp_path / "v.nii.gz"),
            "--method",
            "hdm",
            "--diameter",
            "4",
            "--stride",
            "3",
            "--out",
            str(tmp_path / "hdm.nii.gz"),
            "--quiet",
        ]
    )
    assert code == 0
    out = nib.load(str(tmp_path / "hdm.nii.gz"))
    assert out.shape == (10, 12, 6) and out.header.get_zooms()[:3] == (1.0, 1.0, 3.0)
    assert np.asarray(out.dataobj).max() > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image", "{tmp}/missing.npy"], "no such file"),
        (["--image", "{tmp}/img.bmp"], "unsupported file type .bmp"),
        (["--image", "{tmp}/img.npy", "--p-keep", "2"], "--p-keep must be in (0, 1)"),
        (["--image", "{tmp}/img.npy", "--reference", "{tmp}/small.npy"], "spatial shape (24, 24)"),
        (["--image", "{tmp}/img.npy", "--model", "nosuch.module:make"], "nosuch"),
        (["--image", "{tmp}/img.npy", "--method", "hdm", "--diameter", "500"], "diameter"),
        (  # found before the prediction line's model call, as the API finds it
            ["--image", "{tmp}/two.npy", "--model", "phantom3d"],
            "maskscope: error: the model takes 1 input channel(s), the image has 2: give an "
            "image with 1 channel(s) as (C, *spatial)",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, argv, message):
    np.save(tmp_path / "img.npy", image2d())
    np.save(tmp_path / "two.npy", np.zeros((2, 8, 8, 8), np.float32))
    np.save(tmp_path / "small.npy", np.zeros((5, 5), np.uint8))
    (tmp_path / "img.bmp").write_bytes(b"")
    args = ["explain", "--model", FACTORY, "--out", str(tmp_path / "o.npy"), "--quiet"]
    args += [a.format(tmp=tmp_path) for a in argv]
    if "--model" in argv:
        args = args[:1] + args[3:]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("maskscope: error: ") and err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tol", "1.5"], "--tol must be in (0, 1], got 1.5"),
        (["--p-keep", "1"], "--p-keep must be in (0, 1), got 1.0"),
        (["--method", "hdm", "--stride", "0"], "--stride"),
        (["--method", "hdm", "--tol", "0.1"], "HDM visits every centre once: early stopping"),
    ],
)
def test_bad_flags_are_refused_before_the_image_is_read_or_the_model_runs(
    tmp_path, capsys, argv, message
):
    args = ["explain", "--model", FACTORY, "--image", str(tmp_path / "not-there.npy")]
    code = main([*args, "--out", str(tmp_path / "o.npy"), "--quiet", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and message in err and "not-there" not in err
    assert "prediction" not in out


def test_a_run_stopped_by_tol_says_so(tmp_path, capsys):
    np.save(tmp_path / "img.npy", image2d())
    argv = ["explain", "--model", FACTORY, "--image", str(tmp_path / "img.npy"), "--quiet"]
    argv += ["--out", str(tmp_path / "o.npy"), "--n-masks", "4000", "--grid", "4"]
    assert main([*argv, "--tol", "0.2", "--min-masks", "20"]) == 0
    out = capsys.readouterr().out
    want = SegRISE(ThresholdNet(2)).explain(image2d(), n_masks=4000, grid=4, tol=0.2, min_masks=20)
    assert want.stopped_early and want.n_done < 4000
    line = f"stopped early: the reliability target (--tol) was reached after {want.n_done} of 4000"
    assert line in out
    assert main([*argv[:-4], "--n-masks", "20", "--grid", "4"]) == 0
    assert "stopped early" not in capsys.readouterr().out


def test_an_output_that_is_a_link_is_refused_and_its_target_kept(tmp_path, capsys):
    np.save(tmp_path / "img.npy", image2d())
    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    (tmp_path / "map.npy").symlink_to(victim)
    (tmp_path / "curves.json").symlink_to(victim)
    args = ["explain", "--model", FACTORY, "--image", str(tmp_path / "img.npy"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "map.npy")]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'map.npy'} is a symbolic link (to {victim})" in err
    evaluate = ["evaluate", "--model", FACTORY, "--image", str(tmp_path / "img.npy"), "--quiet"]
    assert main([*evaluate, "--method", "rise", "--json", str(tmp_path / "curves.json")]) == 2
    assert "--json" in capsys.readouterr().err
    assert victim.read_text() == "precious"
