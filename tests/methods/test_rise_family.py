"""RISE, PixelRISE and SegRISE against slow references, and their invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import RISE, PixelRISE, SegRISE
from tests.conftest import Spy, ThresholdNet, TinyClassifier

from .reference import (
    dice_np,
    estimate_np,
    masks_np,
    model_np,
    pixel_max_np,
    region_cov_np,
    reliability_np,
    rise_cov_np,
    rise_np,
    softmax,
)

N = 40


def _ref_labels(model, image):
    return model_np(model, image[None]).argmax(0)


def test_segrise_matches_reference_2d(net2d, square2d):
    expl = SegRISE(net2d).explain(square2d, n_masks=N, grid=4, p_keep=0.5, seed=1)
    ref = _ref_labels(net2d, square2d)
    masks = masks_np((16, 16), 4, 0.5, 1, N)

    def dice(o):
        return dice_np(o.argmax(0), ref, [1])

    want, se = rise_cov_np(net2d, square2d[None], masks, 0.5, dice, 4, ref == 1)
    np.testing.assert_allclose(expl.map, want, rtol=1e-6, atol=1e-9)
    # the error expands a variance over float32 masks' sums: 1e-5 of it is their rounding
    np.testing.assert_allclose(expl.stderr, se, rtol=1e-4, atol=1e-9)
    assert expl.n_done == N and expl.done and expl.target is None
    np.testing.assert_array_equal(expl.reference, ref)


def test_segrise_matches_reference_3d(net3d, cube3d):
    expl = SegRISE(net3d).explain(cube3d, n_masks=N, grid=(2, 3, 4), p_keep=0.4, seed=2)
    ref = _ref_labels(net3d, cube3d)
    masks = masks_np((8, 8, 8), (2, 3, 4), 0.4, 2, N)

    def dice(o):
        return dice_np(o.argmax(0), ref, [1])

    want, _ = rise_cov_np(net3d, cube3d[None], masks, 0.4, dice, (2, 3, 4), ref == 1)
    assert expl.map.shape == (8, 8, 8)
    np.testing.assert_allclose(expl.map, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("estimator", ["covariate", "centred", "paper"])
def test_rise_segment_score_matches_reference(net2d, square2d, estimator):
    expl = RISE(net2d).explain(
        square2d, n_masks=N, grid=4, p_keep=0.5, baseline=0.25, seed=3, estimator=estimator
    )
    region = _ref_labels(net2d, square2d) == 1
    masks = masks_np((16, 16), 4, 0.5, 3, N)

    def weight(o):
        return softmax(o)[1][region].mean()

    # blend with a baseline: x·m + b·(1 − m)
    weights = np.array(
        [weight(model_np(net2d, (square2d * m + 0.25 * (1 - m))[None])) for m in masks]
    )
    cov = region_cov_np((16, 16), 4, 0.5, region)
    want, _ = estimate_np(masks, weights, 0.5, estimator, region, cov)
    if estimator != "covariate":  # the formula itself, written out
        c = weights.mean() if estimator == "centred" else 0.0
        sums = sum((w - c) * m for w, m in zip(weights, masks, strict=True))
        np.testing.assert_allclose(want, c + sums / (N * 0.5), rtol=1e-12)
    np.testing.assert_allclose(expl.map, want, rtol=1e-6, atol=1e-9)
    assert expl.target == 1
    assert expl.reliability == pytest.approx(
        reliability_np(masks, weights, 0.5, estimator, region, cov), rel=1e-6
    )


def test_rise_classifier_matches_reference():
    clf = TinyClassifier()
    img = np.random.default_rng(0).random((12, 12)).astype(np.float32)
    expl = RISE(clf).explain(img, n_masks=N, grid=3, p_keep=0.5, target=1, seed=4)
    masks = masks_np((12, 12), 3, 0.5, 4, N)
    want, _ = rise_np(clf, img[None], masks, 0.5, lambda o: softmax(o)[1])
    np.testing.assert_allclose(expl.map, want, rtol=1e-6, atol=1e-9)
    assert expl.prediction is None and expl.reference is None


def test_pixelrise_mean_equals_rise(net2d, square2d):
    kw = {"n_masks": N, "grid": 4, "seed": 5, "batch_size": 16}
    a = PixelRISE(net2d).explain(square2d, merge="mean", **kw)
    b = RISE(net2d).explain(square2d, **kw)
    np.testing.assert_allclose(a.map, b.map, rtol=1e-10)
    np.testing.assert_allclose(a.stderr, b.stderr, rtol=1e-8)


@pytest.mark.parametrize(
    "max_of, estimator", [("gain", "covariate"), ("map", "covariate"), ("gain", "paper")]
)
@pytest.mark.parametrize("max_memory_mb", [512, None])
def test_pixelrise_max_matches_brute_force(
    net2d, square2d, max_memory_mb, max_of, estimator, monkeypatch
):
    kwargs = {"n_masks": N, "grid": 4, "merge": "max", "seed": 6, "batch_size": 7}
    kwargs |= {"max_of": max_of, "estimator": estimator}
    if max_memory_mb is None:
        # force several pixel tiles: 16·16 voxels · 4 bytes = 1 KiB per pixel
        import maskscope._engine.pixel_max as acc

        original = acc.PixelMax.__init__

        def small(self, *a, **k):
            k["max_bytes"] = 5 * 1024
            original(self, *a, **k)

        monkeypatch.setattr(acc.PixelMax, "__init__", small)
    spy = Spy(net2d)
    expl = PixelRISE(spy).explain(square2d, **kwargs)
    region = _ref_labels(net2d, square2d) == 1
    pixels = list(zip(*np.nonzero(region), strict=True))
    masks = masks_np((16, 16), 4, 0.5, 6, N)
    centred = "paper" if estimator == "paper" else "centred"
    gain = max_of == "gain"
    want = pixel_max_np(net2d, square2d[None], masks, 0.5, pixels, 1, centred, gain)
    np.testing.assert_allclose(expl.map, want, rtol=1e-5, atol=1e-7)
    assert spy.images == N + 1  # tiles never re-run the model
    # the max merge is centred throughout (see PixelMax), its mean-merge too
    mean = RISE(net2d).explain(square2d, n_masks=N, grid=4, seed=6, estimator=centred).map
    np.testing.assert_allclose(expl.extras["mean"], mean, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_pixelrise_max_pixel_subset_is_spread_and_the_same_for_every_seed(net2d, square2d, seed):
    kw = {"n_masks": 10, "grid": 4, "merge": "max", "seed": seed, "batch_size": 16}
    a = PixelRISE(net2d).explain(square2d, max_pixels=5, **kw)
    b = PixelRISE(net2d).explain(square2d, max_pixels=5, **kw)
    c = PixelRISE(net2d).explain(square2d, max_pixels=None, **kw)
    np.testing.assert_array_equal(a.map, b.map)
    # float32 sums on two paths: a slack at the map's scale, far below its differences
    slack = 1e-6 * np.abs(c.map).max()
    assert np.all(a.map <= c.map + slack)
    assert not np.allclose(a.map, c.map)
    # the subset: 5 pixels evenly spread over the segment in raster order, whatever the seed
    region = list(zip(*np.nonzero(_ref_labels(net2d, square2d) == 1), strict=True))
    keep = np.unique(np.linspace(0, len(region) - 1, 5).round()).astype(int)
    masks = masks_np((16, 16), 4, 0.5, seed, 10)
    want = pixel_max_np(net2d, square2d[None], masks, 0.5, [region[i] for i in keep], 1)
    np.testing.assert_allclose(a.map, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", [RISE, PixelRISE, SegRISE])
def test_same_map_for_every_batch_size(method, net2d, square2d):
    maps = [
        method(net2d).explain(square2d, n_masks=N, grid=4, batch_size=bs, seed=9).map
        for bs in (1, 3, N)
    ]
    for m in maps[1:]:
        np.testing.assert_allclose(m, maps[0], rtol=1e-6, atol=1e-12)


def test_pixelrise_max_same_for_every_batch_size(net2d, square2d):
    maps = [
        PixelRISE(net2d)
        .explain(square2d, n_masks=N, grid=4, merge="max", batch_size=bs, seed=9)
        .map
        for bs in (1, 3, N)
    ]
    for m in maps[1:]:  # gains sit near 0: a tolerance at the map's scale
        np.testing.assert_allclose(m, maps[0], rtol=1e-5, atol=1e-6 * np.abs(maps[0]).max())


def test_seed_determines_map(net2d, square2d):
    seg = SegRISE(net2d)
    a = seg.explain(square2d, n_masks=N, grid=4, seed=11).map
    b = seg.explain(square2d, n_masks=N, grid=4, seed=11).map
    c = seg.explain(square2d, n_masks=N, grid=4, seed=12).map
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("method", [RISE, PixelRISE, SegRISE])
def test_forward_count_is_n_plus_one(method, net2d, square2d):
    spy = Spy(net2d)
    method(spy).explain(square2d, n_masks=23, grid=4, batch_size=5)
    assert spy.images == 24
    assert spy.batch_sizes == [1, 5, 5, 5, 5, 3]


def test_segrise_weights_important_region_more(net2d):
    img = np.zeros((24, 24), np.float32)
    img[6:14, 6:14] = 1.0
    expl = SegRISE(net2d).explain(img, n_masks=300, grid=6, seed=0)
    inside = expl.map[6:14, 6:14].mean()
    far = expl.map[18:, 18:].mean()
    assert inside > far + 0.05


def test_multiclass_target_and_all_foreground():
    class ThreeClass(torch.nn.Module):
        def forward(self, x):
            a = x[:, :1] - 0.5
            return torch.cat([-a.abs(), a, -a - 0.2], 1) * 6

    img = np.zeros((12, 12), np.float32)
    img[:, 6:] = 1.0
    model = ThreeClass().eval()
    ref = _ref_labels(model, img)
    assert set(np.unique(ref)) == {1, 2}
    all_fg = SegRISE(model, spatial_dims=2).explain(img, n_masks=20, grid=3, seed=0)
    only2 = SegRISE(model, spatial_dims=2).explain(img, n_masks=20, grid=3, seed=0, target=2)
    masks = masks_np((12, 12), 3, 0.5, 0, 20)
    for expl, classes in ((all_fg, [1, 2]), (only2, [2])):
        want, _ = rise_cov_np(
            model,
            img[None],
            masks,
            0.5,
            lambda o, c=classes: dice_np(o.argmax(0), ref, c),
            3,
            np.isin(ref, classes),
        )
        np.testing.assert_allclose(expl.map, want, rtol=1e-6)
    rise = RISE(model, spatial_dims=2).explain(img, n_masks=5, grid=3)
    assert rise.target == int(np.bincount(ref.ravel(), minlength=3)[1:].argmax()) + 1


def test_one_channel_sigmoid_model():
    class Sig(torch.nn.Module):
        def forward(self, x):
            return (x - 0.5) * 10

    img = np.zeros((10, 10), np.float32)
    img[2:7, 3:8] = 1
    expl = SegRISE(Sig().eval(), spatial_dims=2).explain(img, n_masks=30, grid=3, seed=0)
    masks = masks_np((10, 10), 3, 0.5, 0, 30)
    ref = img > 0.5
    want, _ = rise_cov_np(
        Sig(), img[None], masks, 0.5, lambda o: dice_np(o[0] > 0, ref, [True]), 3, ref
    )
    np.testing.assert_allclose(expl.map, want, rtol=1e-6)
    assert np.isfinite(expl.map).all()
    probs = SegRISE(
        lambda x: torch.sigmoid((x - 0.5) * 10), outputs="probabilities", spatial_dims=2
    ).explain(img, n_masks=30, grid=3, seed=0)
    np.testing.assert_allclose(probs.map, expl.map, rtol=1e-6)


def test_multichannel_2d_input():
    net = ThresholdNet(2, in_channels=2)
    img = np.zeros((2, 12, 12), np.float32)
    img[:, 3:9, 3:9] = 1.0
    expl = SegRISE(net).explain(img, n_masks=20, grid=3, seed=0)
    assert expl.map.shape == (12, 12)
    masks = masks_np((12, 12), 3, 0.5, 0, 20)
    ref = model_np(net, img).argmax(0)
    want, _ = rise_cov_np(
        net, img, masks, 0.5, lambda o: dice_np(o.argmax(0), ref, [1]), 3, ref == 1
    )
    np.testing.assert_allclose(expl.map, want, rtol=1e-6)


def test_given_reference_is_used(net2d, square2d):
    gt = np.zeros((16, 16), np.uint8)
    gt[4:10, 5:9] = 1  # only part of the predicted rectangle
    expl = SegRISE(net2d).explain(square2d, reference=gt, n_masks=N, grid=4, seed=0)
    masks = masks_np((16, 16), 4, 0.5, 0, N)
    want, _ = rise_cov_np(
        net2d, square2d[None], masks, 0.5, lambda o: dice_np(o.argmax(0), gt, [1]), 4, gt == 1
    )
    np.testing.assert_allclose(expl.map, want, rtol=1e-6)
    np.testing.assert_array_equal(expl.reference, gt)
    assert not np.array_equal(expl.prediction, gt)


def test_a_flat_map_says_why_it_has_no_reliability(square2d):
    class Constant(torch.nn.Module):
        def forward(self, x):
            return (
                torch.zeros(x.shape[0], 2, *x.shape[2:])
                + torch.tensor([0.0, 1.0])[None, :, None, None]
            )

    expl = SegRISE(Constant()).explain(square2d, n_masks=16, grid=4, seed=0)
    assert expl.reliability is None
    assert expl.reliability_text().startswith("no reliability: the map is flat")
    few = SegRISE(Constant()).explain(square2d, n_masks=3, grid=4, seed=0)
    assert few.reliability_text() == "reliability not yet known (needs at least 4 masks)"


def test_the_reliability_words_follow_the_figure_shown():
    from maskscope.explanation import describe_reliability

    assert describe_reliability(0.949, "SegRISE").startswith("reliability 0.95 (stable")
    assert describe_reliability(0.944, "SegRISE").startswith("reliability 0.94 (mostly stable")
