"""WeightedSum: the factored sums equal the sums of the full-size masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine.accumulate import WeightedSum
from maskscope._engine.covariate import RegionCovariate, mask_kernels
from maskscope._engine.mask_batch import MaskBatch
from maskscope._engine.masks import RiseMasks
from tests.methods.reference import estimate_np, reliability_np

CPU = torch.device("cpu")


def _box(spatial) -> torch.Tensor:
    """A box of about the middle third of every axis."""
    region = torch.zeros(spatial, dtype=torch.bool)
    region[tuple(slice(s // 3, max(s // 3 + 1, 2 * s // 3)) for s in spatial)] = True
    return region


@pytest.mark.parametrize("est", ["covariate", "centred", "paper"])
@pytest.mark.parametrize(
    ("spatial", "grid"), [((13, 11), 3), ((9, 10), (1, 4)), ((6, 7, 5), 2), ((5, 8, 6), (1, 3, 2))]
)
def test_factored_sums_equal_full_mask_sums(spatial, grid, est):
    gen = RiseMasks(spatial, grid, 0.5, seed=3, dtype=torch.float64)
    region = _box(spatial)
    cov = RegionCovariate(region, mask_kernels(gen), 0.5)
    fast = WeightedSum(spatial, 0.5, CPU, estimator=est, covariate=cov)
    slow = WeightedSum(spatial, 0.5, CPU, estimator=est, covariate=cov)
    used = []
    # weights that depend on how much of the region is kept, and on noise
    noise = torch.rand(150, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    masks_all = gen(0, 150).reshape(150, -1)
    weights = 0.3 * noise + masks_all[:, region.flatten()].mean(1)
    xs = []
    for start in range(0, 150, 7):
        stop = min(start + 7, 150)
        batch = gen.batch(start, stop)
        masks = batch.masks
        used.append(batch.factors is not None)
        # L @ Y is the mask, and L has at most two adjacent non-zero weights per row
        lmat, y = batch.factors
        torch.testing.assert_close(torch.bmm(lmat, y).reshape(masks.shape), masks)
        nz = lmat != 0
        assert int(nz.sum(-1).max()) <= 2
        first = nz.float().argmax(-1, keepdim=True)
        beyond = torch.arange(lmat.shape[-1]) > first + 1
        assert not bool((nz & beyond).any())
        fast.update(batch, weights[start:stop])
        slow.update(MaskBatch(start, masks.clone()), weights[start:stop])
        xs.append(masks.reshape(stop - start, -1).numpy())
    assert all(used) and len(used) == 22
    xs, w = np.concatenate(xs), weights.numpy()
    flat_region, c = region.flatten().numpy(), cov.cov.numpy()
    if est == "covariate":  # the slope is far from 0: the correction is tested
        assert fast.slope() > 0.5
    want, se = estimate_np(xs, w, 0.5, est, flat_region, c)
    np.testing.assert_allclose(fast.mean().numpy(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.mean().numpy(), slow.mean().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fast.stderr().numpy(), se, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(slow.stderr().numpy(), se, rtol=1e-9, atol=1e-12)
    rel = reliability_np(xs, w, 0.5, est, flat_region, c)
    assert fast.reliability() == pytest.approx(rel, rel=1e-9)
    assert slow.reliability() == pytest.approx(fast.reliability(), rel=1e-9)


def test_factored_sums_with_growing_chunks():
    spatial = (12, 10)
    gen = RiseMasks(spatial, 3, 0.5, seed=5)
    fast = WeightedSum(spatial, 0.5, CPU)
    slow = WeightedSum(spatial, 0.5, CPU)
    start = 0
    for size in (1, 2, 5, 40, 3, 90):
        batch = gen.batch(start, start + size)
        w = torch.linspace(0.1, 1.0, size)
        fast.update(batch, w)
        slow.update(batch.without_fast_paths(), w)
        start += size
    torch.testing.assert_close(fast.mean(), slow.mean(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fast.stderr(), slow.stderr(), rtol=1e-4, atol=1e-7)


def test_batches_carry_the_factors_of_their_own_masks():
    gen = RiseMasks((8, 9), 3, 0.5, seed=0)
    a = gen.batch(0, 4)
    a_masks = a.masks.clone()  # the next render may reuse no memory of a's
    b = gen.batch(4, 8)
    for batch, masks in ((a, a_masks), (b, b.masks)):
        lmat, y = batch.factors
        torch.testing.assert_close(torch.bmm(lmat, y).reshape(masks.shape), masks)
    assert torch.equal(a_masks, gen(0, 4)) and (a.start, a.stop, b.start, b.stop) == (0, 4, 4, 8)
    assert a.without_fast_paths().factors is None


def _run(gen, region, n: int, snapshot_every: int | None = None, collect: bool = False):
    cov = RegionCovariate(region, mask_kernels(gen), 0.5)
    acc = WeightedSum(gen.spatial, 0.5, CPU, covariate=cov)
    acc.collect = collect
    for start in range(0, n, 12):
        batch = gen.batch(start, min(start + 12, n))
        kept = batch.masks.reshape(batch.masks.shape[0], -1)[:, region.flatten()]
        acc.update(batch, kept.double().mean(1) + 0.01 * (start % 5))
        if snapshot_every and start % snapshot_every == 0:
            acc.partial()  # reads the held groups and pending masks without changing them
    return acc


def test_snapshots_and_finish_keep_the_sums_across_blocks():
    """600 masks (two closed blocks and an open one) through the grouped sums."""
    spatial = (24, 10, 9)
    gen = RiseMasks(spatial, 3, 0.5, seed=2)
    region = _box(spatial)
    quiet, watched = _run(gen, region, 600), _run(gen, region, 600, snapshot_every=36)
    assert quiet._pending_n > 0  # the open block holds grouped sums or pending masks
    before = quiet.mean()
    assert torch.equal(before, watched.mean())  # the snapshots changed nothing
    assert list(quiet.finish()) == [] and quiet._pending_n == 0
    torch.testing.assert_close(quiet.mean(), before, rtol=1e-6, atol=1e-8)
    # a run's blocks, taken after its finish, merge to its map bit for bit
    split = _run(gen, region, 600, collect=True)
    list(split.finish())
    blocks = split.take_blocks()
    assert [b.complete for b in blocks] == [True, True, False]
    merged = WeightedSum(spatial, 0.5, CPU, covariate=split.covariate)
    for block in blocks:
        merged.add_block(block)
    assert torch.equal(merged.mean(), quiet.mean())
