"""``maskscope batch --patch-size``: every case run by sliding window, as ``explain`` runs it."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from maskscope import SegRISE, SlidingWindow
from maskscope.batch import Job
from maskscope.cli import main
from tests.distributed.cases import image2d


class AgainstTheMean(torch.nn.Module):
    """Foreground where a voxel is brighter than the input's mean: a sliding window's
    patches each have their own mean, so the window changes the segmentation."""

    def forward(self, x):
        z = 8.0 * (x - x.mean(dim=tuple(range(2, x.ndim)), keepdim=True))
        return torch.cat([-z, z], 1)


@pytest.fixture
def model_spec(monkeypatch):
    module = types.ModuleType("maskscope_against_the_mean_probe")
    module.make = lambda: AgainstTheMean().eval()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return f"{module.__name__}:make"


FLAGS = ["--n-masks", "16", "--grid", "4", "--seed", "1", "--batch-size", "8", "--quiet"]


def test_batch_runs_the_model_by_sliding_window_as_explain_does(tmp_path, capsys, model_spec):
    image = image2d(0)
    np.save(tmp_path / "img.npy", image)
    patch = ["--patch-size", "8", "--patch-overlap", "0.5", "--patch-blend", "gaussian"]
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "img.npy"), "--model", model_spec, "--out", str(out)]
    assert main([*argv, *patch, *FLAGS, "--num-parts", "1", "--part-id", "0"]) == 0
    window = SlidingWindow(AgainstTheMean().eval(), 8, overlap=0.5, blend="gaussian")
    want = SegRISE(window).explain(image, n_masks=16, grid=4, seed=1, batch_size=8)
    whole = SegRISE(AgainstTheMean().eval()).explain(
        image, n_masks=16, grid=4, seed=1, batch_size=8
    )
    got = np.load(out / "maps" / "img.npy")
    np.testing.assert_allclose(got, want.map.astype("f4"), rtol=1e-6)
    assert not np.allclose(got, whole.map.astype("f4"), rtol=1e-6)
    capsys.readouterr()
    assert main([*argv[:-1], str(tmp_path / "o2"), "--patch-overlap", "0.5", *FLAGS]) == 2
    assert "only tune(s) the sliding window of --patch-size" in capsys.readouterr().err


def test_a_job_checks_its_sliding_window():
    with pytest.raises(ValueError, match="overlap"):
        Job(patch={"patch_size": 8, "overlap": 1.5}).check()
    with pytest.raises(TypeError, match="patch must be a dict"):
        Job(patch=8).check()
