"""Several targets from one run's forwards; one map per input channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import HDM, RISE, ROI, PixelRISE, SegRISE
from maskscope._engine.masks import RiseMasks
from maskscope._engine.targets import ChannelMasks
from tests.conftest import OneChannel, Spy
from tests.methods.reference import estimate_np, region_cov_np, softmax

N = 24


class Bands(nn.Module):
    """Four classes by the local mean of the image: near 0, 1/3, 2/3 and 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 9)
        self.register_buffer("centres", torch.tensor([0.0, 0.31, 0.67, 0.97]).reshape(1, 4, 1, 1))
        self.eval()

    def forward(self, x):
        return -((self.conv(x) - self.centres) ** 2) * 40.0


@pytest.fixture
def bands_image() -> np.ndarray:
    img = np.zeros((16, 18), np.float32)
    img[2:7, 2:7] = 0.33
    img[9:14, 3:9] = 0.66
    img[4:12, 11:16] = 1.0
    return img


@pytest.mark.parametrize(("method", "kw"), [(SegRISE, {}), (RISE, {}), (PixelRISE, {}), (HDM, {})])
def test_three_classes_cost_one_run_and_equal_single_target_runs(bands_image, method, kw):
    spy = Spy(Bands())
    params = {"diameter": 4, "stride": 3} if method is HDM else {"n_masks": N, "grid": 3}
    got = method(spy).explain(bands_image, targets=[1, 2, 3], batch_size=5, **params)
    assert spy.images == got.n_forward == got.n_total + 1
    assert got.params["targets"] == [1, 2, 3]
    for t in (1, 2, 3):
        single = method(Bands()).explain(bands_image, target=t, batch_size=5, **params)
        # one (b, 3) score product instead of three (b,) ones: the CPU's matrix kernel
        # may round the sums differently, so equal to float rounding, not bit for bit
        np.testing.assert_allclose(got.extras[f"target_{t}"], single.map, rtol=1e-7, atol=1e-9)
        assert not np.allclose(single.map, got.extras[f"target_{1 + t % 3}"], rtol=1e-3)
    np.testing.assert_array_equal(got.map, got.extras["target_1"])


def test_pixelrise_max_of_several_targets_finishes_every_targets_map():
    # more pixels than 1 MB holds: each map is completed after the model pass (its
    # snapshots show a subset's max); every target's map must get that pass too
    img = np.zeros((96, 96), np.float32)
    img[10:40, 10:40], img[50:80, 10:40], img[20:70, 50:90] = 0.33, 0.66, 1.0
    kw = {"batch_size": 5, "n_masks": 40, "grid": 3, "merge": "max", "max_memory_mb": 1}
    got = PixelRISE(Bands()).explain(img, targets=[1, 2, 3], **kw)
    for t in (1, 2, 3):
        single = PixelRISE(Bands()).explain(img, target=t, **kw)
        np.testing.assert_allclose(got.extras[f"target_{t}"], single.map, rtol=1e-6, atol=1e-9)


def test_several_rois_from_one_run(bands_image):
    spy = Spy(Bands())
    rois = [ROI.from_box("1:8,1:8"), "8:15,2:10"]
    kw = {"n_masks": N, "grid": 3, "batch_size": 8}
    got = SegRISE(spy).explain(bands_image, roi=rois, **kw)
    assert spy.images == N + 1
    for i, roi in enumerate(rois):
        single = SegRISE(Bands()).explain(bands_image, roi=roi, crop=False, **kw)
        np.testing.assert_allclose(got.extras[f"target_{i}"], single.map, rtol=1e-7, atol=1e-9)
    assert got.params["roi"] == ["box 1:8,1:8", "box 8:15,2:10"]


def test_several_targets_errors(bands_image):
    with pytest.raises(TypeError, match="targets must be a non-empty list of class indices"):
        SegRISE(Bands()).explain(bands_image, targets=[], n_masks=4)
    with pytest.raises(ValueError, match="several ROIs or several targets, not both"):
        SegRISE(Bands()).explain(bands_image, roi=["0:4,0:4", "4:8,4:8"], targets=[1, 2])
    with pytest.raises(ValueError, match=r"give target= \(one class\) or targets= \(several\)"):
        SegRISE(Bands()).explain(bands_image, target=1, targets=[1, 2], n_masks=4)
    with pytest.raises(ValueError, match=r"targets names class 2 more than once, in \[2, 1, 2\]"):
        SegRISE(Bands()).explain(bands_image, targets=[2, 1, 2], n_masks=4)
    with pytest.raises(
        ValueError, match=r"targets must be class indices in \[0, 3\] .* 4 output .* got 4, 7"
    ):
        SegRISE(Bands()).explain(bands_image, targets=[1, 4, 7], n_masks=4)


@pytest.mark.parametrize("signal", [0, 2])
def test_per_channel_maps_rank_the_signal_channel_first(signal):
    rng = np.random.default_rng(3)
    img = rng.random((4, 20, 20)).astype(np.float32) * 0.3
    img[:, 6:14, 5:13] += 0.6  # a square in every channel; only one is read
    got = RISE(OneChannel(signal)).explain(img, per_channel=True, n_masks=200, grid=4)
    importance = got.extras["channel_importance"]
    assert importance.shape == (4,) and int(np.argmax(importance)) == signal
    assert importance[signal] > 2 * np.abs(np.delete(importance, signal)).max()
    np.testing.assert_allclose(got.map, np.mean([got.extras[f"channel_{c}"] for c in range(4)], 0))


def test_per_channel_map_against_a_slow_reference():
    rng = np.random.default_rng(4)
    img = rng.random((4, 10, 12)).astype(np.float32)
    model = OneChannel(1)
    got = RISE(model).explain(img, per_channel=True, n_masks=12, grid=3, batch_size=5)
    streams = ChannelMasks(
        lambda s: RiseMasks((10, 12), 3, 0.5, s, dtype=torch.float64), 4, 0
    ).streams
    masks = np.stack([m(0, 12)[:, 0].numpy() for m in streams], axis=1)  # (N, C, H, W)
    ref = None
    weights = []
    for m in masks:
        with torch.no_grad():
            out = model(torch.from_numpy((img * m)[None].astype(np.float32)))[0].double().numpy()
        if ref is None:
            with torch.no_grad():
                out0 = model(torch.from_numpy(img[None]))[0].numpy()
            ref = out0.argmax(0) == 1
        weights.append(softmax(out)[1][ref].mean())
    cov = region_cov_np((10, 12), 3, 0.5, ref)  # each channel's masks: the same grid
    for c in range(4):
        want, _ = estimate_np(masks[:, c], np.asarray(weights), 0.5, "covariate", ref, cov)
        np.testing.assert_allclose(got.extras[f"channel_{c}"], want, rtol=1e-5, atol=1e-7)


def test_per_channel_is_for_the_rise_family():
    img = np.zeros((4, 8, 8), np.float32)
    img[:, 2:6, 2:6] = 1
    with pytest.raises(ValueError, match="per_channel applies to RISE, SegRISE and PixelRISE"):
        PixelRISE(OneChannel(0)).explain(img, per_channel=True, merge="max", n_masks=4)


def test_hdm_occludes_one_channel_at_a_time():
    from maskscope import explain_channels

    img = np.zeros((4, 16, 16), np.float32)
    img[:, 4:12, 5:11] = 1.0
    spy = Spy(OneChannel(3))
    got = explain_channels(HDM(spy), img, diameter=4, stride=3)
    forwards = 0
    for c in range(4):
        single = HDM(OneChannel(3)).explain(img, channel=c, diameter=4, stride=3)
        np.testing.assert_array_equal(got.extras[f"channel_{c}"], single.map)
        forwards += single.n_forward
    assert int(np.argmax(got.extras["channel_importance"])) == 3
    assert spy.images == got.n_forward == forwards
    with pytest.raises(ValueError, match="HDM occludes one channel per run with channel=c"):
        HDM(OneChannel(3)).explain(img, per_channel=True)


def test_explain_channels_of_the_rise_family_is_one_run():
    from maskscope import explain_channels

    rng = np.random.default_rng(3)
    img = rng.random((4, 12, 12)).astype(np.float32)
    kw = {"n_masks": 16, "grid": 3, "batch_size": 8}  # the same chunks: equal bit for bit
    got = explain_channels(RISE(OneChannel(1)), img, **kw)
    want = RISE(OneChannel(1)).explain(img, per_channel=True, **kw)
    key = "channel_importance"
    np.testing.assert_array_equal(got.extras[key], want.extras[key])
