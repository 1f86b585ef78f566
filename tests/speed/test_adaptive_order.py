"""Adaptive HDM while it runs: the order within a level, and the map before it is done."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from maskscope import HDM
from maskscope._engine.accumulate import _apply_separable
from maskscope._engine.adaptive_plan import AdaptivePlan
from maskscope._engine.adaptive_sweep import default_first_step
from maskscope._engine.occlusion import CentreGrid
from tests.conftest import ThresholdNet
from tests.speed.test_adaptive_hdm import _axis, _case, _neighbours_1d, _on, _volume, run_plan

CASES = [
    ((17, 17), 4, {}),
    ((13, 10), 2, {"must": True}),
    ((9, 11, 7), 2, {"content": True}),
    ((11, 9, 6), 4, {"must": True, "content": True}),
]


def _rules(counts, flags):
    rng = np.random.default_rng(sum(counts))
    values, must, content = _case(counts, rng)
    kw = {}
    if flags.get("must"):
        kw["must"] = must
    if flags.get("content"):
        kw.update(content=content, content_tol=0.15)
    return values, kw


def _level(idx, counts, h0) -> int:
    h = h0
    while h > 1 and not _on(idx, counts, h):
        h //= 2
    return h


def reference_filled(
    known: dict, counts, h0: int, fallback: float, chosen: np.ndarray | None = None
) -> np.ndarray:
    """Plain loops: first level from the nearest known first-level centre, then each
    finer level's unknown centres at their parents' multilinear interpolation.

    Of several nearest centres, the first in grid order, or the one whose value ``chosen``
    (the code's result) took, when it took one of theirs.
    """
    everything = list(itertools.product(*[range(c) for c in counts]))
    out = {}
    first = [i for i in everything if _on(i, counts, h0)]
    have = [i for i in first if i in known]
    for idx in first:
        if idx in known:
            out[idx] = known[idx]
        elif not have:
            out[idx] = fallback
        else:
            d = [sum((a - b) ** 2 for a, b in zip(idx, j, strict=True)) for j in have]
            tied = [known[j] for j, dj in zip(have, d, strict=True) if dj == min(d)]
            took = None if chosen is None else chosen[idx]
            out[idx] = took if took in tied else tied[0]
    h = h0 // 2
    while h >= 1:
        for idx in everything:
            if not _on(idx, counts, h) or _on(idx, counts, 2 * h):
                continue
            if idx in known:
                out[idx] = known[idx]
                continue
            parents = [
                _neighbours_1d(i, _axis(n, 2 * h), 1)[0] for i, n in zip(idx, counts, strict=True)
            ]
            out[idx] = sum(
                math.prod(w for _, w in combo) * out[tuple(c for c, _ in combo)]
                for combo in itertools.product(*parents)
            )
        h //= 2
    grid = np.empty(counts)
    for idx, v in out.items():
        grid[idx] = v
    return grid


def _known(plan: AdaptivePlan) -> dict:
    return {
        tuple(int(v) for v in np.unravel_index(i, plan.counts)): float(plan.values.flat[i])
        for i in np.flatnonzero(plan.known)
    }


@pytest.mark.parametrize("counts,h0,flags", CASES)
def test_the_map_before_the_end_is_the_interpolation_of_what_is_known(counts, h0, flags):
    values, kw = _rules(counts, flags)
    plan = AdaptivePlan(counts, h0, **kw)
    np.testing.assert_array_equal(plan.filled(fallback=-1.0), np.full(counts, -1.0))
    done, checked = 0, 0
    while done < plan.n_planned:
        flat = np.asarray(plan.visits[done : min(done + 3, plan.n_planned)])
        plan.record(flat, values.flat[flat])
        done += flat.size
        got = plan.filled(fallback=-1.0)
        want = reference_filled(_known(plan), counts, h0, -1.0, chosen=got)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        checked += not plan.known.all()
    assert checked > 3  # snapshots with centres still unknown were compared
    np.testing.assert_array_equal(plan.filled(), plan.values)  # at the end: the map itself


@pytest.mark.parametrize("counts,h0,flags", CASES)
def test_a_level_is_visited_where_its_neighbours_differ_most_first(counts, h0, flags):
    values, kw = _rules(counts, flags)
    plans = [run_plan(values, h0, chunk, **kw) for chunk in (1, 5, 1000)]
    assert plans[0].visits == plans[1].visits == plans[2].visits  # for any batch size
    plan = plans[0]
    per_level: dict[int, list] = {}
    for flat in plan.visits:
        idx = tuple(int(v) for v in np.unravel_index(flat, counts))
        per_level.setdefault(_level(idx, counts, h0), []).append((flat, idx))
    first = [f for f, _ in per_level.pop(h0)]
    assert first == sorted(first)  # the first level: nothing known yet, the grid's order
    spreads_seen = 0
    for h, visits in per_level.items():
        keys = []
        for flat, idx in visits:
            windows = [
                _neighbours_1d(i, _axis(n, 2 * h), 1)[1] for i, n in zip(idx, counts, strict=True)
            ]
            around = [plan.values[w] for w in itertools.product(*windows)]
            keys.append((-(max(around) - min(around)), flat))
        assert keys == sorted(keys)
        spreads_seen += len({k for k, _ in keys}) > 1
    assert spreads_seen  # the order was not decided by the grid order alone


def test_streamed_snapshots_show_the_interpolation_of_the_known_centres():
    vol = _volume()
    kw = {"diameter": 6, "stride": 2, "batch_size": 4, "sweep": "adaptive"}
    grid = CentreGrid(vol.shape, 6.0, 2.0, (1.0, 1.0, 1.0))
    h0 = default_first_step(grid, 6.0)
    mats = grid.interpolation_matrices()
    snaps = list(HDM(ThresholdNet(3)).iter_explain(vol, yield_every=0.0, **kw))
    partial = 0
    for snap in snaps:
        raw = snap.extras["grid_raw"]
        known = {
            tuple(int(v) for v in np.unravel_index(i, raw.shape)): float(raw.flat[i])
            for i in np.flatnonzero(~np.isnan(raw))
        }
        if not known:
            continue
        filled = reference_filled(known, grid.counts, h0, math.nan)
        want = _apply_separable(torch.from_numpy(filled), mats).numpy()
        np.testing.assert_allclose(snap.map, want, rtol=0, atol=1e-9)
        partial += len(known) < raw.size
    assert partial >= 3 and snaps[-1].done
