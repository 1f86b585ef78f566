"""``maskscope evaluate`` end to end on .npy files; bad input names the flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from maskscope import SegRISE, faithfulness
from maskscope.cli import main
from tests.conftest import ThresholdNet

FACTORY = "tests.cli.threshold_factory:make"


@pytest.fixture
def files(tmp_path):
    img = np.zeros((24, 24), np.float32)
    img[6:15, 5:17] = 1.0
    np.save(tmp_path / "img.npy", img)
    return tmp_path, img


def evaluate(tmp_path, *extra):
    return main(["evaluate", "--model", FACTORY, "--image", str(tmp_path / "img.npy"), *extra])


def test_map_file_from_explain_end_to_end(files, capsys):
    tmp_path, img = files
    explain = ["explain", "--model", FACTORY, "--image", str(tmp_path / "img.npy")]
    out = ["--out", str(tmp_path / "map.npy"), "--quiet"]
    code = main([*explain, "--n-masks", "40", "--grid", "4", "--seed", "1", *out])
    assert code == 0
    capsys.readouterr()
    png, js = tmp_path / "curves.png", tmp_path / "curves.json"
    code = evaluate(
        tmp_path, "--map", str(tmp_path / "map.npy"), "--steps", "8", "--random-orders", "2",
        "--substrate", "blur", "--blur-sigma", "2", "--batch-size", "3",
        "--png", str(png), "--json", str(js), "--quiet",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    want = faithfulness(
        np.load(tmp_path / "map.npy"), model=ThresholdNet(2), image=img, steps=8, n_random=2,
        substrate="blur", blur_sigma=2.0,
    )  # fmt: skip
    got = json.loads(js.read_text())
    for name, curve in want.curves().items():
        for score in ("dice", "probability"):
            assert got["curves"][name][score]["auc"] == pytest.approx(curve.auc(score), rel=1e-6)
    assert "map.npy: blur substrate, 8 steps, 2 random order(s), 55 forward passes" in out
    table = out.split("\n", 1)[1]
    assert table.startswith(want.table().splitlines()[0])
    assert f"deletion   dice         {want.auc('deletion'):.4f}" in table
    assert Image.open(png).size[0] == 880
    assert f"wrote {png}" in out and f"wrote {js}" in out


def test_method_computes_the_map(files, capsys):
    tmp_path, img = files
    code = evaluate(tmp_path, "--method", "segrise", "--n-masks", "30", "--grid", "4",
                    "--seed", "2", "--steps", "5", "--random-orders", "0", "--quiet")  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    expl = SegRISE(ThresholdNet(2)).explain(img, n_masks=30, grid=4, seed=2)
    want = faithfulness(expl, model=ThresholdNet(2), steps=5, n_random=0)
    assert out.startswith("SegRISE map: zero substrate, 5 steps, 0 random order(s)")
    assert f"insertion  dice         {want.auc('insertion'):.4f}" in out


def two_segments(tmp_path):
    """Two squares that the model segments, and a box around the first one."""
    img = np.zeros((24, 24), np.float32)
    img[3:9, 3:9] = 1.0
    img[14:21, 12:22] = 1.0
    np.save(tmp_path / "two.npy", img)
    return img, "1:11,1:11"


@pytest.mark.parametrize("source", ["map", "method"])
def test_roi_scores_inside_the_region(tmp_path, capsys, source):
    img, box = two_segments(tmp_path)
    expl = SegRISE(ThresholdNet(2)).explain(img, roi=box, n_masks=30, grid=4, seed=2)
    np.save(tmp_path / "map.npy", expl.map)
    given = ["--map", str(tmp_path / "map.npy")] if source == "map" else ["--method", "segrise"]
    window = ",".join(f"{a}:{b}" for a, b in expl.params["crop_window"])
    if source == "map":  # a map file does not know the window: it is given
        given += ["--window", window]
    code = main([
        "evaluate", "--model", FACTORY, "--image", str(tmp_path / "two.npy"), *given,
        "--roi", "1:11,1:11", "--n-masks", "30", "--grid", "4", "--seed", "2",
        "--steps", "5", "--random-orders", "0", "--json", str(tmp_path / "c.json"), "--quiet",
    ])  # fmt: skip
    assert code == 0
    got = json.loads((tmp_path / "c.json").read_text())["curves"]["deletion"]
    want = faithfulness(expl, model=ThresholdNet(2), steps=5, n_random=0)
    assert want.deletion.scores("dice")[0] == pytest.approx(1.0)
    assert got["dice"]["auc"] == pytest.approx(want.deletion.auc("dice"), rel=1e-9)
    assert (
        f"curves over the {want.n_voxels} voxels of the window {window}" in capsys.readouterr().out
    )
    whole = faithfulness(expl.map, model=ThresholdNet(2), image=img, steps=5, n_random=0)
    assert whole.deletion.auc("dice") != pytest.approx(got["dice"]["auc"], rel=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "give --map FILE (a saliency map) or --method NAME (to compute one), got neither"),
        (("--map", "m.npy", "--method", "rise"), "got both"),
        (("--method", "rise", "--steps", "0"), "--steps must be a positive integer, got 0"),
        (("--method", "rise", "--random-orders", "-1"), "--random-orders must be 0 or more"),
        (("--method", "rise", "--png", "c.jpg"), "--png needs a file name ending in .png"),
        (("--method", "rise", "--batch-size", "0"), "--batch-size must be at least 1, got 0"),
        (("--map", "WRONG"), "--map must have the --image's spatial shape (24, 24), got (24, 23)"),
        (("--method", "rise", "--reference", "EMPTY"), "--reference has no voxel of foreground"),
        (
            ("--map", "EMPTY", "--target", "0", "--reference", "ONES"),
            "no voxel of class 0 (--target)",
        ),
        (("--method", "rise", "--reference", "WRONG"), "--reference must have the --image's"),
        (("--method", "rise", "--roi", "0:30,0:5"), "--roi: the ROI box 0:30,0:5 must lie"),
        (("--method", "rise", "--roi", "nofile.npy"), "--roi must be a box like 10:42,0:64"),
        (("--method", "rise", "--window", "0:30,0:5"), "--window: the window box 0:30,0:5 must"),
        (("--map", "EMPTY", "--crop", "4"), "--crop says how --method computes the map"),
        (("--method", "rise", "--slice", "3"), "--slice is for a 2D model on a volume"),
        (("--method", "rise", "--window", "all"), "--window: a box is one start:stop range"),
        (
            ("--map", "EMPTY", "--reference", "CORNER", "--roi", "20:,20:"),
            "--reference has no voxel of foreground (labels > 0) inside --roi",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(files, capsys, extra, message):
    tmp_path, _ = files
    np.save(tmp_path / "wrong.npy", np.zeros((24, 23)))
    np.save(tmp_path / "empty.npy", np.zeros((24, 24), np.int64))
    np.save(tmp_path / "ones.npy", np.ones((24, 24), np.int64))
    corner = np.zeros((24, 24), np.int64)
    corner[:5, :5] = 1
    np.save(tmp_path / "corner.npy", corner)
    names = ("WRONG", "EMPTY", "ONES", "CORNER")
    paths = {n: str(tmp_path / f"{n.lower()}.npy") for n in names}
    code = evaluate(tmp_path, *[paths.get(e, e) for e in extra], "--quiet")
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("maskscope: error: ") and message in err and err.count("\n") == 1


def test_the_command_that_explain_prints_evaluates_the_roi(tmp_path, capsys):
    """Run as printed (with the model and image flags), it gives the API's ROI curves."""
    img, box = two_segments(tmp_path)
    common = ["--model", FACTORY, "--image", str(tmp_path / "two.npy")]
    out = tmp_path / "m.npy"
    explain = ["explain", *common, "--out", str(out), "--roi", box, "--n-masks", "30"]
    assert main([*explain, "--grid", "4", "--seed", "2", "--target", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out.split("to evaluate the map there: ")[1].split(" (with")[0]
    argv = printed.split()[1:]  # the words after 'maskscope'
    assert argv[:3] == ["evaluate", "--map", str(out)] and "--roi" in argv
    assert argv[argv.index("--target") + 1] == "1"  # what the curves score, as explained
    js = tmp_path / "c.json"
    assert main([*argv, *common, "--steps", "5", "--random-orders", "0", "--json", str(js)]) == 0
    expl = SegRISE(ThresholdNet(2)).explain(img, roi=box, n_masks=30, grid=4, seed=2)
    want = faithfulness(expl, model=ThresholdNet(2), steps=5, n_random=0)
    got = json.loads(js.read_text())
    assert got["window"] == want.window is not None
    assert got["curves"]["deletion"]["dice"]["auc"] == pytest.approx(want.auc("deletion"))
    assert got["inputs"]["roi"] == box and got["inputs"]["map"] == str(out)
    assert "warning" not in capsys.readouterr().err
    assert main(["evaluate", *common, "--map", str(out), "--window", got["inputs"]["roi"]]) == 0
    assert "maskscope: warning: --window without --roi" in capsys.readouterr().err


def test_a_slice_of_a_volume_for_a_2d_model(tmp_path, capsys):
    """``--slice``: the slice of the volume as 'explain' normalised it, its ROI part, the
    in-plane window; the same curves as ``faithfulness(expl, slice_index=z)``."""
    vol = np.zeros((4, 20, 22), np.float32)
    vol[:, 2:8, 2:8] = 1.0
    vol[:, 12:18, 12:20] = 1.0
    vol = vol * 300 + 40  # far from [0, 1]: the normalisation matters
    np.save(tmp_path / "vol.npy", vol)
    common = ["evaluate", "--model", FACTORY, "--image", str(tmp_path / "vol.npy")]
    common += ["--normalize", "minmax", "--steps", "4", "--random-orders", "0", "--quiet"]
    roi, kw = "1:3,0:10,0:10", dict(n_masks=12, grid=3, seed=0)
    expl = SegRISE(ThresholdNet(2)).explain(vol, roi=roi, slices=[2], normalize="minmax", **kw)
    want = faithfulness(expl, model=ThresholdNet(2), slice_index=2, steps=4, n_random=0)
    assert want.window is not None and want.deletion.scores("dice")[0] == pytest.approx(1.0)
    js = tmp_path / "m.json"
    method = ["--method", "segrise", "--n-masks", "12", "--grid", "3", "--seed", "0"]
    assert main([*common, *method, "--roi", roi, "--slice", "2", "--json", str(js)]) == 0
    got = json.loads(js.read_text())
    assert got["slice_index"] == 2 and got["window"] == want.window
    assert got["curves"]["deletion"]["dice"]["auc"] == pytest.approx(want.auc("deletion"))
    np.save(tmp_path / "map.npy", expl.map)
    window = ",".join(f"{a}:{b}" for a, b in want.window)
    argv = ["--map", str(tmp_path / "map.npy"), "--roi", roi, "--slice", "2", "--window", window]
    assert main([*common, *argv, "--json", str(js)]) == 0
    got = json.loads(js.read_text())
    assert got["window"] == want.window and got["inputs"]["slice"] == 2
    assert got["curves"]["deletion"]["dice"]["auc"] == pytest.approx(want.auc("deletion"))
    assert got["curves"]["insertion"]["dice"]["auc"] == pytest.approx(want.auc("insertion"))
    capsys.readouterr()
    assert main([*common, "--map", str(tmp_path / "map.npy")]) == 2
    assert "a 2D model: give --slice Z to evaluate one slice" in capsys.readouterr().err
    assert main([*common, *argv[:4], "--slice", "7"]) == 2
    assert "--slice must be a slice of the volume, in [0, 3], got 7" in capsys.readouterr().err
    assert main([*common, "--map", str(tmp_path / "map.npy"), "--roi", roi, "--slice", "0"]) == 2
    assert "--roi has no voxel in --slice 0" in capsys.readouterr().err


def test_unknown_substrate_is_refused_by_the_parser(files, capsys):
    tmp_path, _ = files
    with pytest.raises(SystemExit):
        evaluate(tmp_path, "--method", "rise", "--substrate", "noise")
    err = capsys.readouterr().err
    assert "argument --substrate: invalid choice: 'noise' (choose from" in err
    assert all(name in err.rsplit("choose from", 1)[1] for name in ("zero", "blur", "min"))
