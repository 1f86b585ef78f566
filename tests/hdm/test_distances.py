"""Distances: exact Hausdorff / HD95 against scipy and brute force, empty cases, spacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import directed_hausdorff

from maskscope._engine.distances import diagonal, make_distance, surface


def disk(shape, centre, r):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def points(mask, spacing):
    return np.argwhere(mask) * np.asarray(spacing)


def scipy_hd(a, b, spacing=(1.0, 1.0)):
    pa, pb = points(a, spacing), points(b, spacing)
    return max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])


def brute_hd(a, b, spacing, pct=None):
    pa, pb = points(a, spacing), points(b, spacing)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    ab, ba = d.min(1), d.min(0)
    if pct is None:
        return max(ab.max(), ba.max())
    return max(np.percentile(ab, pct), np.percentile(ba, pct))


def hd(pred, ref, spacing=(1.0, 1.0), name="hausdorff"):
    fn = make_distance(name, torch.from_numpy(ref), spacing)
    return fn(torch.from_numpy(np.asarray(pred))[None]).item()


@pytest.mark.parametrize("k", [1, 4, 15])
def test_disk_shifted_by_k_pixels_is_k(k):
    ref = disk((64, 64), (30, 20), 8)
    pred = disk((64, 64), (30, 20 + k), 8)
    assert hd(pred, ref) == pytest.approx(k)


def test_one_stray_pixel_at_distance_r():
    ref = disk((50, 50), (20, 20), 6)
    pred = ref.copy()
    pred[20, 20 + 6 + 9] = True  # 9 px beyond the disk's edge
    assert hd(pred, ref) == pytest.approx(9.0)
    # symmetric: a reference pixel far from the prediction counts too
    assert hd(ref, pred) == pytest.approx(9.0)


def test_anisotropic_spacing_is_physical():
    ref = np.zeros((20, 20), bool)
    ref[5:8, 5:8] = True
    pred = np.zeros((20, 20), bool)
    pred[5:8, 5:8] = True
    pred[5 + 4, 6] = True  # 4 rows below the block's last row... 2 rows from it
    spacing = (2.5, 1.0)
    assert hd(pred, ref, spacing) == pytest.approx(2 * 2.5)
    assert hd(pred, ref, spacing) == pytest.approx(scipy_hd(pred, ref, spacing))


@pytest.mark.parametrize("seed", range(6))
def test_random_shapes_match_scipy_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    ref = rng.random((24, 31)) > 0.93
    ref[3, 4] = True
    pred = rng.random((24, 31)) > 0.9
    spacing = (1.0, 1.0) if seed % 2 else (1.7, 0.6)
    want = scipy_hd(pred, ref, spacing)
    assert hd(pred, ref, spacing) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(brute_hd(pred, ref, spacing))
    got95 = hd(pred, ref, spacing, "hd95")
    assert got95 == pytest.approx(brute_hd(pred, ref, spacing, 95), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_3d_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    ref = rng.random((7, 9, 8)) > 0.9
    pred = rng.random((7, 9, 8)) > 0.85
    spacing = (2.0, 1.0, 0.5)
    assert hd(pred, ref, spacing) == pytest.approx(brute_hd(pred, ref, spacing), rel=1e-12)
    assert hd(pred, ref, spacing, "hd95") == pytest.approx(
        brute_hd(pred, ref, spacing, 95), rel=1e-12
    )


def test_batched_equals_one_by_one():
    rng = np.random.default_rng(5)
    ref = torch.from_numpy(rng.random((20, 20)) > 0.8)
    preds = torch.from_numpy(rng.random((6, 20, 20)) > 0.7)
    fn = make_distance("hausdorff", ref, (1.0, 1.0))
    batched = fn(preds)
    single = torch.cat([fn(p[None]) for p in preds])
    torch.testing.assert_close(batched, single)


def test_empty_prediction_gets_the_diagonal():
    ref = disk((30, 40), (10, 10), 3)
    spacing = (2.0, 1.0)
    got = hd(np.zeros((30, 40), bool), ref, spacing)
    assert got == pytest.approx(diagonal((30, 40), spacing))
    assert got == pytest.approx(math.hypot(29 * 2.0, 39 * 1.0))
    with pytest.raises(ValueError, match="reference segmentation is empty"):
        hd(ref, np.zeros((30, 40), bool))


def test_row_wise_distance_is_not_what_we_compute():
    """A 15-pixel shift: the row-as-point distance gives a different, non-spatial number."""
    ref = disk((64, 64), (32, 24), 10)
    pred = disk((64, 64), (32, 39), 10)
    row_wise = max(
        directed_hausdorff(pred.astype(float), ref.astype(float))[0],
        directed_hausdorff(ref.astype(float), pred.astype(float))[0],
    )
    assert hd(pred, ref) == pytest.approx(15.0)
    assert abs(row_wise - 15.0) > 5


def test_dice_distance_and_custom():
    ref = np.zeros((10, 10), bool)
    ref[2:6, 2:6] = True
    pred = np.zeros((10, 10), bool)
    pred[2:6, 2:4] = True
    assert hd(pred, ref, name="dice") == pytest.approx(1 - 2 * 8 / (8 + 16))
    fn = make_distance(
        lambda p, r: (p != r).flatten(1).sum(1).double(), torch.from_numpy(ref), (1, 1)
    )
    assert fn(torch.from_numpy(pred)[None]).item() == 8
    with pytest.raises(ValueError, match="distance must be one of 'hausdorff', 'hd95', 'dice'"):
        make_distance("chamfer", torch.from_numpy(ref), (1, 1))


def test_surface_is_face_connected_boundary():
    m = np.zeros((1, 7, 7), bool)
    m[0, 1:6, 1:6] = True
    s = surface(torch.from_numpy(m))[0].numpy()
    assert s.sum() == 16 and not s[3, 3] and s[1, 3]
