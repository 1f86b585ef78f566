"""The 3D phantom sample data: determinism, shapes, spacing, channels and structures."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope.data import PHANTOM_SPACING, PhantomSample, phantom3d, phantom3d_batch

SMALL = (32, 48, 48)


def test_default_phantom() -> None:
    sample = phantom3d(0)
    assert isinstance(sample, PhantomSample)
    assert sample.image.shape == (1, 64, 96, 96) and sample.image.dtype == np.float32
    assert sample.label.shape == (64, 96, 96) and sample.label.dtype == np.uint8
    assert sample.voxel_spacing == PHANTOM_SPACING == (2.0, 1.0, 1.0)
    assert 0.0 <= sample.image.min() and sample.image.max() <= 1.0


def test_same_seed_same_phantom_other_seed_other_phantom() -> None:
    a, b, c = phantom3d(5, shape=SMALL), phantom3d(5, shape=SMALL), phantom3d(6, shape=SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.label, c.label)


@pytest.mark.parametrize("seed", range(3))
def test_structures(seed: int) -> None:
    sample = phantom3d(seed)
    masks = sample.masks
    assert set(masks) == {"body", "organ_a", "organ_b", "cyst", "spine", "lesion"}
    np.testing.assert_array_equal(sample.label.astype(bool), masks["lesion"])
    assert sample.label.sum() > 200
    inner = [m for name, m in masks.items() if name != "body"]
    assert np.sum(inner, axis=0).max() == 1, "structures overlap"
    for name, mask in masks.items():
        assert mask.shape == (64, 96, 96) and mask.dtype == bool
        assert mask.any(), name
        assert not (mask & ~masks["body"]).any(), f"{name} leaks out of the body"
    # The lesion is the bright round structure; the spine is as bright but runs through the body.
    image = sample.image[0]
    for darker in ("organ_a", "organ_b", "cyst", "body"):
        assert image[masks["lesion"]].mean() > image[masks[darker]].mean() + 0.2
    lesion_depth = np.flatnonzero(masks["lesion"].any(axis=(1, 2)))
    spine_depth = np.flatnonzero(masks["spine"].any(axis=(1, 2)))
    assert np.ptp(spine_depth) > 2 * np.ptp(lesion_depth)


def test_two_channels_have_other_contrast() -> None:
    one = phantom3d(2, shape=SMALL)
    two = phantom3d(2, shape=SMALL, channels=2)
    assert two.image.shape == (2, *SMALL)
    np.testing.assert_array_equal(one.label, two.label)
    np.testing.assert_array_equal(one.image[0], two.image[0])
    cyst = two.masks["cyst"]
    assert two.image[0][cyst].mean() < 0.3 < two.image[1][cyst].mean()


def test_batch() -> None:
    images, labels = phantom3d_batch(2, seed=1, shape=SMALL, channels=2)
    again, _ = phantom3d_batch(2, seed=1, shape=SMALL, channels=2)
    assert images.shape == (2, 2, *SMALL) and images.dtype == np.float32
    assert labels.shape == (2, *SMALL) and labels.dtype == np.int64
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images[0], images[1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="channels"):
        phantom3d(0, channels=3)
    with pytest.raises(ValueError, match="shape"):
        phantom3d(0, shape=(8, 8, 8))
