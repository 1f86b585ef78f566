"""Occluder masks: the windowed stamp equals the whole-image distance test, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maskscope._engine.occlusion import CentreGrid


def slow_occluders(grid: CentreGrid, flat: torch.Tensor) -> torch.Tensor:
    """The original formula: a float64 squared distance over the whole image per centre."""
    centres = grid.centre_voxels(flat).double()
    d2 = None
    for ax, (n, sp) in enumerate(zip(grid.spatial, grid.spacing, strict=True)):
        pos = torch.arange(n, dtype=torch.float64) * sp
        c = centres[:, ax : ax + 1] * grid.spacing[ax]
        diff = (pos[None, :] - c) ** 2
        shape = [diff.shape[0]] + [1] * len(grid.spatial)
        shape[1 + ax] = diff.shape[1]
        diff = diff.reshape(shape)
        d2 = diff if d2 is None else d2 + diff
    return d2 <= grid.radius**2 + 1e-9


CASES = [
    # spatial, diameter, stride, spacing
    ((40, 37), 9.0, 4.0, (1.0, 1.0)),
    ((33, 29), 10.0, (3.0, 5.0), (0.7, 1.3)),  # non-dyadic spacing: rounding matters
    ((24, 24), 6.0, 1.0, (1.0, 1.0)),  # radius on voxel centres (boundary ties)
    ((12, 20, 17), 8.0, (4.0, 3.0, 3.0), (2.0, 1.0, 1.0)),
    ((9, 14, 11), 7.3, 2.0, (1.7, 0.6, 0.9)),
    ((6, 8, 7), 8.0, 3.0, (1.0, 1.0, 1.0)),  # ball as large as the image
    ((16, 5), 1.0, 1.0, (1.0, 1.0)),  # single-voxel disk
    # (3 * 0.3 - 1 * 0.3) ** 2 < radius**2 + 1e-9 < (2 * 0.3) ** 2: a stencil of offsets
    # would drop voxel 3 from the disk of the centre at voxel 1; the image-wide test keeps it
    ((6, 3), 1.1999999983333332, (0.9, 1.0), (0.3, 1.0)),
]


@pytest.mark.parametrize(("spatial", "diameter", "stride", "spacing"), CASES)
def test_masks_equal_whole_image_formula(spatial, diameter, stride, spacing):
    grid = CentreGrid(spatial, diameter, stride, spacing)
    flat = grid.order  # every centre, border ones included
    want = slow_occluders(grid, flat)
    got = grid.occluders(flat)
    assert got.dtype == torch.bool and got.shape == want.shape
    assert torch.equal(got, want)
    assert want.any(dim=tuple(range(1, want.ndim))).all()  # every centre occludes something
    keep = grid.keep_masks(0, grid.n_centres, torch.float32)
    assert keep.shape == (grid.n_centres, 1, *spatial) and keep.dtype == torch.float32
    assert torch.equal(keep[:, 0], (~slow_occluders(grid, grid.order)).float())


def _random_grids(n: int):
    """Grids of random sizes, spacings (dyadic and not), diameters and strides."""
    rng = np.random.default_rng(5)
    spacings = [0.5, 0.7, 1.0, 1.25, 2.0, 3.0, 0.3125, 1 / 3, 0.3]
    diameters = [1.0, 2.0, 3.0, 4.0, 6.0, 7.5, 10.0, 2 * math.sqrt(2), 1.1999999983333332]
    grids = []
    while len(grids) < n:
        nd = int(rng.integers(2, 4))
        spatial = tuple(int(v) for v in rng.integers(3, 30, nd))
        spacing = tuple(float(v) for v in rng.choice(spacings, nd))
        try:
            grids.append(
                CentreGrid(
                    spatial, float(rng.choice(diameters)), float(rng.integers(1, 5)), spacing
                )
            )
        except ValueError:  # a diameter or stride that does not fit the draw
            continue
    return grids


def test_random_grids_equal_the_whole_image_formula_in_centre_then_voxel_order():
    for grid in _random_grids(60):
        flat = grid.order
        rows, voxels = grid.occluded(flat)
        want = slow_occluders(grid, flat).reshape(flat.shape[0], -1)
        got = torch.zeros_like(want)
        got[rows, voxels] = True
        assert torch.equal(got, want), (grid.spatial, grid.spacing, grid.radius, grid.steps)
        assert rows.numel() == int(want.sum())  # no voxel twice
        key = rows * want.shape[1] + voxels
        assert bool((key[1:] > key[:-1]).all())  # by centre, then by voxel index


def test_masks_in_chunks_and_at_borders():
    grid = CentreGrid((30, 31), 11.0, 3.0, (1.0, 1.0))
    centres = grid.centre_voxels(grid.order)
    at_border = (centres == 0).any(1) | (centres[:, 1] >= 29)
    assert at_border.any()  # the disk is clipped at the image border for some centres
    for start, stop in ((0, 1), (3, 17), (grid.n_centres - 5, grid.n_centres)):
        want = ~slow_occluders(grid, grid.order[start:stop])
        got = grid.keep_masks(start, stop, torch.float64)
        assert torch.equal(got[:, 0], want.double())


def test_anisotropic_ball_is_physical():
    grid = CentreGrid((11, 21, 21), 10.0, 100.0, (2.0, 1.0, 1.0))
    occ = grid.occluders(grid.order[:1])[0]
    c = grid.centre_voxels(grid.order[:1])[0].tolist()
    assert c == [5, 10, 10]
    # radius 5: two voxels (4 units) along the first axis, five along the others
    assert occ[5 + 2, 10, 10] and not occ[5 + 3, 10, 10]
    assert occ[5, 10, 15] and not occ[5, 10, 16]
    assert occ[5, 15, 10] and not occ[5, 16, 10]


def test_params_record_the_grid_as_laid():
    """The stride is rounded to whole voxels per axis; params say what was used."""
    from maskscope import HDM
    from tests.conftest import ThresholdNet

    img = np.zeros((12, 20, 22), np.float32)
    img[3:8, 5:12, 5:12] = 1.0
    spacing = (3.0, 1.5, 1.5)
    kw = dict(diameter=6, stride=4.4, voxel_spacing=spacing, sweep="full")
    expl = HDM(ThresholdNet(3)).explain(img, **kw)
    grid = CentreGrid(img.shape, 6, 4.4, spacing)
    assert grid.steps == (1, 3, 3)  # 4.4 / 3 rounds to 1, 4.4 / 1.5 to 3
    assert expl.params["stride"] == 4.4
    assert expl.params["stride_voxels"] == [1, 3, 3]
    assert expl.params["stride_used"] == [3.0, 4.5, 4.5]
    assert expl.params["grid_spacing"] == [3.0, 1.5, 1.5]
    assert expl.n_total == grid.n_centres
