"""Explaining a region of interest: scores on the ROI, against slow reference code."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from maskscope import HDM, RISE, ROI, PixelRISE, SegRISE, component_at
from tests.conftest import Spy, ThresholdNet, TinyClassifier
from tests.methods.reference import dice_np, masks_np, model_np, rise_cov_np, softmax

N, GRID, P = 24, 3, 0.5


@pytest.fixture
def two_squares() -> np.ndarray:
    """14×16 image with two bright squares: two components of the prediction."""
    img = np.zeros((14, 16), np.float32)
    img[2:6, 2:6] = 1.0
    img[8:12, 9:14] = 0.9
    return img


def _roi_a() -> np.ndarray:
    roi = np.zeros((14, 16), dtype=bool)
    roi[1:7, 1:8] = True
    return roi


def _labels(out: np.ndarray) -> np.ndarray:
    return out.argmax(0)


@pytest.mark.parametrize("batch_size", [1, 5, N])
def test_segrise_dice_is_computed_inside_the_roi(two_squares, batch_size):
    model = ThresholdNet(2)
    roi = _roi_a()
    ref = _labels(model_np(model, two_squares[None])) * roi
    masks = masks_np(two_squares.shape, GRID, P, 0, N)

    def weight(out):  # Dice of the prediction inside the ROI against the reference inside it
        return dice_np(_labels(out) * roi, ref, [1])

    # the covariate: the share kept of the reference inside the ROI
    want, _ = rise_cov_np(model, two_squares[None], masks, P, weight, GRID, ref == 1)
    kw = dict(n_masks=N, grid=GRID, batch_size=batch_size, crop=False)  # the whole-image run
    got = SegRISE(model).explain(two_squares, roi=roi, **kw)
    np.testing.assert_allclose(got.map, want, rtol=1e-6, atol=1e-9)  # float32 masks
    np.testing.assert_array_equal(got.reference, ref)
    assert got.params["roi"] == f"mask of {roi.sum()} voxels"


def test_rise_probability_is_the_mean_over_the_reference_inside_the_roi(two_squares):
    model = ThresholdNet(2)
    ref = _labels(model_np(model, two_squares[None]))
    box = ROI.from_box("7:13,8:15")  # the second square
    region = (ref == 1) & box.resolve(two_squares.shape)
    masks = masks_np(two_squares.shape, GRID, P, 0, N)
    want, _ = rise_cov_np(
        model, two_squares[None], masks, P, lambda o: softmax(o)[1][region].mean(), GRID, region
    )
    got = RISE(model).explain(two_squares, roi=box, n_masks=N, grid=GRID, crop=False)
    np.testing.assert_allclose(got.map, want, rtol=1e-6, atol=1e-9)
    pixel = PixelRISE(model).explain(two_squares, roi="7:13,8:15", n_masks=N, grid=GRID, crop=False)
    np.testing.assert_allclose(pixel.map, want, rtol=1e-6, atol=1e-9)


class _SeesOnly(torch.nn.Module):
    """A model whose outputs outside ``roi`` are a sure background (the ROI's meaning)."""

    def __init__(self, model, roi: np.ndarray) -> None:
        super().__init__()
        self.model, self.outside = model, torch.from_numpy(~roi)
        self.eval()

    def forward(self, x):
        out = self.model(x).clone()
        out[:, 0, self.outside] = 50.0
        out[:, 1, self.outside] = -50.0
        return out


def test_hdm_in_an_roi_is_hdm_of_a_model_that_sees_only_the_roi(two_squares):
    model = ThresholdNet(2)
    point = ROI.from_point((3, 3), grow=1)
    prediction = _labels(model_np(model, two_squares[None]))
    roi = point.resolve(two_squares.shape, prediction)
    kw = dict(diameter=3, stride=2)
    got = HDM(model).explain(two_squares, roi=point, **kw)
    want = HDM(_SeesOnly(model, roi)).explain(two_squares, **kw)
    np.testing.assert_array_equal(got.map, want.map)
    assert got.extras["baseline"] == want.extras["baseline"]
    assert got.reference.sum() == (prediction.astype(bool) & roi).sum() < prediction.sum()


def test_model_calls_are_one_run(two_squares):
    spy = Spy(ThresholdNet(2))
    roi = ROI.from_point((10, 11))
    got = SegRISE(spy).explain(two_squares, roi=roi, n_masks=N, grid=GRID, crop=False)
    assert spy.images == N + 1 == got.n_forward


def test_point_selects_its_lesion(two_squares):
    model = ThresholdNet(2)
    got = SegRISE(model).explain(two_squares, roi=ROI.from_point((10, 11)), n_masks=8, grid=GRID)
    prediction = _labels(model_np(model, two_squares[None]))
    np.testing.assert_array_equal(got.reference, component_at(prediction, (10, 11)))
    assert got.reference.sum() < prediction.sum()
    assert got.params["roi"] == "component at (10, 11)"


@pytest.mark.parametrize(
    ("roi", "message"),
    [
        (np.zeros((14, 16), bool), "the ROI (mask of 0 voxels) has no voxel: nothing to explain"),
        ("0:4,20:30", "the ROI box 0:4,20:30 must lie inside the image of spatial shape (14, 16)"),
        (np.ones((16, 14), bool), "the ROI mask must have the image's spatial shape (14, 16), got"),
        ("0:1,0:1", "the reference segmentation has no voxel of class 1 inside the ROI"),
    ],
)
def test_bad_rois_fail_before_or_at_the_first_step(two_squares, roi, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SegRISE(ThresholdNet(2)).explain(two_squares, roi=roi, n_masks=4, target=1)


def test_a_point_on_the_background_is_refused(two_squares):
    with pytest.raises(ValueError, match=re.escape("the point (0, 0) is on the background")):
        SegRISE(ThresholdNet(2)).explain(two_squares, roi=ROI.from_point((0, 0)), n_masks=4)
    with pytest.raises(ValueError, match=re.escape("the point (0, 40) lies outside the image")):
        SegRISE(ThresholdNet(2)).explain(two_squares, roi=ROI.from_point((0, 40)), n_masks=4)


def test_background_target_and_classifiers_are_refused(two_squares):
    with pytest.raises(ValueError, match=re.escape("target=0 (the background) cannot be")):
        SegRISE(ThresholdNet(2)).explain(two_squares, roi="0:7,0:8", target=0, n_masks=4)
    with pytest.raises(ValueError, match=re.escape("an ROI needs a segmentation model")):
        RISE(TinyClassifier()).explain(two_squares[:, :16], roi="0:4,0:4", n_masks=4)


def test_2d_model_on_a_volume_uses_each_slice_of_the_roi(two_squares):
    vol = np.stack([two_squares, two_squares[::-1].copy(), two_squares])
    roi = np.zeros(vol.shape, dtype=bool)
    roi[0, 1:7, 1:8] = True
    roi[2, 7:13, 8:15] = True
    got = SegRISE(ThresholdNet(2)).explain(vol, roi=roi, n_masks=8, grid=GRID, crop=False)
    assert got.slices == (0, 2)  # slice 1 has no ROI voxel: skipped
    for z in (0, 2):
        one = SegRISE(ThresholdNet(2)).explain(vol[z], roi=roi[z], n_masks=8, grid=GRID, crop=False)
        # each run measures its own batch size: the same masks and scores, summed in
        # chunks that may differ (equal up to float32 rounding)
        scale = np.abs(one.map).max()
        np.testing.assert_allclose(got.map[z], one.map, rtol=1e-6, atol=1e-6 * scale)
