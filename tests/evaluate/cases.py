"""Tiny deterministic inputs for the evaluation tests (2D, 3D, two channels)."""

from __future__ import annotations

import numpy as np


def image2d(seed: int = 9) -> np.ndarray:
    """12×12: a bright 5×6 block on a faint random texture."""
    rng = np.random.default_rng(seed)
    img = 0.25 * rng.random((12, 12))
    img[3:8, 4:10] += 0.7
    return img.astype(np.float32)


def image3d(seed: int = 3) -> np.ndarray:
    """7×8×6: a bright 3×4×3 block on a faint random texture."""
    rng = np.random.default_rng(seed)
    vol = 0.25 * rng.random((7, 8, 6))
    vol[2:5, 2:6, 1:4] += 0.7
    return vol.astype(np.float32)


def image2ch(seed: int = 3) -> np.ndarray:
    """(2, 10, 11): the block in both channels, brighter in the first."""
    rng = np.random.default_rng(seed)
    img = 0.25 * rng.random((2, 10, 11))
    img[0, 2:7, 3:8] += 0.9
    img[1, 2:7, 3:8] += 0.5
    return img.astype(np.float32)


def saliency_for(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A random map rounded to one decimal, so that many voxels tie."""
    return np.round(np.random.default_rng(seed).random(shape), 1)
