"""``crop="auto"``, the default: one ROI crops the RISE family, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from maskscope import HDM, RISE, ROI, PixelRISE, SegRISE
from tests.roi.test_crop_runs import SHAPE, Shapes, _fcn

BOX = "6:12,8:14,5:11"
KW = dict(n_masks=12, grid=4, batch_size=5)


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(1).random(SHAPE).astype(np.float32)


@pytest.mark.parametrize("method", [SegRISE, RISE, PixelRISE])
def test_one_roi_crops_as_crop_true_does(volume, method):
    model = Shapes(_fcn())
    auto = method(model, pad_multiple=1).explain(volume, roi=BOX, **KW)  # a window: no align
    n_auto = len(model.shapes)
    explicit = method(_fcn(), pad_multiple=1).explain(volume, roi=BOX, crop=True, **KW)
    np.testing.assert_array_equal(auto.map, explicit.map)
    assert auto.params["crop"] == "auto" and auto.params["crop_margin_estimated"] is True
    assert (
        auto.params["crop_window"] == explicit.params["crop_window"] == [[4, 14], [6, 16], [3, 13]]
    )
    assert "crop_skipped" not in auto.params
    # the runs saw the window only, after the receptive field's probe
    assert set(model.shapes[n_auto - KW["n_masks"] // KW["batch_size"] :]) == {(10, 10, 10)}


def test_iter_explain_streams_the_same_cropped_snapshots(volume):
    snaps = list(SegRISE(_fcn()).iter_explain(volume, roi=BOX, **KW))
    final = SegRISE(_fcn()).explain(volume, roi=BOX, **KW)
    assert len(snaps) == 3 and snaps[-1].done and snaps[0].n_done == 5
    assert all(s.map.shape == SHAPE and s.params["crop"] == "auto" for s in snaps)
    np.testing.assert_array_equal(snaps[-1].map, final.map)


def test_no_receptive_field_runs_on_the_whole_image_and_says_why(volume):
    norm = Shapes(nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.InstanceNorm3d(2)).eval())
    big = np.pad(volume, ((0, 0), (0, 0), (0, 80)))  # an axis longer than the probe's 96
    got = SegRISE(norm).explain(big, roi=BOX, target=1, **KW)
    want = SegRISE(norm.body).explain(big, roi=BOX, target=1, crop=False, **KW)
    np.testing.assert_array_equal(got.map, want.map)
    assert got.params["crop"] == "auto" and "crop_window" not in got.params
    assert got.params["crop_skipped"].startswith("the receptive field could not be estimated: ")
    assert "instance or layer norm" in got.params["crop_skipped"]
    assert norm.shapes[-1] == big.shape
    # on an image no longer than the probe, the whole image is the probe: the outputs reach
    # its edge on every axis, the window would span them all, and the run says so
    small = SegRISE(norm).explain(volume, roi=BOX, target=1, **KW)
    assert small.params["crop_skipped"] == (
        "the ROI's box plus the receptive field covers the whole image"
    )


def test_an_axis_shorter_than_the_receptive_field_is_spanned_and_the_others_cropped():
    """A 12×60 image and a radius of 8: the window spans axis 0 and crops axis 1."""
    from tests.roi.test_crop_parts import _conv_net

    rng = np.random.default_rng(1)
    img = rng.random((12, 60)).astype(np.float32)
    net = _conv_net((9, 9), dims=2).eval()
    kw = dict(roi="5:7,28:32", n_masks=12, grid=3, seed=0, batch_size=4)
    got = SegRISE(net, pad_multiple=1).explain(img, crop=True, **kw)
    assert got.params["crop_window"] == [[0, 12], [20, 40]]  # 28 - 8, 32 + 8
    assert got.params["crop_margin"] == [12, 8]
    full = SegRISE(net, pad_multiple=1).explain(img, crop=False, **kw)
    np.testing.assert_allclose(got.map[:, 20:40], full.map[:, 20:40], rtol=0, atol=1e-6)


def test_a_window_covering_the_image_runs_on_the_whole_image(volume):
    roi = "1:19,1:23,1:21"  # grown by the radius 2: the whole image
    got = SegRISE(_fcn()).explain(volume, roi=roi, **KW)
    want = SegRISE(_fcn()).explain(volume, roi=roi, crop=False, **KW)
    np.testing.assert_array_equal(got.map, want.map)
    assert got.params["crop_skipped"] == (
        "the ROI's box plus the receptive field covers the whole image"
    )


@pytest.mark.parametrize(
    ("method", "kwargs", "why"),
    [  # HDM: its centres would move with the window; several ROIs: one run for all
        (HDM, dict(roi=BOX, diameter=4, stride=4), "HDM's map in a crop window is not"),
        (SegRISE, dict(roi=[BOX, "0:4,0:4,0:4"], **KW), "several ROIs"),
        (SegRISE, dict(roi=BOX, targets=[1], **KW), "targets="),
        (RISE, dict(roi=BOX, per_channel=True, **KW), "per_channel=True"),
    ],
)
def test_auto_leaves_the_other_runs_on_the_whole_image(volume, method, kwargs, why):
    model = Shapes(_fcn())
    got = method(model).explain(volume, **kwargs)
    assert set(model.shapes) == {SHAPE}  # no probe, no window
    assert got.params["crop"] == "auto" and "crop_window" not in got.params
    assert got.params["crop_skipped"].startswith(why)
    want = method(_fcn()).explain(volume, crop=False, **kwargs)
    np.testing.assert_array_equal(got.map, want.map)


def test_auto_crop_puts_only_the_estimators_mean_outside_the_window(volume):
    roi = ROI.from_box(BOX)
    auto = RISE(_fcn()).explain(volume, roi=roi, target=1, **KW)
    whole = RISE(_fcn()).explain(volume, roi=roi, target=1, crop=False, **KW)
    inside = np.zeros(SHAPE, bool)
    inside[tuple(slice(a, b) for a, b in auto.params["crop_window"])] = True
    # the whole run's map out there is noise around the mean weight; the cropped one is it
    assert (auto.map[~inside] == auto.extras["outside_value"]).all()
    assert np.ptp(whole.map[~inside]) > 1e-3
    np.testing.assert_allclose(auto.map[inside], whole.map[inside], rtol=0, atol=1e-6)


def test_a_split_run_with_a_roi_records_that_it_explains_the_whole_image(volume):
    from maskscope.methods._crop import SPLIT_RUNS_DO_NOT_CROP

    for crop in ("auto", True, (2, 2, 2)):
        run = SegRISE(_fcn())._prepare(volume, roi=BOX, crop=crop, **KW)
        want = list(crop) if isinstance(crop, tuple) else crop
        assert run.record.params["crop"] == want
        assert run.record.params["crop_skipped"] == SPLIT_RUNS_DO_NOT_CROP


@pytest.mark.parametrize("crop", [True, 2])
def test_a_crop_asked_for_that_would_cover_the_image_runs_on_it_and_says_so(volume, crop):
    roi = "1:19,1:23,1:21"  # grown by 2: the whole image
    got = SegRISE(_fcn()).explain(volume, roi=roi, crop=crop, **KW)
    want = SegRISE(_fcn()).explain(volume, roi=roi, crop=False, **KW)
    np.testing.assert_array_equal(got.map, want.map)
    assert "crop_window" not in got.params and got.params["crop"] == crop
    what = "receptive field" if crop is True else "margin"
    assert got.params["crop_skipped"] == f"the ROI's box plus the {what} covers the whole image"


def test_a_point_roi_not_cropped_counts_its_whole_image_prediction():
    from maskscope import ROI
    from tests.conftest import ThresholdNet

    img = np.zeros((16, 16), np.float32)
    img[4:10, 5:12] = 1.0
    got = SegRISE(ThresholdNet(2)).explain(img, roi=ROI.from_point((6, 8)), n_masks=8, grid=4)
    assert got.params["crop_skipped"].endswith("covers the whole image")
    assert got.n_forward == 8 + 1 + 1  # the masks, the run's own prediction, the point's
