"""Several targets' adaptive HDM sweeps in one run: the union of their plans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import HDM
from maskscope._engine.adaptive_sweep import AdaptiveSweep
from maskscope._engine.adaptive_targets import SharedSweeps
from maskscope._engine.occlusion import CentreGrid
from tests.conftest import Spy
from tests.roi.test_targets import Bands
from tests.speed.test_adaptive_hdm import blob_values, run_plan


def _feed(shared: SharedSweeps, values: list[np.ndarray], chunk: int) -> list[int]:
    """The loop's part: masks of the planned visits, one score per target, in chunks."""
    done, sizes = 0, []
    while done < shared.planned():
        stop = min(done + chunk, shared.planned())
        batch = shared.batch(done, stop, torch.float32)
        flat = shared.visits[done:stop]
        shared.update(batch, tuple(torch.from_numpy(v.flat[flat].copy()) for v in values))
        sizes.append(len(batch))
        done = stop
    return sizes


@pytest.mark.parametrize("chunk", [1, 4, 1000])
@pytest.mark.parametrize("shape,h0", [((40, 36), 4), ((14, 18, 12), 2)])
def test_each_target_gets_its_own_runs_plan_from_the_union(shape, h0, chunk):
    grid = CentreGrid(shape, 4.0, 2.0, (1.0,) * len(shape))
    counts = grid.counts
    # three targets whose distances change in different places (two overlap)
    values = [
        blob_values(counts, [c * 0.25 for c in counts], 2.5),
        blob_values(counts, [c * 0.75 for c in counts], 2.5, baseline=1.0),
        blob_values(counts, [c * 0.3 for c in counts], 2.0),
    ]
    sweeps = [AdaptiveSweep(grid, 2.0, first_step=h0) for _ in values]
    shared = SharedSweeps(sweeps, ["a", "b", "c"])
    _feed(shared, values, chunk)
    own = [run_plan(v, h0, 1) for v in values]
    union = np.logical_or.reduce([p.evaluated for p in own])
    assert len(shared.visits) == len(set(shared.visits)) == int(union.sum())
    assert not all(np.array_equal(p.evaluated, union) for p in own)  # the plans differ
    for sweep, plan in zip(sweeps, own, strict=True):
        assert sweep.plan.finished
        np.testing.assert_array_equal(sweep.plan.evaluated, plan.evaluated)
        np.testing.assert_array_equal(sweep.plan.values, plan.values)
        assert sweep.n == int(plan.evaluated.sum())


@pytest.mark.parametrize("seed", range(12))
def test_a_centre_scored_for_one_target_before_another_plans_it(seed):
    """Plans a level apart: a target asks for centres the run scored for another."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(24, 56)), int(rng.integers(24, 56)))
    grid = CentreGrid(shape, 4.0, 2.0, (1.0, 1.0))
    counts = grid.counts
    values = [
        blob_values(
            counts,
            [c * rng.random() for c in counts],
            float(rng.uniform(1, 6)),
            baseline=float(rng.uniform(0, 3)),
        )
        for _ in range(3)
    ]
    sweeps = [AdaptiveSweep(grid, 2.0, first_step=8) for _ in values]
    shared = SharedSweeps(sweeps, ["a", "b", "c"])
    _feed(shared, values, int(rng.choice([3, 4, 7])))
    own = [run_plan(v, 8, 1) for v in values]
    union = np.logical_or.reduce([p.evaluated for p in own])
    assert len(shared.visits) == len(set(shared.visits)) == int(union.sum())
    for sweep, plan in zip(sweeps, own, strict=True):
        assert sweep.plan.finished
        np.testing.assert_array_equal(sweep.plan.values, plan.values)


def test_several_rois_evaluate_the_union_of_their_plans_once():
    img = np.zeros((40, 44), np.float32)
    img[4:14, 4:14] = 1.0
    img[24:36, 26:38] = 1.0
    rois = ["0:20,0:20", "20:40,22:44"]
    kw = {"diameter": 4, "stride": 2, "content_rule": "change", "batch_size": 7, "target": 3}
    singles = [HDM(Bands()).explain(img, roi=r, crop=False, **kw) for r in rois]
    seen = [s.extras["grid_evaluated"].astype(bool) for s in singles]
    union = int((seen[0] | seen[1]).sum())
    assert union > max(int(s.sum()) for s in seen)  # each ROI needs centres the other does not
    spy = Spy(Bands())
    got = HDM(spy).explain(img, roi=rois, **kw)
    assert spy.images == got.n_total + 1 == union + 1
    for i, single in enumerate(singles):
        np.testing.assert_array_equal(got.extras[f"target_{i}"], single.map)


@pytest.mark.parametrize("extra", [{"targets": [1, 3]}, {"roi": ["0:20,0:20", "20:40,22:44"]}])
@pytest.mark.parametrize(
    ("sweep", "why"),
    [("adaptive", "adaptive sweep .* cannot be split.*sweep='full'"),
     ("full", "several targets or ROIs in one run cannot be split.*one run per target")],
)  # fmt: skip
def test_several_targets_cannot_be_split_and_the_error_says_why(extra, sweep, why):
    from maskscope.methods._ranges import run_range

    img = np.zeros((40, 44), np.float32)
    img[4:14, 4:14], img[24:36, 26:38] = 1.0, 0.67
    with pytest.raises(ValueError, match=why):
        run_range(HDM(Bands()), img, (0, 256), diameter=4, stride=2, sweep=sweep, **extra)


def test_coverage_of_several_targets_counts_the_union_the_model_saw():
    img = np.zeros((40, 44), np.float32)
    img[4:14, 4:14], img[24:36, 26:38], img[20:30, 2:12] = 1.0, 0.67, 0.31
    kw = {"diameter": 4, "stride": 2, "content_rule": "change", "batch_size": 8}
    spy = Spy(Bands())
    got = HDM(spy).explain(img, targets=[1, 2, 3], **kw)
    seen = [HDM(Bands()).explain(img, target=t, **kw).extras["grid_evaluated"] for t in (1, 2, 3)]
    union = int(np.count_nonzero(np.logical_or.reduce([s > 0 for s in seen])))
    assert union > int(np.count_nonzero(seen[0]))  # the targets' plans differ
    assert spy.images == union + 1  # the unperturbed input, then each centre once
    assert f"the model saw {union} of {seen[0].size} centres" in got.coverage_text()
