"""Adaptive HDM: the plan against a slow reference, and the map against the full sweep."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from maskscope import HDM
from maskscope._engine.adaptive_plan import REASONS, AdaptivePlan
from maskscope._engine.adaptive_sweep import (
    default_first_step,
    hidden_content,
    hiding_centres,
    structure_centres,
)
from maskscope._engine.cancel import CancelToken
from maskscope._engine.occlusion import CentreGrid
from tests.conftest import Spy, ThresholdNet


def _axis(n: int, h: int) -> list[int]:
    return sorted(set(range(0, n, h)) | {n - 1})


def _on(idx, counts, h) -> bool:
    return all(i in _axis(n, h) for i, n in zip(idx, counts, strict=True))


def _neighbours_1d(i: int, coarse: list[int], reach: int) -> tuple[list, list]:
    """Parents (coordinate, weight) and the window's coordinates along one axis."""
    if i in coarse:
        k = coarse.index(i)
        window = coarse[max(k - reach + 1, 0) : k + reach]
        return [(i, 1.0)], window
    below = [c for c in coarse if c < i]
    above = [c for c in coarse if c > i]
    lo, hi = below[-1], above[0]
    w = (i - lo) / (hi - lo)
    return [(lo, 1 - w), (hi, w)], below[-reach:] + above[:reach]


def reference_plan(values, h0, tol=0.0, reach=1, must=None, content=None, ctol=0.0, busy=1.0):
    """Plain loops: which centres are evaluated, and the filled grid."""
    counts = values.shape
    everything = list(itertools.product(*[range(c) for c in counts]))
    known = {idx: values[idx] for idx in everything if _on(idx, counts, h0)}
    evaluated = set(known)
    h = h0 // 2
    while h >= 1:
        level = [i for i in everything if _on(i, counts, h) and not _on(i, counts, 2 * h)]
        fills, wanted = {}, []
        for idx in level:
            per_axis = [
                _neighbours_1d(i, _axis(n, 2 * h), reach) for i, n in zip(idx, counts, strict=True)
            ]
            corners = [
                (tuple(c for c, _ in combo), float(np.prod([w for _, w in combo])))
                for combo in itertools.product(*[p for p, _ in per_axis])
            ]
            window = [known[w] for w in itertools.product(*[win for _, win in per_axis])]
            differ = max(window) - min(window) > tol
            hides = must is not None and must[idx]
            if content is not None:
                interp = sum(w * content[c] for c, w in corners)
                hides = hides or abs(content[idx] - interp) > ctol
            if differ or hides:
                wanted.append(idx)
            else:
                fills[idx] = sum(w * known[c] for c, w in corners)
        if len(wanted) > busy * len(level):
            wanted, fills = level, {}
        for idx in wanted:
            fills[idx] = values[idx]
        evaluated.update(wanted)
        known.update(fills)
        h //= 2
    grid = np.full(counts, np.nan)
    for idx, v in known.items():
        grid[idx] = v
    return evaluated, grid


def run_plan(values, h0: int, chunk: int, **kw) -> AdaptivePlan:
    plan = AdaptivePlan(values.shape, h0, **kw)
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


def _case(counts, rng):
    values = blob_values(counts, [c * 0.4 for c in counts], 3.0)
    values[tuple(rng.integers(0, c) for c in counts)] += 0.3  # a small change, under tol
    must = rng.random(counts) < 0.05
    content = rng.random(counts) * 0.2 + blob_values(counts, [c * 0.7 for c in counts], 2.0)
    return values, must, content


@pytest.mark.parametrize("reach", [1, 2])
@pytest.mark.parametrize(
    "counts,h0,tol,rules",
    [
        ((17, 17), 4, 0.0, ()),
        ((13, 10), 2, 0.0, ("must",)),  # sizes that are not 2^k + 1: a shorter last gap
        ((9, 11, 7), 2, 0.0, ("content",)),
        ((10, 6, 5), 4, 0.0, ("must", "busy")),
        ((17, 13), 4, 0.5, ("content", "busy")),
        ((11, 9, 6), 2, 0.0, ("must", "content")),  # both, as the 'structures' rule
    ],
)
def test_plan_equals_the_reference_for_any_chunking(counts, h0, tol, rules, reach):
    rng = np.random.default_rng(sum(counts))
    values, must, content = _case(counts, rng)
    kw = {"tol": tol, "reach": reach}
    if "must" in rules:
        kw["must"] = must
    if "content" in rules:
        kw.update(content=content, content_tol=0.15)
    if "busy" in rules:
        kw["busy"] = 0.3
    ref_kw = {
        "must": kw.get("must"),
        "content": kw.get("content"),
        "ctol": kw.get("content_tol", 0.0),
        "busy": kw.get("busy", 1.0),
    }
    want_eval, want_grid = reference_plan(values, h0, tol, reach, **ref_kw)
    for chunk in (1, 5, 1000):
        plan = run_plan(values, h0, chunk, **kw)
        got = {tuple(int(v) for v in np.unravel_index(i, counts)) for i in plan.visits}
        assert got == want_eval
        assert len(plan.visits) == len(want_eval)  # each centre once
        np.testing.assert_allclose(plan.values, want_grid, rtol=0, atol=1e-12)
        assert plan.known.all()
        ev = plan.evaluated
        np.testing.assert_array_equal(plan.values[ev], values[ev])  # exactly the values seen
        assert np.all(plan.reasons[ev] > 0) and np.all(plan.reasons[~ev] == 0)


def test_reasons_name_the_rule_that_asked():
    counts = (9, 9)
    values = np.full(counts, 2.0)
    values[4, 4] = 5.0  # a change seen by the first level (step 4)
    must = np.zeros(counts, bool)
    must[1, 7] = True
    plan = run_plan(values, 4, 100, must=must)
    r = plan.reasons
    assert r[0, 0] == r[4, 4] == r[8, 8] == REASONS["first"]
    assert r[1, 7] == REASONS["hidden"]  # all its neighbours are 2.0
    assert r[2, 2] == REASONS["neighbours"]  # between 2.0 and 5.0
    assert r[1, 1] == 0 and plan.values[1, 1] == 2.0  # skipped: only 2.0 around it
    assert not plan.evaluated[6, 0]


def test_every_changed_centre_is_evaluated_when_changes_are_wider_than_the_coarse_step():
    counts, h0 = (33, 33), 4
    values = blob_values(counts, (12.3, 20.7), 6.0)
    plan = run_plan(values, h0, 7)
    changed = values != 2.0
    assert np.all(plan.evaluated[changed])
    np.testing.assert_array_equal(plan.values, values)
    assert plan.evaluated.sum() < values.size / 3


def test_a_linear_ramp_is_interpolated_exactly_with_an_uneven_last_gap():
    counts = (12, 7)  # last gaps of 3 and 2 at the first level
    values = np.add.outer(np.arange(counts[0]) * 0.5, np.arange(counts[1]) * -0.25)
    plan = run_plan(values, 4, 3, tol=10.0)
    assert plan.evaluated.sum() == 4 * 3  # the first level only: {0, 4, 8, 11} × {0, 4, 6}
    np.testing.assert_allclose(plan.values, values, rtol=0, atol=1e-12)


def test_first_step_keeps_first_level_centres_within_two_diameters():
    grid = CentreGrid((64, 96, 96), 16.0, 8.0, (2.0, 1.0, 1.0))  # stride 8: 32 ≤ 2 × 16
    assert default_first_step(grid, 16.0) == 4
    assert default_first_step(grid, 40.0) == 8  # never more than 8
    assert default_first_step(CentreGrid((240, 240), 25.0, 5.0, (1.0, 1.0)), 25.0) == 8
    assert default_first_step(CentreGrid((240, 240), 4.0, 5.0, (1.0, 1.0)), 4.0) == 1
    assert default_first_step(CentreGrid((20, 20), 10.0, 5.0, (1.0, 1.0)), 10.0) == 2


def _image() -> np.ndarray:
    img = np.zeros((40, 40), np.float32)
    img[8:16, 10:22] = 1.0
    img[26:33, 25:31] = 1.0
    return img


def _volume() -> np.ndarray:
    vol = np.zeros((14, 16, 15), np.float32)
    vol[3:9, 4:11, 3:10] = 1.0
    vol[9:12, 10:14, 9:13] = 0.8
    return vol


@functools.cache
def _full_sweep(dims: int):
    """The full sweep of the small image or volume (computed once per test run)."""
    img = _image() if dims == 2 else _volume()
    kw = {"diameter": 6, "stride": 1 if dims == 2 else 2, "batch_size": 8}
    return img, kw, HDM(ThresholdNet(dims)).explain(img, sweep="full", **kw)


@pytest.mark.parametrize("rule", ["structures", "hidden", "change"])
@pytest.mark.parametrize("dims", [2, 3])
def test_adaptive_sweep_against_the_full_sweep(dims, rule):
    img, kw, full = _full_sweep(dims)
    spy = Spy(ThresholdNet(dims))
    adapt = HDM(spy).explain(img, sweep="adaptive", content_rule=rule, content_tol=0.1, **kw)
    ev = adapt.extras["grid_evaluated"].astype(bool)
    got, want = adapt.extras["grid_raw"], full.extras["grid_raw"]
    np.testing.assert_array_equal(got[ev], want[ev])  # what the model saw, exactly
    assert np.corrcoef(adapt.map.ravel(), full.map.ravel())[0, 1] > 0.99
    span = np.ptp(full.map)
    assert np.abs(adapt.map - full.map).max() <= 0.25 * span
    n_eval = int(ev.sum())
    assert spy.images == adapt.n_forward == n_eval + 1  # and the unperturbed input
    assert adapt.n_done == adapt.n_total == n_eval < full.n_done
    assert np.array_equal(adapt.extras["grid_reasons"] > 0, ev)
    assert adapt.params["sweep"] == "adaptive" and adapt.done


def test_adaptive_map_equals_the_full_sweep_on_the_two_boxes():
    full = HDM(ThresholdNet(2)).explain(_image(), diameter=6, stride=1, batch_size=8, sweep="full")
    adapt = HDM(ThresholdNet(2)).explain(
        _image(), diameter=6, stride=1, sweep="adaptive", batch_size=8
    )
    np.testing.assert_array_equal(adapt.map, full.map)
    for name in ("better_only", "worse_only"):
        np.testing.assert_array_equal(adapt.extras[name], full.extras[name])


@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_adaptive_map_is_the_same_for_any_batch_size(batch_size):
    kw = {"diameter": 6, "stride": 1, "sweep": "adaptive", "content_rule": "change"}
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
    spy = Spy(ThresholdNet(2))
    for snap in HDM(spy).iter_explain(_image(), cancel=token, **kw):
        seen.append(snap)
        if len(seen) == 2:
            token.cancel()
    assert seen[-1].cancelled and seen[-1].n_done < snaps[-1].n_done
    assert spy.images <= seen[-1].n_done + 1 + 16  # at most the batch in flight


def test_hiding_centres_are_those_whose_disk_covers_a_different_voxel():
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


def test_hidden_content_is_the_mean_difference_in_each_disk():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((2, 9, 8, 7)))[None]
    hidden = torch.full_like(x, 0.3)
    grid = CentreGrid((9, 8, 7), 4.0, (2.0, 1.0, 3.0), (1.0, 1.0, 1.5))
    got = hidden_content(grid, x, hidden)
    disks = grid.occluders(torch.arange(grid.n_centres)).numpy().reshape(grid.n_centres, -1)
    diff = (x - hidden).abs().amax(dim=1).flatten().numpy()
    span = float(x.max() - x.min())
    want = np.array([diff[d].mean() / span for d in disks])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("rule", ["structures", "hidden", "change"])
def test_the_sweep_evaluates_what_the_plan_asks_on_the_full_sweeps_distances(rule):
    vol, kw, full = _full_sweep(3)
    adapt = HDM(ThresholdNet(3)).explain(
        vol, sweep="adaptive", content_rule=rule, content_tol=0.1, **kw
    )
    x = torch.from_numpy(vol)[None, None]
    grid = CentreGrid(vol.shape, 6.0, 2.0, (1.0, 1.0, 1.0))
    hidden = torch.zeros_like(x)  # the default fill, 0
    rules = {}
    if rule == "hidden":
        rules["must"] = hiding_centres(grid, x, hidden, 0.1)
    if rule == "structures":
        rules["must"] = structure_centres(grid, x, hidden, 0.1)
    if rule != "hidden":
        rules.update(content=hidden_content(grid, x, hidden), content_tol=0.1)
    plan = run_plan(full.extras["grid_raw"], default_first_step(grid, 6.0), 1000, busy=0.7, **rules)
    np.testing.assert_array_equal(adapt.extras["grid_evaluated"].astype(bool), plan.evaluated)
    np.testing.assert_array_equal(adapt.extras["grid_reasons"], plan.reasons)
    np.testing.assert_allclose(adapt.extras["grid_raw"], plan.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("slices", ["all", [1]])
@pytest.mark.parametrize("skip_all", [False, True])
def test_coverage_of_a_sliced_volume_counts_only_the_slices_explained(skip_all, slices):
    """Slices with nothing to explain, or not chosen, have no centres to see: they are not
    'interpolated'."""
    vol = (0.3 * np.random.default_rng(0).random((3, 30, 26))).astype(np.float32)
    vol[1, 6:18, 5:15] = 1  # only slice 1 has a foreground
    kw = {"diameter": 5, "stride": 2, "batch_size": 8, "content_tol": 0.0}
    rule = "change" if skip_all else "hidden"  # "change" skips centres of slice 1
    spy = Spy(ThresholdNet(2))
    expl = HDM(spy, spatial_dims=2).explain(vol, content_rule=rule, slices=slices, **kw)
    assert expl.slices == (1,)
    per_slice = expl.extras["grid_evaluated"][1].size
    seen = int(np.count_nonzero(expl.extras["grid_evaluated"][1]))
    # the slices looked at unperturbed (all three, or the one chosen), then slice 1's centres
    assert spy.images == seen + (3 if slices == "all" else 1)
    if seen == per_slice:
        assert expl.coverage_text() is None
    else:
        assert f"the model saw {seen} of {per_slice} centres" in expl.coverage_text()
