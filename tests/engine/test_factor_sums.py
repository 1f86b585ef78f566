"""Factored sums (pending, grouped, both): grouped by the first factor, equal to per-mask sums."""

from __future__ import annotations

import pytest
import torch

from maskscope._engine.factor_sums import FactoredSums, GroupSums, PendingFactors, distinct_rows
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


def _chunks(spatial, grid, n, seed=3):
    gen = RiseMasks(spatial, grid, 0.5, seed=seed)
    batch = gen.batch(0, n)
    lmat, y = batch.factors
    c1 = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    c2 = torch.randn(n, 3, generator=torch.Generator().manual_seed(2))
    return batch.masks, lmat, y, c1, c2


def _tol(n, c1, c2) -> float:
    return float(8 * n * torch.finfo(torch.float32).eps * max(c1.abs().max(), c2.abs().max()))


def test_group_sums_add_up_over_flushes():
    """Flushes that share some first factors and bring new ones: one product at the end."""
    masks, lmat, y, c1, c2 = _chunks((12, 5, 6), (4, 2, 3), 40)
    groups = GroupSums(12, lmat.shape[2], y.shape[2], y, 4, 3, max_groups=64)
    for lo in range(0, 40, 8):
        pending = PendingFactors(12, lmat.shape[2], y.shape[2], y, 8, 4, 3)
        sl = slice(lo, lo + 8)
        pending.add(lmat[sl], y[sl], c1[sl], c2[sl])
        assert groups.add(pending)
    assert groups.n == 40 and groups.g == len(torch.unique(lmat.reshape(40, -1), dim=0))
    p1, p2 = groups.products()
    w1, w2 = direct(masks, c1, c2)
    torch.testing.assert_close(p1.double(), w1, rtol=0, atol=_tol(40, c1, c2))
    torch.testing.assert_close(p2.double(), w2, rtol=0, atol=_tol(40, c1, c2))
    groups.clear()
    assert groups.n == 0 and groups.g == 0


def test_group_sums_refuse_more_groups_than_allowed():
    _, lmat, y, c1, c2 = _chunks((30, 4), 2, 20)
    pending = PendingFactors(30, lmat.shape[2], y.shape[2], y, 20, 4, 3)
    pending.add(lmat, y, c1, c2)
    assert pending.groups()[0].shape[0] > 2
    groups = GroupSums(30, lmat.shape[2], y.shape[2], y, 4, 3, max_groups=2)
    assert not groups.add(pending)
    assert groups.n == 0 and groups.g == 0


@pytest.mark.parametrize("max_groups", [1, 3, 1000])
@pytest.mark.parametrize("chunk", [3, 7])
def test_factored_sums_equal_per_mask_sums_whatever_the_memory(max_groups, chunk):
    """Groups that fill up (lifted early) or that never fit (pending lifted directly)."""
    spatial, n = (30, 6), 45
    masks, lmat, y, c1, c2 = _chunks(spatial, 3, n)
    b1 = torch.zeros(4, 180, dtype=torch.float64)
    b2 = torch.zeros(3, 180, dtype=torch.float64)
    k, rest = lmat.shape[2], y.shape[2]
    group_bytes = max_groups * GroupSums.bytes_per_group(30, k, rest, 4, 3, y.element_size())
    held = FactoredSums(lmat, y, 4, 3, chunk, 8, 10**9, group_bytes)
    assert held.groups.max_groups == max_groups
    lifted = 0
    for lo in range(0, n, chunk):
        sl = slice(lo, lo + chunk)
        held.add(lmat[sl], y[sl], c1[sl], c2[sl], b1, b2)
        lifted += bool(b1.abs().sum())
    # a group or three fill at once and are lifted early; a thousand hold everything
    assert (lifted > 0) == (max_groups < 10)
    before = (b1.clone(), b2.clone(), held.n)
    o1, o2 = held.added_to(b1, b2)  # a snapshot: changes nothing held
    assert held.n == before[2] and torch.equal(b1, before[0]) and torch.equal(b2, before[1])
    held.lift(b1, b2)
    assert held.n == 0
    w1, w2 = direct(masks, c1, c2)
    tol = _tol(n, c1, c2)
    for got in ((o1, o2), (b1, b2)):
        torch.testing.assert_close(got[0], w1, rtol=0, atol=tol)
        torch.testing.assert_close(got[1], w2, rtol=0, atol=tol)


def _rows_with_repeats(n: int, d: int, distinct: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(distinct, d, generator=gen)
    return base[torch.randint(distinct, (n,), generator=gen)]


@pytest.mark.parametrize("n, distinct", [(1, 1), (40, 3), (64, 64), (200, 11)])
def test_distinct_rows_group_equal_rows_and_only_those(n, distinct):
    flat = _rows_with_repeats(n, 18, distinct, seed=n)
    uniq, inv = distinct_rows(flat)
    torch.testing.assert_close(uniq[inv], flat, rtol=0, atol=0)  # every row is its group's
    assert uniq.shape[0] == torch.unique(flat, dim=0).shape[0]  # and no two groups are equal
    assert inv.dtype == torch.long and inv.shape == (n,)


def test_distinct_rows_compare_whole_rows_when_two_rows_share_a_key(monkeypatch):
    import maskscope._engine.factor_sums as fs

    monkeypatch.setattr(
        fs, "_probe", lambda length, device: torch.zeros(length, dtype=torch.float64)
    )
    flat = _rows_with_repeats(30, 6, 4, seed=2)  # every key is 0: one group, not one row
    uniq, inv = distinct_rows(flat)
    want, want_inv = torch.unique(flat, dim=0, return_inverse=True)
    torch.testing.assert_close(uniq, want, rtol=0, atol=0)
    assert torch.equal(inv, want_inv)
