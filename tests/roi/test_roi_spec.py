"""ROI forms, helpers and their errors, against slow reference code."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from maskscope.roi import (
    ROI,
    as_roi,
    bounding_box,
    component_at,
    inner_border,
    outer_border,
    parse_box,
    restrict_outputs,
)


def _slow_component(labels: np.ndarray, point: tuple[int, ...]) -> np.ndarray:
    """Flood fill over face neighbours, one voxel at a time."""
    value = labels[point]
    out = np.zeros(labels.shape, dtype=bool)
    stack = [point]
    while stack:
        p = stack.pop()
        if out[p] or labels[p] != value:
            continue
        out[p] = True
        for ax, d in itertools.product(range(labels.ndim), (-1, 1)):
            q = list(p)
            q[ax] += d
            if 0 <= q[ax] < labels.shape[ax]:
                stack.append(tuple(q))
    return out


def _slow_dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for p in zip(*np.nonzero(mask), strict=True):
        for ax, d in itertools.product(range(mask.ndim), (-1, 1)):
            q = list(p)
            q[ax] += d
            if 0 <= q[ax] < mask.shape[ax]:
                out[tuple(q)] = True
    return out


@pytest.fixture
def two_lesions() -> np.ndarray:
    labels = np.zeros((6, 9, 10), dtype=np.int32)
    labels[1:3, 1:4, 1:4] = 1
    labels[3:5, 5:8, 6:9] = 1
    labels[2, 2, 8] = 2
    return labels


def test_component_at_matches_flood_fill(two_lesions):
    rng = np.random.default_rng(0)
    labels = (rng.random((5, 7, 8)) < 0.45).astype(np.int32)
    for point in zip(*np.nonzero(labels), strict=True):
        np.testing.assert_array_equal(component_at(labels, point), _slow_component(labels, point))
    lesion = component_at(two_lesions, (1, 2, 2))
    assert lesion.sum() == 2 * 3 * 3 and not lesion[3:5, 5:8, 6:9].any()


def test_component_connectivity_joins_corners():
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[0, 0] = labels[1, 1] = 1
    assert component_at(labels, (0, 0)).sum() == 1
    assert component_at(labels, (0, 0), connectivity=2).sum() == 2


def test_borders_match_slow_reference(two_lesions):
    mask = two_lesions > 0
    np.testing.assert_array_equal(outer_border(mask), _slow_dilate(mask) & ~mask)
    padded = np.pad(mask, 1)  # the image's edge counts as outside
    eroded = ~_slow_dilate(~padded)[1:-1, 1:-1, 1:-1]
    np.testing.assert_array_equal(inner_border(mask), mask & ~eroded)
    np.testing.assert_array_equal(outer_border(mask, 2), _slow_dilate(_slow_dilate(mask)) & ~mask)


def test_each_form_resolves(two_lesions):
    spatial = two_lesions.shape
    m = np.zeros(spatial, dtype=bool)
    m[0, 0, 0] = True
    np.testing.assert_array_equal(ROI.from_mask(m).resolve(spatial), m)
    np.testing.assert_array_equal(ROI.from_mask(m.astype(np.uint8)).resolve(spatial), m)
    box = ROI.from_box("1:3,2:5,0:10").resolve(spatial)
    ref = np.zeros(spatial, dtype=bool)
    ref[1:3, 2:5, 0:10] = True
    np.testing.assert_array_equal(box, ref)
    np.testing.assert_array_equal(ROI.from_box(((1, 3), (2, 5), (0, 10))).resolve(spatial), ref)
    np.testing.assert_array_equal(ROI.from_label(two_lesions, 2).resolve(spatial), two_lesions == 2)
    point = ROI.from_point((4, 6, 7)).resolve(spatial, prediction=two_lesions)
    np.testing.assert_array_equal(point, _slow_component(two_lesions, (4, 6, 7)))
    grown = ROI.from_point((4, 6, 7), two_lesions, grow=1).resolve(spatial)
    np.testing.assert_array_equal(grown, _slow_dilate(point))


def test_as_roi_accepts_each_form():
    assert as_roi(None) is None
    assert as_roi("0:2,0:2").kind == "box"
    assert as_roi((slice(0, 2), slice(1, 3))).kind == "box"
    assert as_roi(np.ones((2, 2), dtype=bool)).kind == "mask"
    assert as_roi(torch.ones(2, 2, dtype=torch.bool)).kind == "mask"
    with pytest.raises(TypeError, match="roi must be an ROI, a box"):
        as_roi(3.5)


def test_bounding_box_and_parse_box():
    m = np.zeros((5, 6), dtype=bool)
    m[1, 4] = m[3, 2] = True
    assert bounding_box(m) == (slice(1, 4), slice(2, 5))
    assert parse_box(" 1:4 , 2:5") == (slice(1, 4), slice(2, 5))
    assert parse_box("3:,:2, : ") == (slice(3, None), slice(None, 2), slice(None, None))


def test_open_ended_box_runs_to_the_edges():
    roi = ROI.from_box("3:,:2,4:6")
    assert roi.describe() == "box 3:,:2,4:6"
    want = np.zeros((6, 9, 10), bool)
    want[3:, :2, 4:6] = True
    np.testing.assert_array_equal(roi.resolve((6, 9, 10)), want)
    assert ROI.from_box((slice(None, 4), (1, 3))).resolve((5, 5)).sum() == 8
    with pytest.raises(ValueError, match=r"must lie inside the image .* \(6, 9, 10\)"):
        ROI.from_box("7:,:,:").resolve((6, 9, 10))
    with pytest.raises(ValueError, match=r"one start:stop range .* got '1-4,2:5'"):
        parse_box("1-4,2:5")


@pytest.mark.parametrize(
    ("roi", "message"),
    [
        (ROI.from_mask(np.zeros((6, 9, 10), bool)), "the ROI (mask of 0 voxels) has no voxel"),
        (ROI.from_mask(np.ones((6, 9), bool)), "spatial shape (6, 9, 10), got (6, 9)"),
        (ROI.from_box("0:2,0:2,8:12"), "must lie inside the image of spatial shape (6, 9, 10)"),
        (ROI.from_box("7:9,0:2,0:2"), "must lie inside the image"),
        (ROI.from_box("2:2,0:2,0:2"), "0 <= start < stop <= size"),
        (ROI.from_box("0:2,0:2"), "one range per spatial axis of shape (6, 9, 10) (3), got 2"),
        (ROI.from_label(np.zeros((6, 9, 10)), 3), "label 3 does not occur in the ROI label"),
        (ROI.from_point((0, 0, 0)), "the point (0, 0, 0) is on the background (label 0)"),
        (ROI.from_point((6, 0, 0)), "the point (6, 0, 0) lies outside the image"),
        (ROI.from_point((1, 1)), "the point needs 3 coordinates"),
    ],
)
def test_clear_errors(two_lesions, roi, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        roi.resolve(two_lesions.shape, prediction=two_lesions)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"must be boolean \(or hold only 0 and 1\)"):
        ROI.from_mask(np.full((2, 2), 2))
    with pytest.raises(ValueError, match="grow must be an int >= 0"):
        ROI.from_box("0:1,0:1", grow=-1)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_restricted_outputs_are_sure_background(k, kind):
    from maskscope._engine.scores import probabilities, segmentation

    out = torch.randn(2, k, 4, 5)
    if kind == "probabilities":
        out = torch.sigmoid(out) if k == 1 else torch.softmax(out, 1)
    outside = torch.zeros(4, 5, dtype=torch.bool)
    outside[1:3] = True
    got = restrict_outputs(out, outside, kind)
    torch.testing.assert_close(got[:, :, ~outside], out[:, :, ~outside], rtol=0, atol=0)
    assert (segmentation(got, kind)[:, outside] == 0).all()
    p = probabilities(got, kind)[:, :, outside]
    background = 1 - p[:, 0] if k == 1 else p[:, 0]
    assert (background == 1).all()


def test_reversed_axes_selects_the_transposed_region(two_lesions):
    spatial = two_lesions.shape
    flipped = tuple(reversed(spatial))
    for roi in (
        ROI.from_box("1:3,2:5,0:7"),
        ROI.from_mask(two_lesions == 2),
        ROI.from_label(two_lesions, 1, grow=1),
        ROI.from_point((4, 6, 7), two_lesions),
    ):
        want = roi.resolve(spatial).T
        np.testing.assert_array_equal(roi.reversed_axes().resolve(flipped), want)
