"""The 2D shapes sample data: determinism, the label rule and the geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from maskscope.data import RIGHT_SHAPES, ShapesSample, shapes2d, shapes2d_batch


def test_same_seed_gives_identical_sample() -> None:
    a, b = shapes2d(7), shapes2d(7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.right_shape == b.right_shape
    assert a.masks.keys() == b.masks.keys()
    for name in a.masks:
        np.testing.assert_array_equal(a.masks[name], b.masks[name])


def test_other_seed_gives_other_sample() -> None:
    assert not np.array_equal(shapes2d(1).image, shapes2d(2).image)
    assert not np.array_equal(shapes2d(1, right="circle").label, shapes2d(2, right="circle").label)


def test_types_shapes_and_range() -> None:
    sample = shapes2d(0, size=200)
    assert isinstance(sample, ShapesSample)
    assert sample.image.shape == (1, 200, 200) and sample.image.dtype == np.float32
    assert sample.label.shape == (200, 200) and sample.label.dtype == np.uint8
    assert 0.0 <= sample.image.min() and sample.image.max() <= 1.0
    assert sample.voxel_spacing == (1.0, 1.0)
    assert set(np.unique(sample.label)) == {0, 1}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("right", RIGHT_SHAPES)
def test_label_rule(seed: int, right: str) -> None:
    sample = shapes2d(seed, right=right)
    assert sample.right_shape == right
    assert set(sample.masks) == {"cross", "triangle", right}
    target = "triangle" if right == "circle" else "cross"
    assert sample.target == target
    np.testing.assert_array_equal(sample.label.astype(bool), sample.masks[target])


def test_random_right_shape_takes_both_values() -> None:
    assert {shapes2d(seed).right_shape for seed in range(20)} == set(RIGHT_SHAPES)


@pytest.mark.parametrize("seed", range(8))
def test_shapes_inside_their_half_and_disjoint(seed: int) -> None:
    sample = shapes2d(seed, size=240)
    masks = sample.masks
    total = np.zeros((240, 240), dtype=int)
    for name, mask in masks.items():
        assert mask.dtype == bool and mask.shape == (240, 240)
        assert mask.sum() > 100, name
        # Nothing on the border: the shape lies wholly inside the image.
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        columns = np.flatnonzero(mask.any(axis=0))
        if name == sample.right_shape:
            assert columns.min() >= 120
        else:
            assert columns.max() < 120
        assert ndimage.label(mask)[1] == 1, f"{name} is not one connected piece"
        total += mask
    assert total.max() == 1, "shapes overlap"


def test_shapes_are_brighter_than_background() -> None:
    sample = shapes2d(3)
    inside = np.zeros((240, 240), dtype=bool)
    for mask in sample.masks.values():
        inside |= mask
    assert sample.image[0][inside].mean() > sample.image[0][~inside].mean() + 0.4


def test_batch_is_deterministic_balanced_and_typed() -> None:
    images, labels = shapes2d_batch(4, seed=3, size=96)
    again, _ = shapes2d_batch(4, seed=3, size=96)
    other, _ = shapes2d_batch(4, seed=4, size=96)
    assert images.shape == (4, 1, 96, 96) and images.dtype == np.float32
    assert labels.shape == (4, 96, 96) and labels.dtype == np.int64
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, other)
    assert all(labels[i].sum() > 0 for i in range(4))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="circle"):
        shapes2d(0, right="hexagon")
    with pytest.raises(ValueError, match="size"):
        shapes2d(0, size=32)
