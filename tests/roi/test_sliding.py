"""Sliding-window inference: patch-only models on larger volumes, memory, equality."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import SegRISE
from maskscope._engine.sliding import SlidingWindow
from tests.conftest import ThresholdNet

PATCH = 16


class PatchOnly(nn.Module):
    """A fully convolutional net that refuses any input but a 16³ patch; counts patches."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv3d(1, 4, kernel, padding=kernel // 2), nn.Tanh(), nn.Conv3d(4, 2, 1)
        )
        self.batches: list[int] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != (PATCH,) * 3:
            raise ValueError(f"this model takes {PATCH}³ patches only, got {tuple(x.shape[2:])}")
        self.batches.append(int(x.shape[0]))
        return self.body(x)


def _starts(n: int, interval: int) -> list[int]:
    """Patch starts along one axis as MONAI lays them out (the last one flush with the end)."""
    count = math.ceil((n - PATCH) / interval) + 1 if n > PATCH else 1
    return sorted({min(i * interval, n - PATCH) for i in range(count)})


def _safe_voxels(shape: tuple[int, ...], overlap: float, radius: int) -> np.ndarray:
    """Voxels whose receptive field lies inside every patch covering them (or the image)."""
    interval = int(PATCH * (1 - overlap))
    safe = []
    for n in shape:
        ok = np.ones(n, dtype=bool)
        for s in _starts(n, interval):
            inner_lo = s + radius if s > 0 else 0  # the image's edge pads as a direct run does
            inner_hi = s + PATCH - radius if s + PATCH < n else n
            covered = np.zeros(n, dtype=bool)
            covered[s : s + PATCH] = True
            inside = np.zeros(n, dtype=bool)
            inside[inner_lo:inner_hi] = True
            ok &= ~covered | inside
        safe.append(ok)
    return np.logical_and.outer(np.logical_and.outer(safe[0], safe[1]), safe[2])


@pytest.mark.parametrize("kernel", [1, 3])
def test_patch_model_runs_on_a_larger_volume_and_equals_a_direct_run_where_they_coincide(kernel):
    model = PatchOnly(kernel)
    sw = SlidingWindow(model, PATCH, overlap=0.5, patch_batch=3)
    x = torch.randn(5, 1, 40, 36, 24, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got = sw(x)
        direct = model.body(x)
    assert got.shape == (5, 2, 40, 36, 24)
    # every call had at most 3 patches, whatever the number of volumes
    n_windows = np.prod([len(_starts(n, PATCH // 2)) for n in (40, 36, 24)])
    assert max(model.batches) == 3 and sum(model.batches) == 5 * n_windows
    assert len(model.batches) == math.ceil(5 * n_windows / 3)
    safe = torch.from_numpy(_safe_voxels((40, 36, 24), 0.5, kernel // 2))
    # a blend of k ≤ 8 equal values: |Σ y / k − y| ≤ k·2⁻²⁴·|y| (float32 sums of k terms)
    bound = 8 * 2.0**-24 * direct.abs().amax()
    assert (got - direct)[..., safe].abs().max() <= bound
    if kernel > 1:  # and elsewhere the patch edges show
        assert (got - direct)[..., ~safe].abs().max() > 1e-3


def test_a_method_explains_a_volume_through_a_patch_model():
    model = PatchOnly(1)
    vol = torch.rand(40, 36, 24, generator=torch.Generator().manual_seed(2))
    method = SegRISE(SlidingWindow(model, PATCH, overlap=0.25, patch_batch=4))
    assert method.spatial_dims == 3  # read through the wrapper
    with pytest.raises(Exception, match=r"takes 16³ patches only, got \(40, 36, 24\)"):
        SegRISE(model).explain(vol.numpy(), n_masks=4)
    got = method.explain(vol.numpy(), n_masks=24, grid=3, batch_size=6)
    direct = SegRISE(model.body).explain(vol.numpy(), n_masks=24, grid=3, batch_size=6)
    np.testing.assert_array_equal(got.reference, direct.reference)
    np.testing.assert_allclose(got.map, direct.map, rtol=0, atol=1e-9)
    assert max(model.batches) <= 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": 0}, "patch_size must be a positive int"),
        ({"patch_size": 16, "overlap": 1.0}, "overlap must be in [0, 1)"),
        ({"patch_size": 16, "blend": "max"}, "blend must be one of ('constant', 'gaussian')"),
        ({"patch_size": 16, "patch_batch": 0}, "patch_batch must be an int >= 1"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SlidingWindow(PatchOnly(1), **kwargs)


class _NeedsEight(nn.Module):
    """Concatenates the input with an 8× down- and up-sampled copy: sizes must divide 8."""

    def forward(self, x):
        up = nn.functional.avg_pool3d(x, 8, ceil_mode=True)
        for axis in (-1, -2, -3):
            up = up.repeat_interleave(8, axis)
        both = torch.cat([x, up], dim=1)  # fails unless every size divides 8
        return torch.cat([0.5 - x, x - 0.5], dim=1) + 0.0 * both[:, 1:]


def test_a_patch_size_the_network_cannot_take_is_blamed_on_the_patch_size():
    from maskscope._engine.failures import ModelError
    from maskscope.wording import for_cli, for_gui

    vol = np.zeros((24, 24, 24), np.float32)
    vol[8:16, 8:16, 8:16] = 1.0
    model = _NeedsEight().eval()
    SegRISE(SlidingWindow(model, 16), spatial_dims=3).explain(vol, n_masks=2, grid=4)
    with pytest.raises(ModelError) as err:
        SegRISE(SlidingWindow(model, 12), spatial_dims=3).explain(vol, n_masks=2, grid=4)
    text = str(err.value)
    assert "on patches of shape (12, 12, 12)" in text and "Sizes of tensors must match" in text
    assert "patch_size=16,16,16 for a factor of 16" in text and "pad_multiple" not in text
    assert "--patch-size 16,16,16" in for_cli(text)
    assert '"patch size" = 16,16,16' in for_gui(text)


def test_a_patch_size_of_the_wrong_length_is_no_model_failure():
    from maskscope._engine.sliding import PatchSizeError

    img = np.zeros((16, 16), np.float32)
    img[4:10, 4:10] = 1.0
    with pytest.raises(PatchSizeError, match="patch_size has 3 values for an input with 2"):
        SegRISE(SlidingWindow(ThresholdNet(2), (8, 8, 8))).explain(img, n_masks=2, grid=4)
