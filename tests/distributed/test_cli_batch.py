"""``maskscope batch``: the subcommand on the test cluster and in parts; its messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskscope import SegRISE
from maskscope.cli import main
from maskscope.evaluate import faithfulness
from maskscope.io import read_image
from tests.conftest import ThresholdNet
from tests.distributed.cases import write_2d, write_broken

FLAGS = ["--n-masks", "16", "--grid", "4", "--seed", "2", "--batch-size", "8", "--quiet"]


def test_batch_on_the_cluster_then_again_skips_every_case(tmp_path, address, capsys):
    write_2d(tmp_path / "data", 3)
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "data"), "--model", "tests.cli.threshold_factory:make"]
    argv += ["--out", str(out), "--scheduler", address, *FLAGS]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(
        "3 case(s): 3 computed, 0 finished before, 0 failed; summary: "
    )
    assert main(argv) == 0
    assert "3 case(s): 0 computed, 3 finished before, 0 failed" in capsys.readouterr().out
    want = SegRISE(ThresholdNet(2)).explain(
        read_image(out.parent / "data" / "img01.tif").data, n_masks=16, grid=4, seed=2, batch_size=8
    )
    # the workers run torch on one thread, this process maybe on more: the convolution's
    # sums may round differently, so equal to float32 rounding, not bit for bit
    got = read_image(out / "maps" / "img01.tif").data
    np.testing.assert_allclose(got, want.map.astype("f4"), rtol=1e-5, atol=1e-7)


def test_a_failed_case_gives_status_1_and_a_line_naming_it(tmp_path, capsys):
    write_2d(tmp_path / "data", 1)
    write_broken(tmp_path / "data")
    argv = ["batch", str(tmp_path / "data"), "--model", "tests.cli.threshold_factory:make"]
    argv += ["--out", str(tmp_path / "out"), "--num-parts", "1", "--part-id", "0", *FLAGS]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "2 case(s): 1 computed, 0 finished before, 1 failed" in captured.out
    assert "maskscope: case broken failed: broken.npy: cannot read it as .npy" in captured.err


def test_evaluate_puts_the_deletion_and_insertion_aucs_in_the_summary(tmp_path):
    (path,) = write_2d(tmp_path / "data", 1)
    out = tmp_path / "out"
    argv = ["batch", str(path), "--model", "tests.cli.threshold_factory:make", "--out", str(out)]
    argv += ["--num-parts", "1", "--part-id", "0", "--evaluate", "--eval-steps", "6", *FLAGS]
    assert main(argv) == 0
    (row,) = json.loads((out / "summary.json").read_text())["cases"]
    model = ThresholdNet(2)
    expl = SegRISE(model).explain(np.load(path), n_masks=16, grid=4, seed=2, batch_size=8)
    want = faithfulness(expl, model=model, steps=6, n_random=1, batch_size=8)
    assert row["deletion_auc"] == pytest.approx(want.auc("deletion"), abs=1e-12)
    assert row["insertion_auc"] == pytest.approx(want.auc("insertion"), abs=1e-12)
    assert row["random_deletion_auc"] == pytest.approx(want.auc("deletion", random=True))
    assert "deletion_auc" in (out / "summary.csv").read_text().splitlines()[0].split(",")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-parts", "2"], "--num-parts and --part-id go together"),
        (["--num-parts", "2", "--part-id", "5"], "--part-id must be in [0, 1] for --num-parts 2"),
        (["--retries", "-1"], "--retries must be 0 or more, got -1"),
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--scheduler", "tcp://x:1", "--num-parts", "1"], "--scheduler and --num-parts"),
    ],
)
def test_bad_flags_give_status_2_and_the_flag(tmp_path, capsys, extra, message):
    write_2d(tmp_path / "data", 1)
    argv = ["batch", str(tmp_path / "data"), "--model", "shapes2d", "--out", str(tmp_path / "o")]
    assert main([*argv, *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_model_that_loads_on_no_worker_is_one_error_before_any_case(tmp_path, address, capsys):
    write_2d(tmp_path / "data", 2)
    argv = ["batch", str(tmp_path / "data"), "--model", "tests.cli.model_factories:broken"]
    argv += ["--out", str(tmp_path / "out"), "--scheduler", address, *FLAGS]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "maskscope: error: the model did not load on worker " in err
    assert "no GPU here" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == {"ok": 0, "failed": 0, "pending": 2}


def test_a_folder_of_pictures_gives_tiff_maps(tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "pics"
    data.mkdir()
    for i in range(2):
        img = np.full((20, 24), 20, np.uint8)
        img[4 + i : 12 + i, 5:15] = 230
        Image.fromarray(img).save(data / f"p{i}.png")
    out = tmp_path / "out"
    argv = ["batch", str(data), "--model", "tests.cli.threshold_factory:make", "--out", str(out)]
    assert main([*argv, "--num-parts", "1", "--part-id", "0", "--normalize", "minmax", *FLAGS]) == 0
    assert "2 case(s): 2 computed" in capsys.readouterr().out
    pixels = np.asarray(Image.open(data / "p1.png"), np.float32)
    want = SegRISE(ThresholdNet(2)).explain(
        (pixels - 20) / 210, n_masks=16, grid=4, seed=2, batch_size=8
    )
    got = read_image(out / "maps" / "p1.tif").data
    np.testing.assert_allclose(got, want.map.astype("f4"), rtol=1e-5, atol=1e-7)
