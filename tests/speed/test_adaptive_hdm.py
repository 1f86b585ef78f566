"""Adaptive HDM: the plan against a slow reference, and the map against the full sweep."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from maskscope import HDM
from maskscope._engine.adaptive_sweep import AdaptivePlan
from maskscope._engine.cancel import CancelToken
from tests.conftest import Spy, ThresholdNet


def reference_plan(values: np.ndarray, baseline: float, h0: int, tol: float, reach: int):
    """Plain loops: which centres are evaluated, and the filled grid."""
    counts = values.shape
    known = {}
    evaluated = []
    for idx in itertools.product(*[range(c) for c in counts]):
        if all(i % h0 == 0 for i in idx):
            known[idx] = values[idx]
            evaluated.append(idx)
    h = h0 // 2
    while h >= 1:
        level = [
            idx
            for idx in itertools.product(*[range(c) for c in counts])
            if all(i % h == 0 for i in idx) and not all(i % (2 * h) == 0 for i in idx)
        ]
        fills = {}
        for idx in level:
            choices = [(i - h, i + h) if i % (2 * h) else (i,) for i in idx]
            parents = list(itertools.product(*choices))
            ok = all(
                all(0 <= p < c for p, c in zip(par, counts, strict=True)) and par in known
                for par in parents
            )
            window = [
                [i + s * (2 * k + 1) * h for k in range(reach) for s in (-1, 1)]
                if i % (2 * h)
                else [i + 2 * k * h for k in range(-(reach - 1), reach)]
                for i in idx
            ]
            near = [w for w in itertools.product(*window) if w in known]
            if ok and all(abs(known[w] - baseline) <= tol for w in near):
                fills[idx] = float(np.mean([known[par] for par in parents]))
            else:
                evaluated.append(idx)
                fills[idx] = values[idx]
        known.update(fills)
        h //= 2
    grid = np.full(counts, np.nan)
    for idx, v in known.items():
        grid[idx] = v
    return set(evaluated), grid


def run_plan(values, baseline: float, h0: int, tol: float, chunk: int, reach: int = 1):
    plan = AdaptivePlan(values.shape, baseline, h0, tol, reach)
    done = 0
    while done < plan.n_planned:
        flat = np.asarray(plan.visits[done : min(done + chunk, plan.n_planned)])
        plan.record(flat, values.flat[flat])
        done += flat.size
    assert plan.finished
    return plan


def blob_values(counts, centre, radius, baseline=2.0):
    grids = np.indices(counts).astype(float)
    d = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)))
    return np.where(d <= radius, baseline + 10.0 - d, baseline)


@pytest.mark.parametrize("reach", [1, 2])
@pytest.mark.parametrize(
    "counts,h0,tol",
    [((17, 17), 4, 0.0), ((13, 10), 2, 0.0), ((9, 11, 7), 2, 0.0), ((17, 13), 4, 0.5)],
)
def test_plan_equals_the_reference_for_any_chunking(counts, h0, tol, reach):
    rng = np.random.default_rng(sum(counts))
    values = blob_values(counts, [c * 0.4 for c in counts], 3.0)
    values[tuple(rng.integers(0, c) for c in counts)] += 0.3  # a small change, under tol
    want_eval, want_grid = reference_plan(values, 2.0, h0, tol, reach)
    for chunk in (1, 5, 1000):
        plan = run_plan(values, 2.0, h0, tol, chunk, reach)
        got = {np.unravel_index(i, counts) for i in plan.visits}
        assert {tuple(int(v) for v in g) for g in got} == want_eval
        assert len(plan.visits) == len(want_eval)  # each centre once
        np.testing.assert_array_equal(plan.values, want_grid)
        assert plan.known.all()


def test_every_changed_centre_is_evaluated_when_changes_are_wider_than_the_coarse_step():
    counts, h0 = (33, 33), 4
    values = blob_values(counts, (12.3, 20.7), 6.0)
    plan = run_plan(values, 2.0, h0, 0.0, 7)
    changed = values != 2.0
    assert np.all(plan.evaluated[changed])
    np.testing.assert_array_equal(plan.values, values)
    assert plan.evaluated.sum() < values.size / 3


def _image() -> np.ndarray:
    img = np.zeros((40, 40), np.float32)
    img[8:16, 10:22] = 1.0
    img[26:33, 25:31] = 1.0
    return img


def test_adaptive_map_equals_the_full_sweep_with_fewer_forwards():
    full = HDM(ThresholdNet(2)).explain(_image(), diameter=6, stride=1, batch_size=8)
    spy = Spy(ThresholdNet(2))
    adapt = HDM(spy).explain(_image(), diameter=6, stride=1, sweep="adaptive", batch_size=8)
    np.testing.assert_array_equal(adapt.map, full.map)
    for name in ("better_only", "worse_only"):
        np.testing.assert_array_equal(adapt.extras[name], full.extras[name])
    n_eval = int(adapt.extras["grid_evaluated"].sum())
    assert spy.images == adapt.n_forward == n_eval + 1
    assert adapt.n_done == adapt.n_total == n_eval < full.n_done / 2
    assert adapt.params["sweep"] == "adaptive" and adapt.done


@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_adaptive_map_is_the_same_for_any_batch_size(batch_size):
    kw = {"diameter": 6, "stride": 1, "sweep": "adaptive"}
    ref = HDM(ThresholdNet(2)).explain(_image(), batch_size=16, **kw)
    got = HDM(ThresholdNet(2)).explain(_image(), batch_size=batch_size, **kw)
    np.testing.assert_array_equal(got.map, ref.map)
    assert got.n_forward == ref.n_forward


def test_adaptive_sweep_streams_and_cancels():
    kw = {"diameter": 6, "stride": 1, "sweep": "adaptive", "batch_size": 16}
    snaps = list(HDM(ThresholdNet(2)).iter_explain(_image(), **kw))
    done = [s.n_done for s in snaps]
    assert done == sorted(done) and len(snaps) > 3 and snaps[-1].done
    token = CancelToken()
    seen = []
    for snap in HDM(ThresholdNet(2)).iter_explain(_image(), cancel=token, **kw):
        seen.append(snap)
        if len(seen) == 2:
            token.cancel()
    assert seen[-1].cancelled and seen[-1].n_done < snaps[-1].n_done


def test_hiding_centres_are_those_whose_disk_covers_a_different_voxel():
    import torch

    from maskscope._engine.adaptive_sweep import hiding_centres
    from maskscope._engine.occlusion import CentreGrid

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 14, 17)) * 0.1)[None]
    x[0, 1, 3, 12] = 1.0  # one bright voxel in the second channel
    x[0, 0, 10, 4] = 0.6
    hidden = torch.zeros_like(x)
    grid = CentreGrid((14, 17), 5.0, 2.0, (1.0, 1.0))
    got = hiding_centres(grid, x, hidden, 0.5)
    disks = grid.occluders(torch.arange(grid.n_centres)).numpy().reshape(grid.n_centres, -1)
    diff = (x - hidden).abs().amax(dim=1).flatten().numpy()
    span = float(x.max() - x.min())
    want = np.array([bool((diff[d] > 0.5 * span).any()) for d in disks])
    np.testing.assert_array_equal(got, want)
    assert 0 < want.sum() < grid.n_centres
