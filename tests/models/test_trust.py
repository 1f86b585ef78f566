"""The trust boundary: model files that could run code from their pickled parts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from maskscope.models import UntrustedModelError, load_model
from tests.crafted import crafted_pt2, crafted_torchscript, writing_torchscript


def test_crafted_pt2_runs_no_code_without_the_switch(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = crafted_pt2(tmp_path, marker)
    with pytest.raises(UntrustedModelError, match=r"refusing to load .*crafted\.pt2.*trusted=True"):
        load_model(path)
    with pytest.raises(UntrustedModelError):
        load_model(str(path), device="cpu")
    assert not marker.exists()


def test_crafted_pt2_loads_with_the_switch_and_its_code_runs(tmp_path: Path, caplog) -> None:
    # what the switch means: torch.export.load does run the archive's pickled code
    marker = tmp_path / "marker.txt"
    path = crafted_pt2(tmp_path, marker)
    # torch 2.13 logs the fallback to a full unpickle with a malformed format string
    caplog.set_level(logging.CRITICAL, logger="torch._export.serde.serialize")
    model = load_model(path, trusted=True)
    assert marker.read_text() == "ran"
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 2, 8, 8)


def test_trusted_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="trusted must be True or False, got 'yes'"):
        load_model("shapes2d", trusted="yes")  # type: ignore[arg-type]


def test_torchscript_unpickler_refuses_python_globals(tmp_path: Path) -> None:
    # torch.jit.load's own unpickler resolves globals to TorchScript types only
    marker = tmp_path / "marker.txt"
    path = crafted_torchscript(tmp_path, marker)
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        load_model(path, trusted=True)
    assert not marker.exists()


def test_a_torchscript_program_writing_a_file_needs_the_switch(tmp_path: Path, capsys) -> None:
    """TorchScript can write any file (here by ``torch.from_file``): refused unless trusted."""
    from maskscope.cli import main

    target = tmp_path / "written.txt"
    path = writing_torchscript(tmp_path, target)
    with pytest.raises(UntrustedModelError, match=r"writes\.pt'.*TorchScript file is a program"):
        load_model(path)
    np_image = tmp_path / "img.npy"
    import numpy as np

    np.save(np_image, np.ones((8, 8), np.float32))
    argv = ["explain", "--model", str(path), "--image", str(np_image), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "m.npy"), "--n-masks", "2"]) == 2
    assert "allow it with --trust-model" in capsys.readouterr().err
    assert not target.exists()  # refused before torch opened the file
    model = load_model(path, trusted=True)
    assert model(torch.ones(1, 1, 8, 8)).shape == (1, 2, 8, 8)
    assert target.read_bytes() == b"written"  # what the switch allows
