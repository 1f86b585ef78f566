"""PendingFactors: sums grouped by the first factor equal the per-mask sums."""

from __future__ import annotations

import pytest
import torch

from maskscope._engine.factor_sums import PendingFactors
from maskscope._engine.masks import RiseMasks


def direct(masks: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor):
    """``Σ c1ᵢ mᵢ`` and ``Σ c2ᵢ mᵢ²`` from the full-size masks, in float64."""
    m = masks.reshape(masks.shape[0], -1).double()
    return c1.double().T @ m, c2.double().T @ (m * m)


@pytest.mark.parametrize("spatial, grid", [((10, 9), 3), ((7, 6, 5), 2), ((12, 5, 6), (4, 2, 3))])
@pytest.mark.parametrize("chunks", [(5,), (1, 2, 3), (9, 1)])
def test_grouped_products_equal_per_mask_sums(spatial, grid, chunks):
    gen = RiseMasks(spatial, grid, 0.5, seed=3)
    n = sum(chunks)
    batch = gen.batch(0, n)
    lmat, y = batch.factors
    shifts = gen.params(0, n)[1][:, 0]
    assert len(set(shifts.tolist())) < n  # some masks share their first factor
    c1 = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    c2 = torch.randn(n, 3, generator=torch.Generator().manual_seed(2))
    pending = PendingFactors(lmat.shape[1], lmat.shape[2], y.shape[2], y, n, 4, 3)
    i = 0
    for size in chunks:  # held in several chunks, summed at once
        pending.add(lmat[i : i + size], y[i : i + size], c1[i : i + size], c2[i : i + size])
        i += size
    p1, p2 = pending.products()
    w1, w2 = direct(batch.masks, c1, c2)
    # float32 sums of n terms of size <= |c|: a few float32 ulps of the largest term sum
    tol = 8 * n * torch.finfo(torch.float32).eps * max(c1.abs().max(), c2.abs().max())
    torch.testing.assert_close(p1.double(), w1, rtol=0, atol=float(tol))
    torch.testing.assert_close(p2.double(), w2, rtol=0, atol=float(tol))


def test_every_mask_its_own_group():
    """Masks that all differ along the first axis: one group each, the same sums."""
    spatial = (30, 4)
    gen = RiseMasks(spatial, 2, 0.5, seed=0)
    shifts = gen.params(0, 64)[1][:, 0]
    first = {}
    for i, s in enumerate(shifts.tolist()):
        first.setdefault(s, i)
    idx = torch.tensor(sorted(first.values()))
    assert len(idx) > 3
    batch = gen.batch(0, 64)
    lmat, y = batch.factors
    lmat, y, masks = lmat[idx], y[idx], batch.masks[idx]
    n = len(idx)
    c1, c2 = torch.rand(n, 4), torch.rand(n, 3)
    pending = PendingFactors(lmat.shape[1], lmat.shape[2], y.shape[2], y, n, 4, 3)
    pending.add(lmat, y, c1, c2)
    p1, p2 = pending.products()
    w1, w2 = direct(masks, c1, c2)
    torch.testing.assert_close(p1.double(), w1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p2.double(), w2, rtol=1e-5, atol=1e-6)
