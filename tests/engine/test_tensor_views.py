"""A torch tensor that is a view (permuted, flipped, sliced) explains like its copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import HDM, RISE, PixelRISE, SegRISE
from tests.conftest import ThresholdNet

RUNS = [
    (SegRISE, dict(n_masks=8, grid=3, seed=0)),
    (RISE, dict(n_masks=8, grid=3, seed=0)),
    (PixelRISE, dict(n_masks=8, grid=3, seed=0, merge="max")),
    (HDM, dict(diameter=4.0, stride=3.0, sweep="full")),
]


def _volume() -> torch.Tensor:
    v = torch.zeros(14, 10, 8)
    v[4:10, 3:7, 2:6] = 1.0
    v[1:3, 1:3, 1:3] = 0.7
    return v


@pytest.mark.parametrize(("method", "kwargs"), RUNS, ids=[m.__name__ for m, _ in RUNS])
def test_a_permuted_and_flipped_view_gives_the_map_of_its_copy(method, kwargs):
    view = _volume().permute(2, 1, 0).flip(0)[None]  # (1, 8, 10, 14), not in memory order
    view = view[:, :, :, 1:]  # and a slice of it
    assert not view.is_contiguous()
    reference = (view[0] > 0.5).to(torch.uint8)  # a view too
    got = method(ThresholdNet(3)).explain(view, reference=reference, **kwargs)
    copy = view.contiguous().clone()
    want = method(ThresholdNet(3)).explain(copy, reference=reference.contiguous(), **kwargs)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-6, atol=1e-7)
    assert got.map.shape == (8, 10, 13)
