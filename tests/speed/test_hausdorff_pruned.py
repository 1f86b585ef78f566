"""The box-pruned Hausdorff search against brute force on small 2D and 3D inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine import hausdorff
from maskscope._engine.hausdorff import Hausdorff, quantile_with_zeros


def brute(pred: np.ndarray, ref: np.ndarray, spacing, pct=None) -> float:
    pa = np.argwhere(pred) * np.asarray(spacing)
    pb = np.argwhere(ref) * np.asarray(spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    ab, ba = d.min(1), d.min(0)
    if pct is None:
        return float(max(ab.max(), ba.max()))
    return float(max(np.percentile(ab, pct), np.percentile(ba, pct)))


def ball(shape, centre, r, spacing):
    grids = np.indices(shape).astype(float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    return d2 <= r * r


def occluded_cases(shape, spacing, seed):
    """A reference, and predictions as occlusions make them: holes, stray voxels, erasures."""
    rng = np.random.default_rng(seed)
    ref = ball(shape, [n / 2 for n in shape], min(shape) * 0.35 * min(spacing), spacing)
    ref |= ball(shape, [n * 0.15 for n in shape], 1.2 * max(spacing), spacing)  # far blob
    preds = []
    for _ in range(4):
        centre = [rng.uniform(0, n - 1) for n in shape]
        preds.append(ref & ~ball(shape, centre, rng.uniform(1, 4) * max(spacing), spacing))
    stray = ref.copy()
    stray[tuple(n - 1 for n in shape)] = True
    preds.append(stray)
    erased = ref & ~ball(shape, [n * 0.15 for n in shape], 2.5 * max(spacing), spacing)
    preds.append(erased)  # the far blob is gone: its nearest voxel is the big ball
    noisy = ref ^ (rng.random(shape) > 0.97)
    preds.append(noisy)
    return ref, [p for p in preds if p.any()]


@pytest.mark.parametrize("pct", [None, 95.0, 50.0])
@pytest.mark.parametrize(
    "shape,spacing",
    [((23, 31), (1.0, 1.0)), ((19, 26), (1.7, 0.6)), ((9, 13, 11), (2.0, 1.0, 1.0))],
)
def test_pruned_search_equals_brute_force(shape, spacing, pct):
    for seed in range(2):
        ref, preds = occluded_cases(shape, spacing, seed)
        fn = Hausdorff(torch.from_numpy(ref), spacing, pct)
        got = fn(torch.from_numpy(np.stack(preds)))
        want = [brute(p, ref, spacing, pct) for p in preds]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_a_far_nearest_voxel_grows_the_box_and_stays_exact():
    shape, spacing = (12, 40, 14), (1.0, 1.0, 2.0)
    ref = np.zeros(shape, bool)
    ref[4:8, 2:5, 5:8] = True  # the part the occlusion erases
    ref[3:9, 30:38, 4:10] = True  # the part that stays, far away
    pred = ref.copy()
    pred[:, :10] = False
    fn = Hausdorff(torch.from_numpy(ref), spacing, None)
    got = float(fn(torch.from_numpy(pred)[None])[0])
    assert got == pytest.approx(brute(pred, ref, spacing), rel=1e-12)
    assert fn.n_searches > 1  # the first box was too small to be sure


@pytest.mark.parametrize("shape,spacing", [((19, 26), (1.7, 0.6)), ((9, 13, 11), (2.0, 1.0, 1.0))])
def test_pairwise_search_gives_the_distance_transforms_values_bit_for_bit(
    shape, spacing, monkeypatch
):
    ref, preds = occluded_cases(shape, spacing, 3)
    batch = torch.from_numpy(np.stack(preds))
    for pct in (None, 95.0):
        with monkeypatch.context() as m:
            m.setattr(hausdorff, "PAIRWISE_LIMIT", 10**9)  # every box pair by pair
            pairwise = Hausdorff(torch.from_numpy(ref), spacing, pct)(batch)
        with monkeypatch.context() as m:
            m.setattr(hausdorff, "PAIRWISE_LIMIT", 0)  # every box by distance transform
            edt = Hausdorff(torch.from_numpy(ref), spacing, pct)(batch)
        assert torch.equal(pairwise, edt)


def test_hd95_skips_the_search_when_few_reference_voxels_are_missing():
    shape, spacing = (20, 22, 18), (2.0, 1.0, 1.0)
    ref = ball(shape, (10, 11, 9), 7.0, spacing)
    small = ref & ~ball(shape, (10, 11, 3), 2.0, spacing)  # a few voxels: under 5 %
    big = ref & ~ball(shape, (10, 11, 9), 5.0, spacing)  # most of the ball
    assert 0 < (ref & ~small).sum() < 0.05 * ref.sum() < (ref & ~big).sum()
    fn = Hausdorff(torch.from_numpy(ref), spacing, 95.0)
    got = fn(torch.from_numpy(small)[None])
    assert fn.n_searches == 0
    assert float(got[0]) == pytest.approx(brute(small, ref, spacing, 95.0), abs=1e-12)
    got = fn(torch.from_numpy(big)[None])
    assert fn.n_searches >= 1
    assert float(got[0]) == pytest.approx(brute(big, ref, spacing, 95.0), rel=1e-12)


def test_the_surface_of_a_box_is_the_voxels_next_to_background_inside_it():
    rng = np.random.default_rng(5)
    fg = rng.random((6, 7, 5)) > 0.4
    want = np.zeros_like(fg)
    for idx in np.argwhere(fg):
        for ax in range(3):
            for step in (-1, 1):
                n = idx.copy()
                n[ax] += step
                if 0 <= n[ax] < fg.shape[ax] and not fg[tuple(n)]:
                    want[tuple(idx)] = True
    np.testing.assert_array_equal(hausdorff._surface_np(fg), want)


@pytest.mark.parametrize("n_zeros", [0, 1, 7, 40])
def test_quantile_with_zeros_is_numpys_percentile(n_zeros):
    rng = np.random.default_rng(n_zeros)
    values = rng.uniform(0.5, 9.0, 13)
    for q in (0.0, 0.5, 0.95, 1.0):
        got = quantile_with_zeros(values, n_zeros, q)
        want = np.percentile(np.concatenate([values, np.zeros(n_zeros)]), 100 * q)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
