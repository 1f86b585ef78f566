"""The command line: nothing written over an input, outputs checked before the run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from maskscope.cli import main
from tests.crafted import crafted_pt2

from . import counting_factory

FACTORY = "tests.fuzz.counting_factory:make"


@pytest.fixture
def img(tmp_path: Path) -> Path:
    arr = np.zeros((24, 24), np.float32)
    arr[6:15, 5:17] = 1.0
    path = tmp_path / "img.npy"
    np.save(path, arr)
    counting_factory.CALLS.clear()
    return path


def explain(img: Path, out: str | Path, *extra: str, model: str = FACTORY) -> int:
    argv = ["explain", "--model", model, "--image", str(img), "--out", str(out)]
    return main([*argv, "--n-masks", "8", "--grid", "4", "--quiet", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("maskscope: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err  # warnings may come first
    return errors[0]


@pytest.mark.parametrize(
    "out",
    [
        "{img}",
        "{dir}/./img.npy",
        "{dir}/sub/../img.npy",
        "{dir}/link.npy",  # a symlink to the input
        "{dir}/hard.npy",  # a hard link to the input
    ],
)
def test_out_resolving_to_the_input_is_refused_before_the_run(img, capsys, out) -> None:
    (img.parent / "sub").mkdir()
    os.symlink(img, img.parent / "link.npy")
    os.link(img, img.parent / "hard.npy")
    before = img.read_bytes()
    code = explain(img, out.format(img=img, dir=img.parent))
    assert code == 2
    assert "is the --image file" in one_error_line(capsys)
    assert img.read_bytes() == before and counting_factory.CALLS == []


def test_out_equal_to_the_reference_is_refused(img, tmp_path, capsys) -> None:
    ref = tmp_path / "ref.npy"
    np.save(ref, (np.load(img) > 0).astype(np.uint8))
    before = ref.read_bytes()
    assert explain(img, ref, "--reference", str(ref)) == 2
    assert "--out" in (err := one_error_line(capsys)) and "is the --reference file" in err
    assert ref.read_bytes() == before


def test_png_sidecar_colliding_with_the_input_is_refused(tmp_path, capsys) -> None:
    src = tmp_path / "scan.png"
    src.write_bytes(b"an input the user keeps")
    assert explain(src, tmp_path / "scan.npy", "--png") == 2
    assert "--png (the overlay)" in (err := one_error_line(capsys)) and "scan.png" in err
    assert src.read_bytes() == b"an input the user keeps"


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("{dir}/missing/map.npy", "the folder {dir}/missing does not exist"),
        ("{dir}/img.npy/map.npy", "does not exist"),  # the "folder" is a file
        ("{dir}", "is a folder"),
        ("{dir}/map.png", "--out needs a file name ending in .npy"),
        ("{dir}/map", "--out needs a file name ending in .npy"),
    ],
)
def test_unusable_output_is_reported_before_the_model_runs(img, capsys, out, message) -> None:
    assert explain(img, out.format(dir=img.parent)) == 2
    assert message.format(dir=img.parent) in one_error_line(capsys)
    assert counting_factory.CALLS == []


@pytest.mark.parametrize(
    ("name", "png"),
    [("run.v2.npy", "run.v2.png"), ("a.b.c.tif", "a.b.c.png")],
)
def test_png_sidecar_keeps_the_whole_stem(img, tmp_path, name, png) -> None:
    unrelated = tmp_path / (name.split(".")[0] + ".png")
    unrelated.write_bytes(b"someone else's picture")
    assert explain(img, tmp_path / name, "--png") == 0
    assert (tmp_path / png).is_file()
    assert unrelated.read_bytes() == b"someone else's picture"


def test_sidecar_name_rule() -> None:
    from maskscope._outpaths import png_sidecar

    assert png_sidecar(Path("d/map.nii.gz")) == Path("d/map.png")
    assert png_sidecar(Path("d/run.v2.NPY")) == Path("d/run.v2.png")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--spacing", "1,2,3"], "--spacing needs 2 values (one per spatial axis of the image)"),
        (["--n-masks", "0"], "--n-masks must be in [1, 1e+06], got 0"),
        (["--seed", "-3"], "--seed must be in [0, inf], got -3"),
        (["--p-keep", "nan"], "--p-keep must be finite, got nan"),
        (["--target", "5"], "target must be a class index in [0, 1]"),
        (["--slices", "a,b"], "--slices must be 'all' or slice indices like 10,11,12, got 'a,b'"),
        (["--slices", "3"], "slices applies to a 2D model on a volume"),
    ],
)
def test_bad_flags_name_the_flag(img, tmp_path, capsys, flags, message) -> None:
    assert explain(img, tmp_path / "o.npy", *flags) == 2
    assert message in one_error_line(capsys)
    # at most unperturbed passes (the target's range is the model's number of classes)
    assert set(counting_factory.CALLS) <= {1}


def test_one_spacing_value_is_used_for_every_axis(img, tmp_path) -> None:
    assert explain(img, tmp_path / "o.npy", "--spacing", "2") == 0


def test_crafted_pt2_needs_trust_model(img, tmp_path, capsys, caplog) -> None:
    # torch 2.13 logs the fallback to a full unpickle with a malformed format string
    caplog.set_level(logging.CRITICAL, logger="torch._export.serde.serialize")
    marker = tmp_path / "marker.txt"
    model = crafted_pt2(tmp_path, marker)
    arr = np.zeros((8, 8), np.float32)
    arr[2:6, 2:6] = 1.0
    small = tmp_path / "small.npy"
    np.save(small, arr)
    assert explain(small, tmp_path / "o.npy", model=str(model)) == 2
    err = one_error_line(capsys)
    assert "refusing to load" in err and "allow it with --trust-model" in err
    assert not marker.exists()
    assert explain(small, tmp_path / "o.npy", "--trust-model", model=str(model)) == 0
    assert marker.exists() and (tmp_path / "o.npy").is_file()
