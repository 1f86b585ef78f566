"""Adaptive HDM's 'structures' rule: which occluders hide a sizeable part of a structure."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch
from scipy import ndimage

from maskscope import HDM
from maskscope._engine.adaptive_sweep import (
    hidden_content,
    hiding_centres,
    structure_centres,
    structures_and_content,
)
from maskscope._engine.occlusion import CentreGrid
from tests.conftest import Spy, ThresholdNet


def flood_labels(big: np.ndarray) -> np.ndarray:
    """Face-connected regions of ``big``, numbered from 1, by a plain breadth-first fill."""
    labels = np.zeros(big.shape, int)
    n = 0
    for start in zip(*np.nonzero(big), strict=True):
        if labels[start]:
            continue
        n += 1
        labels[start] = n
        todo = deque([start])
        while todo:
            at = todo.popleft()
            for ax in range(big.ndim):
                for step in (-1, 1):
                    nb = list(at)
                    nb[ax] += step
                    nb = tuple(nb)
                    inside = 0 <= nb[ax] < big.shape[ax]
                    if inside and big[nb] and not labels[nb]:
                        labels[nb] = n
                        todo.append(nb)
    return labels


def reference(grid, image: np.ndarray, fill: float, tol: float, share: float, speck: float):
    """Plain loops over centres and regions."""
    big = np.abs(image - fill) > tol * np.ptp(image)
    labels = flood_labels(big)
    disks = grid.occluders(torch.arange(grid.n_centres)).numpy()
    largest = max(int(d.sum()) for d in disks)
    out = np.zeros(grid.n_centres, bool)
    for k in range(1, labels.max() + 1):
        region = labels == k
        size = int(region.sum())
        if size < speck * largest:
            continue
        for c, disk in enumerate(disks):
            out[c] |= int((disk & region).sum()) >= share * size
    return out


def _scene(dims: int, rng) -> np.ndarray:
    """A small shape, a body far larger than the occluder, and specks of noise."""
    if dims == 2:
        img = np.zeros((30, 34))
        img[3:8, 4:9] = 1.0  # 25 voxels
        img[12:28, 10:32] = 0.7  # 352 voxels
        img[2, 20:23] = 0.9  # a 3-voxel line
    else:
        img = np.zeros((12, 14, 13))
        img[1:4, 1:4, 1:4] = 1.0  # 27 voxels
        img[5:12, 3:14, 2:13] = 0.7  # 847 voxels
    away = ~ndimage.binary_dilation(img > 0, iterations=2)  # specks apart from the shapes
    img[(rng.random(img.shape) < 0.02) & away] = 0.6
    return img


@pytest.mark.parametrize("dims", [2, 3])
def test_structure_centres_against_plain_loops(dims):
    img = _scene(dims, np.random.default_rng(dims))
    spacing = (1.0,) * dims if dims == 2 else (1.5, 1.0, 1.0)
    grid = CentreGrid(img.shape, 5.0, 2.0, spacing)
    x = torch.from_numpy(img)[None, None]
    hidden = torch.zeros_like(x)
    for share, speck in ((0.1, 0.1), (0.02, 0.01), (0.5, 0.2)):
        got = structure_centres(grid, x, hidden, 0.2, share=share, speck=speck)
        want = reference(grid, img, 0.0, 0.2, share, speck)
        np.testing.assert_array_equal(got, want)
    got = structure_centres(grid, x, hidden, 0.2, share=0.1, speck=0.1)
    hides = hiding_centres(grid, x, hidden, 0.2)
    assert got.sum() > 0 and not np.any(got & ~hides)
    # the body's inside and the specks alone hide something, but no sizeable structure
    assert got.sum() < 0.6 * hides.sum()


@pytest.mark.parametrize("dims", [2, 3])
def test_one_pass_gives_both_parts_of_the_rule(dims):
    img = _scene(dims, np.random.default_rng(10 + dims))
    grid = CentreGrid(img.shape, 5.0, 2.0, (1.0,) * dims)
    x = torch.from_numpy(img)[None, None]
    hidden = torch.full_like(x, 0.1)
    must, content = structures_and_content(grid, x, hidden, 0.2)
    np.testing.assert_array_equal(must, structure_centres(grid, x, hidden, 0.2))
    np.testing.assert_array_equal(content, hidden_content(grid, x, hidden))
    disks = grid.occluders(torch.arange(grid.n_centres)).numpy().reshape(grid.n_centres, -1)
    plain = [np.abs(img - 0.1).ravel()[d].mean() / np.ptp(img) for d in disks]
    np.testing.assert_allclose(content, plain, rtol=1e-12)
    assert must.any() and not must.all()


def _specks_and_boxes() -> np.ndarray:
    img = np.zeros((60, 60), np.float32)
    img[10:22, 12:30] = 1.0
    img[38:48, 36:46] = 1.0
    rng = np.random.default_rng(3)
    img[(rng.random(img.shape) < 0.01) & (img == 0)] = 0.9  # the model does not see them
    return img


def test_specks_do_not_make_the_sweep_evaluate_everything():
    img = _specks_and_boxes()
    kw = {"diameter": 15, "stride": 3, "batch_size": 16}  # single-voxel specks: < 1 %
    full = HDM(ThresholdNet(2)).explain(img, sweep="full", **kw)
    runs = {}
    for rule in ("structures", "hidden"):
        spy = Spy(ThresholdNet(2))
        runs[rule] = HDM(spy).explain(img, sweep="adaptive", content_rule=rule, **kw)
        assert spy.images == runs[rule].n_forward
    structures, hidden = runs["structures"], runs["hidden"]
    assert structures.params["content_rule"] == "structures"
    assert HDM.Params().content_rule == "structures"  # the default
    assert hidden.n_forward > 0.9 * full.n_forward  # a speck near nearly every centre
    assert structures.n_forward < 0.6 * hidden.n_forward
    ev = structures.extras["grid_evaluated"].astype(bool)
    np.testing.assert_array_equal(structures.extras["grid_raw"][ev], full.extras["grid_raw"][ev])
    span = np.ptp(full.map)
    assert np.abs(structures.map - full.map).max() <= 0.25 * span
    assert np.corrcoef(structures.map.ravel(), full.map.ravel())[0, 1] > 0.99


def test_the_summary_says_how_many_centres_the_model_saw():
    img = _specks_and_boxes()
    kw = {"diameter": 15, "stride": 3, "batch_size": 16}
    adapt = HDM(ThresholdNet(2)).explain(img, **kw)
    seen = int(adapt.extras["grid_evaluated"].sum())
    n_all = adapt.extras["grid_evaluated"].size
    assert seen < n_all
    assert f"the model saw {seen} of {n_all} centres" in adapt.reliability_text()
    full = HDM(ThresholdNet(2)).explain(img, sweep="full", **kw)
    assert full.reliability_text().startswith("exact")
