"""PixelRISE max's factored final pass: factors, brute force, choice, windows, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine.crop import WindowMasks
from maskscope._engine.mask_batch import MaskBatch
from maskscope._engine.masks import RiseMasks
from maskscope._engine.pixel_factored import factored_flops
from maskscope._engine.pixel_max import FACTORED_SHARE, PixelMax

from .test_pixel_max import brute_force, cancel_after_the_first_slab

CPU = torch.device("cpu")


@pytest.mark.parametrize("spatial", [(13, 9), (6, 7, 5)])
def test_side_factors_make_the_masks(spatial):
    """``first_factors()[shift0] @ Y`` is the mask, on the whole of axis 1 or a range."""
    gen = RiseMasks(spatial, 3, 0.5, seed=4)
    full = gen(3, 11)[:, 0]
    first = gen.first_factors()
    assert first.shape == (gen.cells[0], spatial[0], 3)
    for side in (None, (0, 2), (2, 5), (4, spatial[1])):
        shift0, y = gen.side_factors(3, 11, side=side)
        lo, hi = side or (0, spatial[1])
        got = torch.bmm(first[shift0], y).reshape(8, spatial[0], hi - lo, *spatial[2:])
        torch.testing.assert_close(got, full[:, :, lo:hi])
    with pytest.raises(ValueError, match="side"):
        gen.side_factors(0, 2, side=(3, 3))


def run(gen, spatial, n, n_pix, max_bytes, factored, est="centred", batch=3, gain=False):
    scores = torch.rand(n, n_pix, generator=torch.Generator().manual_seed(2))
    acc = PixelMax(
        spatial,
        n_pix,
        0.5,
        n,
        gen,
        CPU,
        max_bytes=max_bytes,
        estimator=est,
        factored=factored,
        gain=gain,
    )
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        acc.update(MaskBatch(start, gen(start, stop)), scores[start:stop])
    slabs = list(acc.finish())
    masks = gen(0, n)[:, 0].double().numpy()
    want = brute_force(masks, scores.double().numpy(), 0.5, est, gain)
    return acc, slabs, acc.partial(), want


@pytest.mark.parametrize("gain", [False, True])
@pytest.mark.parametrize("est", ["centred", "paper"])
@pytest.mark.parametrize("spatial", [(11, 9), (7, 6, 5)])
@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_factored_pass_matches_brute_force_in_slabs(spatial, n, est, gain):
    gen = RiseMasks(spatial, 3, 0.5, seed=11)
    acc, slabs, got, want = run(gen, spatial, n, 20, 2**12, True, est, gain=gain)
    assert acc.tiled and acc.final_pass == "factored"
    assert len(slabs) == -(-spatial[1] // acc.rows_per_slab)
    np.testing.assert_allclose(got.map.numpy(), want, rtol=1e-5, atol=1e-6)
    if n >= 5:  # several slabs of axis 1 when the masks' factors fill the budget
        assert acc.rows_per_slab < spatial[1]
        # the halves' maxima (the reliability) agree with the per-mask pass's
        other, _, ref, _ = run(gen, spatial, n, 20, 2**12, False, est, gain=gain)
        assert other.final_pass != "factored"
        assert got.reliability == pytest.approx(ref.reliability, abs=1e-5)


def test_the_gpu_sizes_of_blocks_and_tiles_give_the_same_maxima_in_fewer_calls(monkeypatch):
    import maskscope._engine.pixel_factored as pf

    cpu_sizes = pf.pass_sizes(CPU)
    gpu_sizes = (pf.GPU_TILE_ELEMENTS, pf.GPU_FIRST_ROWS, pf.GPU_SUM_ELEMENTS)
    assert pf.pass_sizes(torch.device("cuda", 0)) == gpu_sizes
    calls = []
    original = pf.FactoredPass._maxima

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pf.FactoredPass, "_maxima", counted)
    spatial, n = (30, 26, 20), 40
    gen = RiseMasks(spatial, 3, 0.5, seed=11)
    counts = {}
    for name, sizes in (("cpu", cpu_sizes), ("gpu", gpu_sizes)):
        monkeypatch.setattr(pf, "pass_sizes", lambda device, sizes=sizes: sizes)
        calls.clear()
        acc, _, got, want = run(gen, spatial, n, 512, 2**24, True)
        assert acc.final_pass == "factored"
        np.testing.assert_allclose(got.map.numpy(), want, rtol=1e-5, atol=1e-6)
        counts[name] = len(calls)
    assert counts["gpu"] < counts["cpu"] / 1.5  # larger blocks and tiles on a GPU


def test_the_cheaper_pass_is_chosen():
    spatial = (24, 20)  # 8 shifts of 24 rows over 3 cells: few masks cost more factored
    gen = RiseMasks(spatial, 3, 0.5, seed=1)
    for n in (40, 400):
        share = factored_flops(n, 24, 3, gen.cells[0])
        acc, _, got, want = run(gen, spatial, n, 30, 2**17, None, batch=50)
        assert acc.final_pass == ("factored" if share <= FACTORED_SHARE else "gathered")
        np.testing.assert_allclose(got.map.numpy(), want, rtol=1e-5, atol=1e-6)
    assert factored_flops(400, 24, 3, 8) <= FACTORED_SHARE < factored_flops(40, 24, 3, 8)


def test_a_mask_source_without_factors_takes_the_per_mask_pass():
    spatial = (24, 20)
    gen = RiseMasks(spatial, 3, 0.5, seed=1)
    acc, _, got, want = run(lambda *a, **k: gen(*a, **k), spatial, 400, 30, 2**17, None, batch=50)
    assert acc.final_pass == "gathered"
    np.testing.assert_allclose(got.map.numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "full, window",
    [
        ((20, 17), (slice(3, 14), slice(5, 16))),
        ((9, 12, 8), (slice(2, 7), slice(3, 11), slice(1, 7))),
    ],
)
def test_factored_pass_through_a_window(full, window):
    """The masks of a cropped region (a window of the full volume's masks)."""
    gen = WindowMasks(full, window, 3, 0.5, seed=5)
    spatial = gen.spatial
    acc, _, got, want = run(gen, spatial, 30, 15, 2**12, True)
    assert acc.final_pass == "factored"
    np.testing.assert_allclose(got.map.numpy(), want, rtol=1e-5, atol=1e-6)


def test_cancel_during_the_factored_pass_stops_after_the_slab_in_progress():
    spatial, n, n_pix = (7, 12), 20, 30
    sides = []

    class Recording(RiseMasks):
        def side_factors(self, start, stop, side=None):
            sides.append(side)
            return super().side_factors(start, stop, side=side)

    gen = Recording(spatial, 3, 0.5, seed=2)
    acc = PixelMax(spatial, n_pix, 0.5, n, gen, CPU, max_bytes=2**12, factored=True)
    steps = cancel_after_the_first_slab(acc, gen, n, n_pix)
    assert acc.final_pass == "factored" and acc.rows_per_slab < spatial[1]
    assert steps[-1].cancelled and not steps[-1].final
    # cancelled after the first slab: the second (in progress then) ends, no other starts
    assert len(set(sides)) == 2 < -(-spatial[1] // acc.rows_per_slab)
