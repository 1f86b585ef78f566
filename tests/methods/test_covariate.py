"""The covariate estimator: the exact covariance of the region's share, and the maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import RISE, PixelRISE, SegRISE
from maskscope._engine.accumulate import WeightedSum
from maskscope._engine.covariate import RegionCovariate, mask_kernels
from maskscope._engine.crop import WindowMasks
from maskscope._engine.masks import RiseMasks
from maskscope._engine.sum_estimates import MIN_FIT
from tests.conftest import ThresholdNet, TinyClassifier

from .reference import (
    dice_np,
    masks_np,
    model_np,
    region_cov_np,
    reliability_np,
    rise_np,
    softmax,
)


def _square(size=24, lo=5, hi=17):
    img = np.zeros((size, size), np.float32)
    img[lo:hi, lo:hi] = 1.0
    return img


@pytest.mark.parametrize(
    ("spatial", "grid", "p"), [((13, 11), 3, 0.5), ((9, 10), (1, 4), 0.3), ((6, 7, 5), 2, 0.6)]
)
def test_region_covariance_equals_enumeration(spatial, grid, p):
    region = np.zeros(spatial, bool)
    region[tuple(slice(1, s // 2 + 1) for s in spatial)] = True
    gen = RiseMasks(spatial, grid, p, seed=0)
    cov = RegionCovariate(torch.from_numpy(region), mask_kernels(gen), p)
    want = region_cov_np(spatial, grid, p, region)
    # float32 interpolation weights: their rounding
    np.testing.assert_allclose(cov.cov.reshape(spatial).numpy(), want, rtol=1e-6, atol=1e-12)


def test_window_covariance_equals_enumeration():
    """A crop window's masks: the rows of the full image's masks at the window's origin."""
    full, window = (17, 15), (slice(4, 12), slice(3, 14))
    shape = (8, 11)
    region = np.zeros(shape, bool)
    region[2:5, 3:9] = True
    gen = WindowMasks(full, window, 4, 0.5, 0)
    cov = RegionCovariate(torch.from_numpy(region), mask_kernels(gen), 0.5)
    want = region_cov_np(shape, 4, 0.5, region, origin=(4, 3), full=full)
    # float32 interpolation weights: their rounding
    np.testing.assert_allclose(cov.cov.reshape(shape).numpy(), want, rtol=1e-6, atol=1e-12)


def test_region_covariance_is_what_the_masks_show():
    """Over many masks, the mean of φ·(m(x) − p) approaches the exact covariance."""
    spatial, n = (12, 10), 40_000
    region = torch.zeros(spatial, dtype=torch.bool)
    region[3:7, 2:6] = True
    gen = RiseMasks(spatial, 3, 0.5, seed=4, dtype=torch.float64)
    cov = RegionCovariate(region, mask_kernels(gen), 0.5)
    m = gen(0, n).reshape(n, -1)
    phi = cov.features(m)
    prod = phi[:, None] * (m - 0.5)
    err = prod.std(0) / np.sqrt(n)
    assert bool(((prod.mean(0) - cov.cov).abs() < 5 * err + 1e-12).all())


def test_segrise_default_is_the_covariate_and_equals_the_reference(net2d):
    img = _square()
    kw = {"n_masks": 80, "grid": 4, "p_keep": 0.4, "seed": 3}
    expl = SegRISE(net2d).explain(img, **kw)
    assert expl.params["estimator"] == "covariate"
    masks = masks_np(img.shape, 4, 0.4, 3, 80)
    ref = model_np(net2d, img[None]).argmax(0)
    region = ref == 1
    cov = region_cov_np(img.shape, 4, 0.4, region)

    def dice(o):
        return dice_np(o.argmax(0), ref, [1])

    want, se = rise_np(net2d, img[None], masks, 0.4, dice, "covariate", region, cov)
    np.testing.assert_allclose(expl.map, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(expl.stderr, se, rtol=1e-4, atol=1e-6)
    weights = np.array([dice(model_np(net2d, (img * m)[None])) for m in masks])
    rel = reliability_np(masks, weights, 0.4, "covariate", region, cov)
    assert expl.reliability == pytest.approx(rel, rel=1e-6)


def _agreement(model, img, n, **kw):
    a = SegRISE(model).explain(img, n_masks=n, seed=0, grid=4, **kw)
    b = SegRISE(model).explain(img, n_masks=n, seed=1, grid=4, **kw)
    return float(np.corrcoef(a.map.ravel(), b.map.ravel())[0, 1]), a, b


def test_covariate_agrees_across_seeds_where_centring_does_not():
    """A large segment: the weights follow how much of it is kept. Regressing them on that
    share takes out most of their variance, and two seeds' maps agree far better."""
    net = ThresholdNet(2)
    img = _square(32, 4, 28)
    centred, _, _ = _agreement(net, img, 200, estimator="centred")
    covariate, a, b = _agreement(net, img, 200)
    assert covariate > centred + 0.1, (covariate, centred)
    predicted = 0.5 * (a.reliability + b.reliability)
    assert abs(predicted - covariate) < 0.1, (predicted, covariate)


def test_covariate_keeps_the_centred_map_in_expectation():
    """Both estimators target the same map: at many masks, the two seeds' covariate and
    centred maps agree across estimators as well as within them."""
    net = ThresholdNet(2)
    img = _square(32, 6, 20)
    kw = {"n_masks": 1500, "grid": 4}
    cov = SegRISE(net).explain(img, seed=0, **kw)
    cen = SegRISE(net).explain(img, seed=1, estimator="centred", **kw)
    cen2 = SegRISE(net).explain(img, seed=2, estimator="centred", **kw)
    across = np.corrcoef(cov.map.ravel(), cen.map.ravel())[0, 1]
    within = np.corrcoef(cen2.map.ravel(), cen.map.ravel())[0, 1]
    assert across >= within - 0.02, (across, within)


def test_without_a_segment_the_covariate_is_the_centred_estimator():
    img = np.random.default_rng(0).random((12, 12)).astype(np.float32)
    kw = {"n_masks": 64, "grid": 3, "seed": 2, "target": 1}
    a = RISE(TinyClassifier()).explain(img, **kw)
    b = RISE(TinyClassifier()).explain(img, estimator="centred", **kw)
    np.testing.assert_array_equal(a.map, b.map)


@pytest.mark.parametrize("max_of", ["gain", "map"])
def test_pixelrise_max_is_centred_throughout(net2d, max_of):
    """The max of centred per-pixel maps is at least their mean, the centred mean-merge
    (less the mean score ``w̄`` for gains: the mean of the pixels' gains is that merge − w̄)."""
    img = _square()
    kw = {"n_masks": 120, "grid": 4, "seed": 1, "max_of": max_of}
    mx = PixelRISE(net2d).explain(img, merge="max", **kw)
    centred = PixelRISE(net2d).explain(img, merge="max", estimator="centred", **kw)
    np.testing.assert_array_equal(mx.map, centred.map)
    offset, slack = 0.0, 1e-9
    if max_of == "gain":  # w̄ from numpy in float64 beside the run's float32 sums
        slack = 1e-6
        region = model_np(net2d, img[None]).argmax(0) == 1
        masks = masks_np(img.shape, 4, 0.5, 1, 120)
        probs = [softmax(model_np(net2d, img[None] * m[None]))[1][region].mean() for m in masks]
        offset = float(np.mean(probs))
    assert np.all(mx.map >= mx.extras["mean"] - offset - slack)
    # and not trivially: somewhere the max is well above that mean
    assert np.max(mx.map - (mx.extras["mean"] - offset)) > 1e-3


def test_few_masks_give_the_centred_map(net2d):
    """Below MIN_FIT masks the fit would leave no residual (two masks: none at all), and the
    map would be the slope times C, a blurred segment that says nothing yet."""
    img = _square()
    kw = {"grid": 4, "seed": 3, "batch_size": 1}
    cov = list(SegRISE(net2d).iter_explain(img, n_masks=MIN_FIT, **kw))
    cen = list(SegRISE(net2d).iter_explain(img, n_masks=MIN_FIT, estimator="centred", **kw))
    for a, b in zip(cov[:-1], cen[:-1], strict=True):
        assert a.n_done < MIN_FIT
        np.testing.assert_array_equal(a.map, b.map)
    assert cov[-1].n_done == MIN_FIT and not np.array_equal(cov[-1].map, cen[-1].map)


def test_blocks_of_another_estimator_are_refused():
    spatial = (8, 8)
    gen = RiseMasks(spatial, 2, 0.5, seed=0)
    cov = RegionCovariate(torch.ones(spatial, dtype=torch.bool), mask_kernels(gen), 0.5)
    plain = WeightedSum(spatial, 0.5, torch.device("cpu"), estimator="centred")
    plain.collect = True
    plain.update(gen.batch(0, 4), torch.rand(4))
    other = WeightedSum(spatial, 0.5, torch.device("cpu"), covariate=cov)
    with pytest.raises(ValueError, match="another estimator or covariate"):
        other.add_block(plain.take_blocks()[0])


def test_empty_region_is_refused():
    gen = RiseMasks((6, 6), 2, 0.5, seed=0)
    with pytest.raises(ValueError, match="non-empty region"):
        RegionCovariate(torch.zeros(6, 6, dtype=torch.bool), mask_kernels(gen), 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_region_features_are_the_same_bits_in_any_chunk_and_equal_the_mean(dtype):
    spatial, n = (33, 29), 50
    region = torch.zeros(spatial, dtype=torch.bool)
    region[4:25, 3:20] = True
    gen = RiseMasks(spatial, 5, 0.4, seed=8, dtype=dtype)
    cov = RegionCovariate(region, mask_kernels(gen), 0.4)
    m = gen(0, n).reshape(n, -1)
    whole = cov.features(m)
    for chunk in (1, 7, 16):
        parts = torch.cat([cov.features(m[i : i + chunk]) for i in range(0, n, chunk)])
        assert torch.equal(parts, whole)
    want = m[:, region.flatten()].double().mean(1) - 0.4
    torch.testing.assert_close(whole, want, rtol=0, atol=1e-15)
    assert whole.dtype == torch.float64 and float(whole.std()) > 0.01
