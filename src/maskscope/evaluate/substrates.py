"""Substrates: what a removed voxel is replaced with in deletion and insertion curves.

A substrate is a function ``image (C, *spatial) float64 -> array of the same shape``.
Deletion puts substrate voxels in place of the image's most salient voxels; insertion starts
from the substrate and puts the image's voxels back, most salient first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SUBSTRATES", "Substrate", "blur_substrate", "get_substrate", "min_substrate"]

#: Signature of a substrate: ``image (C, *spatial) -> (C, *spatial)``.
Substrate = Callable[[np.ndarray], np.ndarray]

#: Default standard deviation of the Gaussian blur, in voxels.
BLUR_SIGMA = 5.0


def zero_substrate(image: np.ndarray) -> np.ndarray:
    """Zeros (the usual deletion substrate of Petsiuk et al. 2018)."""
    return np.zeros_like(image)


def min_substrate(image: np.ndarray) -> np.ndarray:
    """Each channel's minimum (the image's background level when it is not 0)."""
    axes = tuple(range(1, image.ndim))
    return np.broadcast_to(image.min(axis=axes, keepdims=True), image.shape).copy()


def blur_substrate(image: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """A Gaussian-blurred copy, each channel blurred over its spatial axes.

    Parameters
    ----------
    image
        ``(C, *spatial)``.
    sigma
        Standard deviation of the Gaussian in voxels (``scipy.ndimage.gaussian_filter``,
        borders reflected).
    """
    from scipy import ndimage

    return np.stack([ndimage.gaussian_filter(c, sigma=float(sigma)) for c in image])


#: Substrates by name, as listed by the CLI and the GUIs.
SUBSTRATES: dict[str, Substrate] = {
    "zero": zero_substrate,
    "blur": blur_substrate,
    "min": min_substrate,
}


def get_substrate(substrate: str | Substrate, *, blur_sigma: float = BLUR_SIGMA) -> Substrate:
    """Resolve a substrate name or callable once; unknown names list the valid ones.

    Parameters
    ----------
    substrate
        ``"zero"``, ``"blur"``, ``"min"`` or a callable ``(C, *spatial) -> (C, *spatial)``.
    blur_sigma
        Standard deviation (voxels) of the ``"blur"`` substrate; must be positive.
    """
    if callable(substrate):
        return substrate
    if substrate not in SUBSTRATES:
        valid = ", ".join(repr(k) for k in SUBSTRATES)
        raise ValueError(f"substrate must be one of {valid} or a callable, got {substrate!r}")
    if substrate == "blur":
        sigma = float(blur_sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"blur_sigma must be a positive number of voxels, got {blur_sigma!r}")
        return lambda image: blur_substrate(image, sigma)
    return SUBSTRATES[substrate]


def substrate_name(substrate: str | Substrate) -> str:
    """A name for reports: the registry name, or the callable's ``__name__``."""
    if isinstance(substrate, str):
        return substrate
    return getattr(substrate, "__name__", type(substrate).__name__)
