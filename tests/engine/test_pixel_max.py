"""PixelMax: buffered products, live and slab modes, budget, against a brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine.mask_batch import MaskBatch
from maskscope._engine.masks import RiseMasks
from maskscope._engine.pixel_max import PixelMax

CPU = torch.device("cpu")


def brute_force(masks: np.ndarray, scores: np.ndarray, p: float, estimator="centred", gain=False):
    """max_j of pixel j's RISE map, one pixel map at a time (float64).

    ``"paper"``: ``Σ_i s_ij m_i / (n p)``; ``"centred"``: ``s̄_j + Σ_i (s_ij − s̄_j) m_i / (n p)``.
    ``gain``: each map less ``s̄_j`` before the max.
    """
    n = len(masks)
    maps = []
    for j in range(scores.shape[1]):
        c = 0.0 if estimator == "paper" else scores[:, j].mean()
        pixel_map = c + np.tensordot(scores[:, j] - c, masks, axes=1) / (n * p)
        maps.append(pixel_map - scores[:, j].mean() if gain else pixel_map)
    return np.max(maps, axis=0)


def slab_budget(spatial, n, n_pix, rows, per_row_masks):
    """max_bytes giving ``rows`` per slab when a row of a slab holds ``per_row_masks`` masks.

    Small budgets keep one live pixel; the kept scores of the others and three flat maps
    come first (see ``PixelMax.slab_plan``).
    """
    n_vox = int(np.prod(spatial))
    row = n_vox // spatial[0]
    used = n * (n_pix - 1) + 3 * n_vox
    return (used + rows * per_row_masks * row) * 4


def run(
    spatial,
    n,
    n_pix,
    batch,
    max_bytes,
    buffer_masks=256,
    snapshots=False,
    est="centred",
    factored=False,
    gain=False,
):
    gen = RiseMasks(spatial, 3, 0.5, seed=11)
    scores = torch.rand(n, n_pix, generator=torch.Generator().manual_seed(2))
    acc = PixelMax(
        spatial,
        n_pix,
        0.5,
        n,
        gen,
        CPU,
        max_bytes=max_bytes,
        buffer_masks=buffer_masks,
        estimator=est,
        factored=factored,
        gain=gain,
    )
    seen = []
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        acc.update(MaskBatch(start, gen(start, stop)), scores[start:stop])
        if snapshots:
            seen.append((stop, acc.partial().map.numpy().copy()))
    slabs = list(acc.finish())
    masks = gen(0, n)[:, 0].double().numpy()
    want = brute_force(masks, scores.double().numpy(), 0.5, est, gain)
    return acc, slabs, acc.partial().map.numpy(), want, seen, (gen, scores)


@pytest.mark.parametrize("gain", [False, True])
@pytest.mark.parametrize("est", ["centred", "paper"])
@pytest.mark.parametrize("spatial", [(9, 7), (5, 6, 4)])
@pytest.mark.parametrize("batch", [1, 4, 13])
def test_live_mode_matches_brute_force(spatial, batch, est, gain):
    acc, slabs, got, want, _, _ = run(
        spatial, 40, 6, batch, max_bytes=2**20, buffer_masks=8, est=est, gain=gain
    )
    assert not acc.tiled and slabs == []
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("gain", [False, True])
@pytest.mark.parametrize("est", ["centred", "paper"])
@pytest.mark.parametrize("spatial", [(11, 7), (7, 6, 5)])
@pytest.mark.parametrize("plan", ["gathered", "summed"])
def test_slab_mode_matches_brute_force_within_budget(spatial, est, plan, gain):
    """Several slabs of the first axis, with a slab's masks gathered or its sums kept."""
    n, n_pix, chunk = 30, 6, 8  # summed: less memory than gathered when n > 2 × pixels
    per_row = n + chunk if plan == "gathered" else 2 * (n_pix - 1) + chunk
    budget = slab_budget(spatial, n, n_pix, 2, per_row)
    acc, slabs, got, want, _, _ = run(
        spatial, n, n_pix, 7, max_bytes=budget, buffer_masks=chunk, est=est, gain=gain
    )
    assert acc.tiled and acc.final_pass == plan and acc.rows_per_slab == 2
    assert len(slabs) == -(-spatial[0] // 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_live_snapshots_are_the_max_of_the_masks_so_far():
    spatial, n = (8, 9), 30
    _, _, _, _, seen, (gen, scores) = run(spatial, n, 5, 4, max_bytes=2**20, snapshots=True)
    for stop, snap in seen:
        want = brute_force(gen(0, stop)[:, 0].double().numpy(), scores[:stop].double().numpy(), 0.5)
        np.testing.assert_allclose(snap, want, rtol=1e-5, atol=1e-7)


def test_products_use_the_buffer():
    spatial, n = (10, 10), 64
    gen = RiseMasks(spatial, 3, 0.5, seed=1)
    acc = PixelMax(spatial, 4, 0.5, n, gen, CPU, buffer_masks=32)
    calls = []

    class Half:
        def __init__(self, real):
            self.real = real

        def addmm_(self, a, b):
            calls.append(b.shape[0])
            return self.real.addmm_(a, b)

    acc.acc = [Half(t) for t in acc.acc]
    for start in range(0, n, 4):
        acc.update(MaskBatch(start, gen(start, start + 4)), torch.rand(4, 4))
    acc._flush()
    assert calls == [16, 16, 16, 16]  # 16 chunks of 4 masks: two products per half


def test_halves_give_the_split_half_reliability():
    spatial, n = (12, 10), 60
    _, _, _, _, _, (gen, scores) = run(spatial, n, 5, 7, max_bytes=2**20)
    masks = gen(0, n)[:, 0].double().numpy()
    s = scores.double().numpy()
    even = brute_force(masks[0::2], s[0::2], 0.5)
    odd = brute_force(masks[1::2], s[1::2], 0.5)
    r = np.corrcoef(even.ravel(), odd.ravel())[0, 1]
    acc = PixelMax(spatial, 5, 0.5, n, gen, CPU, max_bytes=2**20)
    for start in range(0, n, 7):
        acc.update(MaskBatch(start, gen(start, min(start + 7, n))), scores[start : start + 7])
    assert acc.partial().reliability == pytest.approx(2 * r / (1 + r), rel=1e-5)


@pytest.mark.parametrize("factored", [False, True])
def test_memory_stays_within_budget_whatever_n(factored):
    spatial = (40, 40)
    budget = 2**20
    held = []
    for n in (100, 400):
        gen = RiseMasks(spatial, 3, 0.5, 0)
        acc = PixelMax(spatial, 300, 0.5, n, gen, CPU, max_bytes=budget, factored=factored)
        assert acc.tiled
        tensors = [*acc.acc, acc._buf_m, acc._buf_s, acc.scores]
        held.append(sum(t.numel() * t.element_size() for t in tensors))
        assert held[-1] <= budget
        for start in range(0, n, 50):
            acc.update(MaskBatch(start, gen(start, start + 50)), torch.rand(50, 300))
        scores = acc.scores.numel() * 4
        slabs = list(acc.finish())
        rows = acc.rows_per_slab
        if factored:
            assert acc.final_pass == "factored" and len(slabs) == -(-spatial[1] // rows)
            # the masks' second factor of a slab (g0 = 3 rows each) and a chunk rendering
            slab = (n + min(256, n)) * 3 * rows * 4
        elif acc.final_pass == "gathered":
            slab = (n + min(256, n)) * rows * spatial[1] * 4
        else:
            slab = (2 * int(acc.rest.numel()) + min(256, n)) * rows * spatial[1] * 4
        assert scores + slab <= budget


def test_slab_rows_of_masks_equal_full_masks():
    for spatial in ((13, 9), (6, 7, 5)):
        gen = RiseMasks(spatial, 3, 0.5, seed=4)
        full = gen(3, 9)
        for lo, hi in ((0, 2), (2, 5), (4, spatial[0])):
            torch.testing.assert_close(gen(3, 9, rows=(lo, hi)), full[:, :, lo:hi])
        with pytest.raises(ValueError, match="rows"):
            gen(0, 2, rows=(3, 3))


@pytest.mark.parametrize("spatial", [(13, 11), (6, 9, 7)])
@pytest.mark.parametrize("n", [3, 31])
def test_slab_mode_is_the_same_for_any_batch_and_chunk(spatial, n):
    """Slabs gathered or summed, in any chunks, or from the factors: one map."""
    maps, passes = [], set()
    for batch, buffer_masks, factored in (
        (1, 256, False),
        (n, 256, False),
        (4, 2, False),
        (7, 5, False),
        (5, 4, True),
    ):
        # one row of a slab gathered when at most 2 masks are rendered at a time, else summed
        budget = slab_budget(spatial, n, 60, 1, n + 2)
        acc, _, got, want, _, _ = run(
            spatial,
            n,
            60,
            batch,
            max_bytes=budget,
            buffer_masks=buffer_masks,
            factored=factored,
        )
        assert acc.tiled
        passes.add(acc.final_pass)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        maps.append(got)
    for other in maps[1:]:
        np.testing.assert_allclose(other, maps[0], rtol=1e-5, atol=1e-6)
    assert passes == {"gathered", "summed", "factored"}


def test_slab_products_agree_with_float64_on_large_scores():
    """Centred products in float32: error well under the map's own scale of variation."""
    spatial, n, n_pix = (24, 20), 200, 50
    gen = RiseMasks(spatial, 4, 0.5, seed=5)
    g = torch.Generator().manual_seed(9)
    # scores near 0.9 that vary by 1e-3: the centred part is small next to the mean
    scores = 0.9 + 1e-3 * torch.rand(n, n_pix, generator=g)
    acc = PixelMax(spatial, n_pix, 0.5, n, gen, CPU, max_bytes=2**17)
    assert acc.tiled
    for start in range(0, n, 16):
        stop = min(start + 16, n)
        acc.update(MaskBatch(start, gen(start, stop)), scores[start:stop])
    list(acc.finish())
    want = brute_force(gen(0, n)[:, 0].double().numpy(), scores.double().numpy(), 0.5)
    got = acc.partial().map.numpy()
    err = np.abs(got - want).max()
    # float32 products and maxima: a few roundings of values of the map's size (the bias
    # c / sc is n p c, scaled back by sc), i.e. a few float32 ulps of max |map| ...
    assert err <= 8 * np.finfo(np.float32).eps * np.abs(want).max()
    # ... which stays small next to how much the max-merged map varies (~3e-5 here)
    assert err < 0.02 * (want.max() - want.min())


def cancel_after_the_first_slab(acc: PixelMax, gen: RiseMasks, n: int, n_pix: int) -> list:
    """Run ``acc``'s task through the loop, cancelling once the first slab is done; the steps."""
    from maskscope._engine.cancel import CancelToken
    from maskscope._engine.loop import ModelRunner, RunOptions, Task, run_task

    scores = torch.rand(n, n_pix, generator=torch.Generator().manual_seed(3))
    x = torch.rand(1, 1, *acc.spatial)
    task = Task(
        x=x,
        n_total=n,
        masks=gen.batch,
        perturb=lambda batch: x * batch.masks,
        score=lambda out: scores[: out.shape[0]],
        accumulator=acc,
    )
    token = CancelToken()
    steps = []
    runner = ModelRunner(lambda b: b, acc.spatial)
    for step in run_task(task, runner, RunOptions(), batch_size=n, cancel=token):
        steps.append(step)
        if step.n_done == n and not step.final and not step.cancelled:
            token.cancel()  # the first slab is done
    return steps


def test_cancel_during_the_slab_pass_stops_after_the_slab_in_progress():
    spatial, n, n_pix = (12, 7), 20, 30
    gen = RiseMasks(spatial, 3, 0.5, seed=2)
    slabs_rendered = []

    def masks_fn(start, stop, rows=None):
        if rows is not None:
            slabs_rendered.append(rows)
        return gen(start, stop, rows=rows)

    budget = slab_budget(spatial, n, n_pix, 2, 2 * n)  # two rows per slab, gathered
    acc = PixelMax(spatial, n_pix, 0.5, n, masks_fn, CPU, max_bytes=budget, factored=False)
    steps = cancel_after_the_first_slab(acc, gen, n, n_pix)
    assert acc.tiled and acc.rows_per_slab < spatial[0]
    assert steps[-1].cancelled and not steps[-1].final
    # cancelled after the first slab: the second (in progress then) ends, no other starts
    assert len(set(slabs_rendered)) == 2 < -(-spatial[0] // acc.rows_per_slab)


@pytest.mark.parametrize("elements", [64, 2**24])  # many tiles of 64 voxels, or one per slab
@pytest.mark.parametrize("plan", ["gathered", "summed"])
def test_slab_maxima_are_the_same_for_any_tile(monkeypatch, plan, elements):
    from maskscope._engine import pixel_slabs

    monkeypatch.setattr(pixel_slabs, "TILE_ELEMENTS", elements)
    spatial, n, n_pix, chunk = (24, 40), 30, 6, 8
    per_row = n + chunk if plan == "gathered" else 2 * (n_pix - 1) + chunk
    budget = slab_budget(spatial, n, n_pix, 2, per_row)
    acc, slabs, got, want, _, _ = run(spatial, n, n_pix, 7, max_bytes=budget, buffer_masks=chunk)
    assert acc.tiled and acc.final_pass == plan and len(slabs) == 12
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_gpu_takes_tiles_far_larger_than_a_cpu_cache():
    from maskscope._engine.pixel_slabs import _tile, tile_bytes

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert _tile(64, 10**6, cpu) == 2**19 // 64
    assert _tile(64, 10**6, gpu) == 2**24 // 64
    assert _tile(64, 5000, gpu) == 5000  # never wider than the slab
    assert tile_bytes(64, 10**6, gpu) == 2 * 64 * (2**24 // 64) * 4


def test_the_final_pass_tiles_stay_within_what_the_slabs_leave_of_the_budget(monkeypatch):
    from maskscope._engine import pixel_slabs

    monkeypatch.setattr(pixel_slabs, "TILE_ELEMENTS", 2**24)  # tiles as large as a GPU's
    tiles = []
    original = pixel_slabs._tile

    def recorded(n_pixels, width, device, cap=None):
        tiles.append((n_pixels, original(n_pixels, width, device, cap), cap))
        return tiles[-1][1]

    monkeypatch.setattr(pixel_slabs, "_tile", recorded)
    spatial, n, n_pix, chunk = (24, 40), 30, 6, 8
    budget = slab_budget(spatial, n, n_pix, 2, n + chunk)
    acc, slabs, got, want, _, _ = run(spatial, n, n_pix, 7, max_bytes=budget, buffer_masks=chunk)
    assert acc.tiled and acc.final_pass == "gathered" and len(slabs) == 12
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert tiles and all(cap is not None for _, _, cap in tiles)  # the spare's share passed
    for p, tile, cap in tiles:  # two float32 products of p × tile: within the spare bytes
        assert p * tile <= max(cap, 64 * p)
