"""WeightedSum: the factored sums equal the sums of the full-size masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine.accumulate import WeightedSum
from maskscope._engine.masks import RiseMasks
from tests.methods.reference import estimate_np, reliability_np

CPU = torch.device("cpu")


@pytest.mark.parametrize("est", ["centred", "paper"])
@pytest.mark.parametrize(
    ("spatial", "grid"), [((13, 11), 3), ((9, 10), (1, 4)), ((6, 7, 5), 2), ((5, 8, 6), (1, 3, 2))]
)
def test_factored_sums_equal_full_mask_sums(spatial, grid, est):
    gen = RiseMasks(spatial, grid, 0.5, seed=3, dtype=torch.float64)
    fast = WeightedSum(spatial, 0.5, CPU, factors=gen.factors, estimator=est)
    slow = WeightedSum(spatial, 0.5, CPU, estimator=est)
    used = []
    real = gen.factors

    def spy(masks):
        parts = real(masks)
        used.append(parts is not None)
        return parts

    fast.factors = spy
    weights = torch.rand(150, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xs = []
    for start in range(0, 150, 7):
        stop = min(start + 7, 150)
        masks = gen(start, stop)
        # L @ Y is the mask, and L has at most two adjacent non-zero weights per row
        lmat, y = gen.factors(masks)
        torch.testing.assert_close(torch.bmm(lmat, y).reshape(masks.shape), masks)
        nz = lmat != 0
        assert int(nz.sum(-1).max()) <= 2
        first = nz.float().argmax(-1, keepdim=True)
        beyond = torch.arange(lmat.shape[-1]) > first + 1
        assert not bool((nz & beyond).any())
        fast.update(start, masks, weights[start:stop])
        slow.update(start, masks.clone(), weights[start:stop])
        xs.append(masks.reshape(stop - start, -1).numpy())
    assert all(used) and len(used) == 22
    xs, w = np.concatenate(xs), weights.numpy()
    want, se = estimate_np(xs, w, 0.5, est)
    np.testing.assert_allclose(fast.mean().numpy(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.mean().numpy(), slow.mean().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.stderr().numpy(), se, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(slow.stderr().numpy(), se, rtol=1e-9, atol=1e-12)
    assert fast.reliability() == pytest.approx(reliability_np(xs, w, 0.5, est), rel=1e-9)
    assert slow.reliability() == pytest.approx(fast.reliability(), rel=1e-9)


def test_factored_sums_with_growing_chunks():
    spatial = (12, 10)
    gen = RiseMasks(spatial, 3, 0.5, seed=5)
    fast = WeightedSum(spatial, 0.5, CPU, factors=gen.factors)
    slow = WeightedSum(spatial, 0.5, CPU)
    start = 0
    for size in (1, 2, 5, 40, 3, 90):
        masks = gen(start, start + size)
        w = torch.linspace(0.1, 1.0, size)
        fast.update(start, masks, w)
        slow.update(start, masks.clone(), w)
        start += size
    torch.testing.assert_close(fast.mean(), slow.mean(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fast.stderr(), slow.stderr(), rtol=1e-4, atol=1e-7)


def test_factors_only_for_the_latest_full_render():
    gen = RiseMasks((8, 9), 3, 0.5, seed=0)
    a = gen(0, 4)
    assert gen.factors(a) is not None
    assert gen.factors(a.clone()) is None  # same values, another tensor
    b = gen(4, 8)
    assert gen.factors(a) is None and gen.factors(b) is not None
    gen(0, 4, rows=(2, 5))  # a slab has no factors, and forgets the last ones
    assert gen.factors(b) is None
