"""HDM sweeps: brute force, batch invariance, calls, views, order, streaming, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import directed_hausdorff

from maskscope import HDM
from maskscope._engine.occlusion import CentreGrid, coarse_to_fine_order
from tests.conftest import Spy, ThresholdNet


def brute_hdm(model, image, diameter, stride, spacing, fill):
    """Every centre one at a time; Hausdorff with scipy on voxel coordinates."""
    spatial = image.shape[1:]
    grid = CentreGrid(spatial, diameter, stride, spacing)
    with torch.no_grad():
        ref = model(torch.from_numpy(image[None]))[0].argmax(0).numpy() == 1
    pr = np.argwhere(ref) * np.asarray(spacing)
    out = []
    for k in range(grid.n_centres):
        c = grid.centre_voxels(torch.tensor([k]))[0].numpy()
        d2 = sum(
            ((np.arange(n) - c[a]) * spacing[a]).reshape(
                [-1 if i == a else 1 for i in range(len(spatial))]
            )
            ** 2
            for a, n in enumerate(spatial)
        )
        x = image.copy()
        x[:, d2 <= (diameter / 2) ** 2] = fill
        with torch.no_grad():
            pred = model(torch.from_numpy(x[None]))[0].argmax(0).numpy() == 1
        pp = np.argwhere(pred) * np.asarray(spacing)
        if len(pp) == 0:
            out.append(
                np.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(spatial, spacing, strict=False)))
            )
        else:
            out.append(max(directed_hausdorff(pp, pr)[0], directed_hausdorff(pr, pp)[0]))
    return np.array(out).reshape(grid.counts)


def test_hdm_matches_brute_force_2d(net2d):
    img = np.zeros((1, 20, 23), np.float32)
    img[0, 5:13, 6:16] = 1.0
    expl = HDM(net2d).explain(img, diameter=5, stride=3, fill=0.0, batch_size=7)
    want = brute_hdm(net2d, img, 5, 3, (1.0, 1.0), 0.0)
    np.testing.assert_allclose(expl.extras["grid_raw"], want, rtol=1e-12)
    assert want.max() > 1  # the occlusions do move the segmentation
    assert expl.extras["baseline"] == 0.0


def test_hdm_matches_brute_force_3d_anisotropic(net3d):
    img = np.zeros((1, 8, 10, 9), np.float32)
    img[0, 2:6, 2:8, 3:7] = 1.0
    spacing = (2.0, 1.0, 1.0)
    expl = HDM(net3d).explain(
        img, diameter=4.0, stride=(4.0, 3.0, 3.0), fill=0.0, voxel_spacing=spacing
    )
    want = brute_hdm(net3d, img, 4.0, (4.0, 3.0, 3.0), spacing, 0.0)
    np.testing.assert_allclose(expl.extras["grid_raw"], want, rtol=1e-12)
    assert expl.map.shape == (8, 10, 9)


def test_batch_size_invariance_and_forward_count(net2d):
    img = np.zeros((24, 24), np.float32)
    img[6:15, 5:17] = 1.0
    grids = []
    for bs in (1, 3, 1000):
        spy = Spy(net2d)
        expl = HDM(spy).explain(img, diameter=6, stride=4, batch_size=bs, sweep="full")
        assert spy.images == expl.n_total + 1 == 36 + 1
        grids.append(expl.extras["grid_raw"])
    for g in grids[1:]:
        np.testing.assert_array_equal(g, grids[0])


def test_better_and_worse_views_on_a_constructed_case():
    """A model that segments bright pixels; the reference is a smaller ground truth.

    Occluding the part of the bright block outside the ground truth *improves* the
    output (better_only > 0 there); occluding inside it makes it worse.
    """

    def model(x):
        m = x[:, :1] - 0.5
        return torch.cat([-m, m], 1)

    img = np.zeros((1, 30, 30), np.float32)
    img[0, 13:17, 5:25] = 1.0
    gt = np.zeros((30, 30), np.uint8)
    gt[13:17, 5:15] = 1  # the right half of the bar is a false positive
    expl = HDM(model, spatial_dims=2).explain(img, reference=gt, diameter=9, stride=3, fill=0.0)
    base = expl.extras["baseline"]
    assert base == pytest.approx(10.0)
    g, b, w = (expl.extras[k] for k in ("grid_raw", "grid_better_only", "grid_worse_only"))
    np.testing.assert_allclose(b, np.maximum(base - g, 0))
    np.testing.assert_allclose(w, np.maximum(g - base, 0))
    assert (b * w == 0).all()
    better, worse = expl.extras["better_only"], expl.extras["worse_only"]
    assert better[15, 22] > 0.5 and worse[15, 22] == 0
    assert better[15, 2] == 0 or better[15, 2] < better[15, 22]
    assert better.max() <= base


@pytest.mark.parametrize("shape", [(48, 48), (13, 7), (5, 6, 7), (1, 9)])
def test_coarse_to_fine_visits_every_centre_once(shape):
    order = coarse_to_fine_order(shape)
    assert sorted(order.tolist()) == list(range(int(np.prod(shape))))


def test_coarse_to_fine_first_level_spans_the_image():
    order = coarse_to_fine_order((48, 48))
    first = np.array(np.unravel_index(order[:36], (48, 48))).T
    assert (first % 8 == 0).all()
    assert first[:, 0].max() == 40 and first[:, 1].max() == 40


@pytest.mark.parametrize(("pipeline", "in_flight"), [("off", 0), ("on", 16)])
def test_streaming_snapshots_cover_image_early_and_cancel(net2d, pipeline, in_flight):
    img = np.zeros((40, 40), np.float32)
    img[10:25, 12:30] = 1.0
    spy = Spy(net2d)
    gen = HDM(spy).iter_explain(
        img, diameter=7, stride=2, batch_size=16, sweep="full", pipeline=pipeline
    )
    first = next(gen)
    assert first.n_done == 16 and np.isfinite(first.map).all()
    visited = np.isfinite(first.extras["grid_raw"])
    rows, cols = np.nonzero(visited)
    assert rows.max() - rows.min() >= 12 and cols.max() - cols.min() >= 12
    gen.close()
    assert spy.images == 17 + in_flight  # pipelined, the second chunk was in flight
    full = HDM(net2d).explain(img, diameter=7, stride=2, batch_size=16, sweep="full")
    assert np.isfinite(full.extras["grid_raw"]).all()


def test_full_resolution_map_interpolates_centres(net2d):
    img = np.zeros((21, 21), np.float32)
    img[5:14, 6:16] = 1.0
    expl = HDM(net2d).explain(img, diameter=5, stride=4, fill=0.0)
    grid = CentreGrid((21, 21), 5, 4, (1.0, 1.0))
    g = expl.extras["grid_raw"]
    for k in range(grid.n_centres):
        cy, cx = grid.centre_voxels(torch.tensor([k]))[0].tolist()
        assert expl.map[cy, cx] == pytest.approx(g.flat[k])


def test_channel_and_fill(net2d):
    two = ThresholdNet(2, in_channels=2)
    img = np.zeros((2, 20, 20), np.float32)
    img[:, 5:15, 5:15] = 1.0
    a = HDM(two).explain(img, diameter=6, stride=4, channel=1, fill=0.0)
    b = HDM(two).explain(img, diameter=6, stride=4, fill=0.0)
    assert a.extras["grid_raw"].max() <= b.extras["grid_raw"].max()
    assert not np.array_equal(a.extras["grid_raw"], b.extras["grid_raw"])
    with pytest.raises(ValueError, match=r"channel must be in \[0, 1\]"):
        HDM(two).explain(img, diameter=6, stride=4, channel=2)


def test_fill_with_image_min_or_mean_occludes_negative_intensities():
    seen = []

    def model(x):
        seen.append(x.detach().clone())
        m = x[:, :1] + 0.5
        return torch.cat([-m, m], 1)

    img = np.full((1, 12, 12), -1.0, np.float32)
    img[0, 3:9, 3:9] = 2.0
    HDM(model, spatial_dims=2).explain(img, diameter=3, stride=6, batch_size=100, fill="min")
    batch = seen[1]
    assert batch.min() == -1.0  # the disk is filled with the image minimum, not 0
    assert (batch[:, 0, 3:9, 3:9] == -1.0).any()
    seen.clear()
    HDM(model, spatial_dims=2).explain(img, diameter=3, stride=6, batch_size=100, fill="mean")
    mean = float(img.mean())  # -0.25: 36 voxels of 2 among 144 of -1
    inside = seen[1][:, 0, 3:9, 3:9]
    assert bool(torch.isclose(inside, torch.tensor(mean)).any()) and not bool((inside == 0).any())
    seen.clear()
    expl = HDM(model, spatial_dims=2).explain(img, diameter=3, stride=6, batch_size=100)
    assert expl.params["fill"] == 0.0  # the default
    assert bool((seen[1][:, 0, 3:9, 3:9] == 0).any())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"diameter": 0.5}, r"diameter must be between one voxel \(1\) and the image's"),
        ({"diameter": 100}, "largest extent"),
        ({"stride": 0.2}, "stride 0.2 is less than one voxel along spatial axis 0"),
        (
            {"stride": 0.8, "voxel_spacing": (1.0, 2.0)},
            r"stride 0.8 is less than one voxel along spatial axis 1 \(of 2; its voxel_spacing "
            r"is 2\): give a stride of at least 2",
        ),
        ({"stride": 0}, r"stride must be in \(0, inf\]"),
        ({"distance": "chamfer"}, "distance must be one of"),
        ({"tol": 0.1}, "early stopping"),
    ],
)
def test_bad_hdm_input(net2d, kwargs, match):
    img = np.zeros((20, 20), np.float32)
    img[5:15, 5:15] = 1
    with pytest.raises(ValueError, match=match):
        HDM(net2d).explain(img, **{"diameter": 5, "stride": 3, **kwargs})


def test_reference_of_wrong_shape(net2d):
    img = np.zeros((20, 20), np.float32)
    with pytest.raises(ValueError, match=r"spatial shape \(20, 20\), got \(10, 10\)"):
        HDM(net2d).explain(img, reference=np.ones((10, 10), np.uint8))


def test_circle_map_draws_larger_values_on_top(net2d):
    from maskscope.methods.hdm import circle_map

    img = np.zeros((30, 30), np.float32)
    img[8:20, 8:22] = 1.0
    expl = HDM(net2d).explain(img, diameter=7, stride=4, fill=0.0)
    rgb = circle_map(expl, "raw", cmap="gray", with_image=False, alpha=1.0)
    assert rgb.shape == (30, 30, 3)
    g = expl.extras["grid_raw"]
    grid = CentreGrid((30, 30), 7, 4, (1.0, 1.0))
    k = int(np.argmax(g))
    cy, cx = grid.centre_voxels(torch.tensor([k]))[0].tolist()
    assert tuple(rgb[cy, cx]) == (255, 255, 255)  # the largest value is white in "gray"
    kmin = int(np.argmin(g))
    cy, cx = grid.centre_voxels(torch.tensor([kmin]))[0].tolist()
    assert rgb[cy, cx].sum() <= rgb.reshape(-1, 3).sum(1).max()
    with pytest.raises(ValueError, match="view must be one of"):
        circle_map(expl, "bad")


def test_circle_map_3d_slice(net3d):
    from maskscope.methods.hdm import circle_map

    img = np.zeros((1, 8, 12, 12), np.float32)
    img[0, 2:6, 3:9, 3:9] = 1.0
    expl = HDM(net3d).explain(img, diameter=4, stride=3, voxel_spacing=(2.0, 1.0, 1.0))
    rgb = circle_map(expl, slice_index=4)
    assert rgb.shape == (12, 12, 3)


def test_a_flat_hdm_map_says_no_occluder_changed_the_distance():
    class Fixed(torch.nn.Module):  # segments the same square whatever the input
        def forward(self, x):
            fg = torch.zeros(x.shape[0], 1, *x.shape[2:])
            fg[..., 8:14, 8:14] = 1.0
            return torch.cat([-fg, fg], 1)

    img = np.zeros((24, 24), np.float32)
    img[8:14, 8:14] = 1.0
    expl = HDM(Fixed().eval()).explain(img, diameter=5, stride=4, sweep="full")
    assert not np.any(expl.map)
    assert expl.reliability_text().startswith("exact, and flat: no occluder changed")
    adaptive = HDM(Fixed().eval()).explain(img, diameter=5, stride=2)  # skips flat centres
    assert adaptive.reliability_text().startswith("exact, and flat: no occluder changed")
    moved = HDM(ThresholdNet(2)).explain(img, diameter=5, stride=2, sweep="full")
    assert np.any(moved.map) and "flat" not in moved.reliability_text()


def test_a_fill_that_is_neither_a_number_nor_a_choice_says_both():
    from maskscope import HDMParams
    from maskscope._engine.params import validate_params

    with pytest.raises(
        ValueError, match=r"HDMParams.fill must be a number or one of 'min', 'mean', got 'abc'"
    ):
        validate_params(HDMParams(fill="abc"))
