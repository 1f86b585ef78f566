"""The RISE family's estimators, mask sampling and reliability figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import PixelRISE, SegRISE
from maskscope._engine.masks import BLOCK, RiseMasks
from tests.conftest import ThresholdNet

from .reference import dice_np, masks_np, model_np, reliability_np, rise_np


def _square(size=24, lo=5, hi=17):
    img = np.zeros((size, size), np.float32)
    img[lo:hi, lo:hi] = 1.0
    return img


def test_centred_and_paper_differ_by_the_coverage_term(net2d):
    """centred − paper = w̄ (1 − Σ m / (N p)): the same expectation, since E[m] = p."""
    img = _square()
    kw = {"n_masks": 60, "grid": 4, "p_keep": 0.4, "seed": 3}
    paper = SegRISE(net2d).explain(img, estimator="paper", **kw)
    centred = SegRISE(net2d).explain(img, estimator="centred", **kw)
    assert centred.params["estimator"] == "centred"
    masks = masks_np(img.shape, 4, 0.4, 3, 60)
    ref = model_np(net2d, img[None]).argmax(0)
    weights = [dice_np(model_np(net2d, (img * m)[None]).argmax(0), ref, [1]) for m in masks]
    coverage = masks.sum(0) / (60 * 0.4)
    # float32 masks: equal to their rounding (1e-6 of the map's scale)
    np.testing.assert_allclose(
        centred.map - paper.map, np.mean(weights) * (1 - coverage), rtol=1e-6, atol=1e-6
    )
    want, se = rise_np(net2d, img[None], masks, 0.4, lambda o: dice_np(o.argmax(0), ref, [1]))
    np.testing.assert_allclose(centred.map, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(centred.stderr, se, rtol=1e-4, atol=1e-6)
    rel = reliability_np(masks, np.asarray(weights), 0.4)
    assert centred.reliability == pytest.approx(rel, rel=1e-6)


@pytest.mark.parametrize("sampling", ["iid", "stratified"])
@pytest.mark.parametrize("estimator", ["covariate", "centred", "paper"])
def test_same_map_and_reliability_for_any_batch_size(net2d, sampling, estimator):
    img = _square()
    kw = {"n_masks": 300, "grid": 4, "seed": 5, "sampling": sampling, "estimator": estimator}
    runs = [SegRISE(net2d).explain(img, batch_size=b, **kw) for b in (1, 7, 300)]
    scale = float(np.abs(runs[0].map).max())
    for other in runs[1:]:  # the same sums, grouped differently: float32 rounding at most
        np.testing.assert_allclose(other.map, runs[0].map, rtol=0, atol=1e-6 * scale)
        assert other.reliability == pytest.approx(runs[0].reliability, abs=1e-5)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_stratified_cells_are_kept_in_a_fixed_share_of_each_block(p):
    gen = RiseMasks((16, 16, 12), (4, 3, 2), p, seed=9, sampling="stratified")
    for block in range(2):
        grids, _ = gen.params(block * BLOCK, (block + 1) * BLOCK)
        kept = grids.sum(0)
        lo, hi = np.floor(BLOCK * p), np.ceil(BLOCK * p)
        assert int(kept.min()) >= lo and int(kept.max()) <= hi
    # and the masks are still random: two blocks differ
    a, _ = gen.params(0, BLOCK)
    b, _ = gen.params(BLOCK, 2 * BLOCK)
    assert not torch.equal(a, b)


def test_bad_estimator_and_sampling_are_named(net2d):
    named = r"estimator must be one of 'covariate', 'centred', 'paper', got 'x'"
    with pytest.raises(ValueError, match=named):
        SegRISE(net2d).explain(_square(), n_masks=4, estimator="x")
    with pytest.raises(ValueError, match=r"sampling must be one of 'iid', 'stratified'"):
        SegRISE(net2d).explain(_square(), n_masks=4, sampling="sobol")


def _agreement(model, img, n, **kw):
    a = SegRISE(model).explain(img, n_masks=n, seed=0, grid=4, **kw)
    b = SegRISE(model).explain(img, n_masks=n, seed=1, grid=4, **kw)
    return float(np.corrcoef(a.map.ravel(), b.map.ravel())[0, 1]), a, b


def test_centring_removes_the_coverage_noise():
    """With weights that vary little (Dice of a large segment) the paper's map is mostly the
    masks' own coverage; the centred one is not, and two seeds agree."""
    net = ThresholdNet(2)
    img = _square(32, 4, 28)
    paper, a, _ = _agreement(net, img, 400, estimator="paper")
    centred, c, _ = _agreement(net, img, 400, estimator="centred")
    coverage = masks_np(img.shape, 4, 0.5, 0, 400).mean(0)
    cov_paper = np.corrcoef(a.map.ravel(), coverage.ravel())[0, 1]
    cov_centred = np.corrcoef(c.map.ravel(), coverage.ravel())[0, 1]
    assert cov_paper > 0.5 and abs(cov_centred) < 0.2  # measured: 0.67 and 0.03
    assert centred > paper + 0.2  # measured: 0.96 and 0.65


def test_reliability_predicts_two_seed_agreement():
    net = ThresholdNet(2)
    img = _square(32, 6, 20)
    for n in (100, 800):
        measured, a, b = _agreement(net, img, n)
        predicted = 0.5 * (a.reliability + b.reliability)
        assert abs(predicted - measured) < 0.1, (n, predicted, measured)
    assert a.reliability_text().startswith(f"reliability {a.reliability:.2f} (")


def test_pixelrise_max_reliability_and_early_stop(net2d):
    img = _square()
    mx = PixelRISE(net2d).explain(img, n_masks=400, grid=4, merge="max", seed=0)
    other = PixelRISE(net2d).explain(img, n_masks=400, grid=4, merge="max", seed=1)
    measured = np.corrcoef(mx.map.ravel(), other.map.ravel())[0, 1]
    assert abs(0.5 * (mx.reliability + other.reliability) - measured) < 0.1
    early = PixelRISE(net2d).explain(
        img, n_masks=4000, grid=4, merge="max", tol=0.1, min_masks=40, batch_size=20
    )
    assert early.stopped_early and early.reliability >= 0.9 and early.n_done < 4000


def test_every_slice_that_stops_early_shrinks_the_planned_total(net2d):
    """Slice by slice, each slice stops on its own; n_total ends as the masks evaluated."""
    vol = np.stack([_square(), _square(), _square()])
    seen = []
    expl = SegRISE(net2d).explain(
        vol, n_masks=4000, grid=4, tol=0.2, min_masks=40, batch_size=20, progress=seen.append
    )
    assert expl.stopped_early and expl.n_done < 3 * 4000
    assert expl.n_total == expl.n_done
    # each slice stopped early: every slice's planned masks were cut to what it used
    assert len(expl.slices) == 3 and all(s.n_total >= s.n_done for s in seen)
