"""Crop mode: the map in the window equals the whole-volume run's; 0 outside; fewer voxels."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import RISE, ROI, SegRISE
from maskscope._engine.crop import ReceptiveFieldError

SHAPE = (20, 24, 22)


class Shapes(nn.Module):
    """Records the spatial shapes the model is called on."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shapes: list[tuple[int, ...]] = []
        self.eval()

    def forward(self, x):
        self.shapes.append(tuple(x.shape[2:]))
        return self.body(x)


def _fcn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv3d(4, 2, 3, padding=1)
    ).eval()


def _strided() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.Conv3d(4, 4, 3, padding=1),
        nn.Upsample(scale_factor=2),
        nn.Conv3d(4, 2, 1),
    ).eval()


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).random(SHAPE).astype(np.float32)


def _window(expl) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in expl.params["crop_window"])


# masks through the window differ from the full masks by float32 rounding (< 3e-7); the
# hard labels in the ROI are the same, so the maps differ by |w - w̄| · 3e-7 / p at most
TOL = 1e-6


@pytest.mark.parametrize("method", [SegRISE, RISE])
@pytest.mark.parametrize("crop", [True, 2, (3, 2, 4)])
def test_crop_equals_the_whole_volume_run_in_the_window(volume, method, crop):
    model = Shapes(_fcn())
    roi = ROI.from_box("6:12,8:14,5:11")
    kw = dict(roi=roi, n_masks=20, grid=4, batch_size=7)
    # pad_multiple=1: a window of exactly the box plus the margin (no alignment)
    got = method(model, pad_multiple=1).explain(volume, crop=crop, **kw)
    n_crop = len(model.shapes)
    full = method(model, pad_multiple=1).explain(volume, crop=False, **kw)
    win = _window(got)
    margin = (2, 2, 2) if crop is True else ((crop,) * 3 if isinstance(crop, int) else crop)
    box = [(6, 12), (8, 14), (5, 11)]
    assert win == tuple(slice(a - m, b + m) for (a, b), m in zip(box, margin, strict=True))
    assert got.params["crop_margin"] == list(margin)
    assert got.params["crop_margin_estimated"] is (crop is True)
    # the setting as given (a margin's tuple as a list: params are JSON-ready)
    assert got.params["crop"] == (list(crop) if isinstance(crop, tuple) else crop)
    assert full.params["crop"] is False and "crop_window" not in full.params
    np.testing.assert_allclose(got.map[win], full.map[win], rtol=0, atol=TOL)
    outside = np.ones(SHAPE, dtype=bool)
    outside[win] = False
    # outside the window: the mean weight, what the full map converges to far from the ROI
    w_bar = float(got.extras["outside_value"])
    assert (got.map[outside] == w_bar).all() and 0 < w_bar <= 1
    assert np.ptp(full.map[outside]) > 1e-3  # (the full run's masks' correlation and noise)
    np.testing.assert_array_equal(got.reference, full.reference)
    # the model saw only the window (the probe's calls come first when estimated)
    win_shape = tuple(s.stop - s.start for s in win)
    assert set(model.shapes[n_crop - 3 : n_crop]) == {win_shape}
    assert full.n_forward == 21
    if crop is True:
        assert got.n_forward == 21 and "crop_margin_difference" not in got.params
    else:  # a margin given is checked: the intact whole image, then the intact window
        assert got.n_forward == 23 and model.shapes[:2] == [SHAPE, win_shape]
        assert got.params["crop_margin_difference"] < 1e-6  # wide enough: no warning


def test_a_strided_model_needs_an_aligned_window(volume):
    model = _strided()
    roi = ROI.from_box("7:11,9:13,5:9")
    kw = dict(roi=roi, n_masks=16, grid=4, batch_size=8)
    got = SegRISE(model, pad_multiple=2).explain(volume, crop=True, **kw)
    full = SegRISE(model, pad_multiple=2).explain(volume, crop=False, **kw)
    win = _window(got)
    assert all(s.start % 2 == 0 and (s.stop - s.start) % 2 == 0 for s in win)
    np.testing.assert_allclose(got.map[win], full.map[win], rtol=0, atol=TOL)


def test_a_margin_below_the_receptive_field_changes_the_map(volume):
    model = _fcn()
    kw = dict(roi=ROI.from_box("6:12,8:14,5:11"), n_masks=20, grid=4, target=1)
    small = RISE(model).explain(volume, crop=0, **kw)
    full = RISE(model).explain(volume, crop=False, **kw)
    win = _window(small)
    assert np.abs(small.map[win] - full.map[win]).max() > 100 * TOL


def test_a_point_finds_its_component_on_the_whole_image_first(volume):
    model = Shapes(_fcn())
    pred = model.body(torch.from_numpy(volume)[None, None]).argmax(1)[0].numpy()
    point = tuple(int(v) for v in np.argwhere(pred == 1)[0])
    got = SegRISE(model).explain(volume, roi=ROI.from_point(point), crop=2, n_masks=6)
    assert model.shapes[0] == SHAPE  # the whole-image prediction, counted
    assert model.shapes.count(SHAPE) == 1  # and used again to check the margin given
    assert got.n_forward == 6 + 1 + 1 + 1  # masks, the window's prediction, whole, window
    assert got.params["crop_margin_difference"] < 1e-6


def test_crop_errors(volume):
    with pytest.raises(ValueError, match=re.escape("crop needs one roi")):
        SegRISE(_fcn()).explain(volume, crop=True, n_masks=4)
    with pytest.raises(ValueError, match=re.escape("crop must be 'auto', False, True (margin")):
        SegRISE(_fcn()).explain(volume, roi="0:2,0:2,0:2", crop=-1, n_masks=4)
    norm = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.InstanceNorm3d(2)).eval()
    big = np.pad(volume, ((0, 0), (0, 0), (0, 80)))  # an axis longer than the probe's 96
    with pytest.raises(ReceptiveFieldError, match=re.escape("(crop=<margin in voxels>)")):
        SegRISE(norm).explain(big, roi="0:2,0:2,0:2", crop=True, n_masks=4)


def test_a_2d_model_on_a_volume_crops_in_plane_and_keeps_the_roi_slices():
    from tests.conftest import ThresholdNet

    vol = np.zeros((6, 30, 32), np.float32)
    vol[:, 5:12, 5:12] = 1
    vol[:, 18:26, 18:28] = 1
    kw = dict(roi="1:4,17:27,17:29", n_masks=10, grid=4)
    got = SegRISE(ThresholdNet(2), pad_multiple=1).explain(vol, crop=True, **kw)
    full = SegRISE(ThresholdNet(2), pad_multiple=1).explain(vol, crop=False, **kw)
    win = _window(got)
    assert win == (slice(1, 4), slice(16, 28), slice(16, 30))  # the 3×3 box filter: radius 1
    assert got.slices == full.slices == (1, 2, 3)
    np.testing.assert_allclose(got.map[win], full.map[win], rtol=0, atol=TOL)
    assert (got.map[0] == 0).all() and (got.map[4:] == 0).all()  # slices not computed
    np.testing.assert_array_equal(got.map[2, :16], got.extras["outside_value"][2])


def test_without_pad_multiple_the_window_is_aligned_as_the_image(volume):
    """A pooling model: the window takes the powers of two that divide the image's sizes."""
    from maskscope.methods._crop import image_alignment

    model = _strided()
    kw = dict(roi=ROI.from_box("7:11,9:13,5:9"), n_masks=16, grid=4, batch_size=8)
    got = SegRISE(model).explain(volume, crop=True, **kw)
    full = SegRISE(model).explain(volume, crop=False, **kw)
    align = image_alignment(SHAPE)
    assert align == (4, 8, 2) and got.params["crop_align"] == list(align)
    win = _window(got)
    pairs = zip(win, align, strict=True)
    assert all(s.start % a == 0 and (s.stop - s.start) % a == 0 for s, a in pairs)
    assert any(s.stop - s.start < n for s, n in zip(win, SHAPE, strict=True))
    np.testing.assert_allclose(got.map[win], full.map[win], rtol=0, atol=TOL)


class _Needs64(nn.Module):
    """Concatenates the input with a 64× down- and up-sampled copy: sizes must divide 64."""

    def forward(self, x):
        up = nn.functional.avg_pool2d(x, 64, ceil_mode=True).repeat_interleave(64, -1)
        up = up.repeat_interleave(64, -2)
        return torch.cat([x, up], dim=1)[:, :2]


def test_a_margin_below_the_receptive_field_is_found_and_said(volume):
    """Given a margin of 1 for a receptive field of 2, the window's outputs in the ROI differ
    from the whole image's: a warning with the difference; the estimated margin needs none."""
    import warnings

    model = Shapes(_fcn())
    kw = dict(roi=ROI.from_box("6:12,8:14,5:11"), n_masks=8, grid=4)
    with pytest.warns(UserWarning, match=r"the crop margin 1 is too small for this model") as rec:
        got = SegRISE(model, pad_multiple=1).explain(volume, crop=1, **kw)
    difference = got.params["crop_margin_difference"]
    assert f"by up to {difference:.3g}" in str(rec[0].message) and "crop=True" in str(
        rec[0].message
    )
    win = _window(got)
    whole = torch.softmax(model.body(torch.from_numpy(volume)[None, None]).double(), 1)[0]
    part = torch.softmax(model.body(torch.from_numpy(volume[win])[None, None]).double(), 1)[0]
    inside = np.zeros(SHAPE, bool)
    inside[6:12, 8:14, 5:11] = True
    want = (whole[(slice(None), *win)] - part)[:, torch.from_numpy(inside[win])].abs().max()
    assert difference == pytest.approx(float(want), rel=1e-6) and difference > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimated = SegRISE(model, pad_multiple=1).explain(volume, crop=True, **kw)
        SegRISE(model, pad_multiple=1).explain(volume, crop=(2, 3, 2), **kw)
    assert "crop_margin_difference" not in estimated.params


def test_a_size_failure_on_the_window_names_the_crop():
    from maskscope._engine.failures import ModelError
    from maskscope.wording import for_cli, for_gui

    img = np.zeros((128, 128), np.float32)
    img[10:20, 10:20] = 1.0
    explainer = SegRISE(_Needs64().eval(), spatial_dims=2)
    explainer.explain(img, n_masks=2, grid=4)  # the whole image is fine
    with pytest.raises(ModelError) as err:
        explainer.explain(img, roi="10:20,10:20", crop=4, n_masks=2, grid=4)
    text = str(err.value)
    assert "Sizes of tensors must match" in text
    assert "the ROI's crop window of 32×32 voxels, aligned to 32,32" in text
    assert "--pad-multiple 64" in for_cli(text) and "--crop off" in for_cli(text)
    assert '"crop" = off: the whole image' in for_gui(text)


def test_a_cropped_run_records_the_normalisation_it_applied(volume):
    kw = dict(roi=ROI.from_box("6:12,8:14,5:11"), n_masks=4, grid=4, normalize="zscore")
    got = SegRISE(_fcn(), pad_multiple=1).explain(volume * 50 + 10, crop=2, **kw)
    full = SegRISE(_fcn(), pad_multiple=1).explain(volume * 50 + 10, crop=False, **kw)
    assert "crop_window" in got.params
    assert got.params["normalize"] == full.params["normalize"] == "zscore"
    np.testing.assert_allclose(got.image, full.image, rtol=0, atol=1e-6)  # normalised both
