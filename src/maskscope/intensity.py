"""Intensity normalisation: the one function every frontend uses before the model.

Normalisation is part of a model's contract: a network trained on z-scored or
percentile-scaled intensities segments nothing useful on raw scanner values, and
explaining that explains a failed segmentation. The modes match what training pipelines
do:

========================  =================================================================
``"none"``                the values as they are (float32)
``"zscore"``              ``(x - mean) / std`` (MONAI ``NormalizeIntensity``)
``"zscore-nonzero"``      mean and std over the non-zero voxels, zeros stay zero (MONAI
                          ``NormalizeIntensity(nonzero=True)``, nnU-Net's MRI scheme)
``"percentile"``          clip to the ``percentiles`` (default 0.5 and 99.5) and rescale to
                          [0, 1] (MONAI ``ScaleIntensityRangePercentiles(clip=True)``)
``"minmax"``              rescale min … max to [0, 1] (MONAI ``ScaleIntensity``)
========================  =================================================================

Each channel (along ``channel_axis``) is normalised on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "NORMALIZATIONS",
    "Normalizer",
    "apply_normalization",
    "describe_normalization",
    "normalize",
    "suggest_normalization",
]

#: Normalisation modes (see the module docstring).
NORMALIZATIONS = ("none", "zscore", "zscore-nonzero", "percentile", "minmax")

#: Default percentiles of the ``"percentile"`` mode.
PERCENTILES = (0.5, 99.5)


def _check(mode: str, percentiles: Sequence[float]) -> tuple[float, float]:
    if mode not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be one of {', '.join(map(repr, NORMALIZATIONS))}, got {mode!r}"
        )
    try:
        lo, hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ValueError(
            f"percentiles must be two numbers (low, high), got {percentiles!r}"
        ) from None
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got ({lo}, {hi})")
    return lo, hi


def _one_channel(x: np.ndarray, mode: str, lo: float, hi: float) -> np.ndarray:
    if x.size == 0 or mode == "none":
        return x
    if mode in ("zscore", "zscore-nonzero"):
        sel = x != 0 if mode == "zscore-nonzero" else np.ones(x.shape, bool)
        if not sel.any():
            return x
        vals = x[sel].astype(np.float64)
        mean, std = vals.mean(), vals.std()
        out = (x - mean) / (std if std > 0 else 1.0)
        return np.where(sel, out, 0.0).astype(np.float32) if mode == "zscore-nonzero" else out
    if mode == "percentile":
        a, b = np.percentile(x.astype(np.float64), [lo, hi])
    else:
        a, b = float(x.min()), float(x.max())
    span = b - a
    if span <= 0:
        return np.zeros_like(x)
    return np.clip((x - a) / span, 0.0, 1.0)


def normalize(
    image: Any,
    mode: str = "none",
    *,
    channel_axis: int | None = None,
    percentiles: Sequence[float] = PERCENTILES,
) -> np.ndarray:
    """Normalise intensities the way the model was trained.

    Parameters
    ----------
    image
        Any array (numpy or torch; torch tensors are moved to the CPU).
    mode
        One of :data:`NORMALIZATIONS`.
    channel_axis
        Axis holding channels, each normalised on its own; None for one channel.
    percentiles
        Low and high percentile of ``"percentile"`` (0–100).

    Returns
    -------
    np.ndarray
        float32, native byte order, same shape.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([0.0, 5.0, 10.0]), "minmax").tolist()
    [0.0, 0.5, 1.0]
    """
    lo, hi = _check(mode, percentiles)
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("the image contains NaN or infinite values: cannot normalise it")
    if channel_axis is None or arr.ndim == 0:
        return np.asarray(_one_channel(arr, mode, lo, hi), dtype=np.float32)
    moved = np.moveaxis(arr, channel_axis, 0)
    out = np.stack([_one_channel(c, mode, lo, hi) for c in moved]).astype(np.float32)
    return np.moveaxis(out, 0, channel_axis)


@dataclass(frozen=True)
class Normalizer:
    """A normalisation with its settings, as a callable on ``(C, *spatial)`` arrays.

    ``explain(image, normalize=Normalizer("percentile", (1, 99)))`` uses other
    percentiles than the default; ``str()`` gives ``"percentile(1, 99)"``.
    """

    mode: str = "none"
    percentiles: tuple[float, float] = PERCENTILES

    def __post_init__(self) -> None:
        _check(self.mode, self.percentiles)

    def __call__(self, image: Any) -> np.ndarray:
        """Normalise each channel of a ``(C, *spatial)`` array."""
        return normalize(image, self.mode, channel_axis=0, percentiles=self.percentiles)

    def __str__(self) -> str:
        if self.mode == "percentile" and tuple(self.percentiles) != PERCENTILES:
            return f"percentile({self.percentiles[0]:g}, {self.percentiles[1]:g})"
        return self.mode


def apply_normalization(normalize: str | Callable[[np.ndarray], Any], image: Any) -> np.ndarray:
    """Apply a mode name or a callable to a ``(C, *spatial)`` array; float32 out.

    Raises
    ------
    ValueError
        For an unknown mode, or a callable that changes the shape.
    """
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    fn = normalize if callable(normalize) else Normalizer(normalize)
    out = np.ascontiguousarray(np.asarray(fn(arr)), dtype=np.float32)
    if out.shape != arr.shape:
        raise ValueError(
            f"normalize returned shape {out.shape} for an input of shape {arr.shape}; "
            "it must keep the shape"
        )
    return out


def _looks_zscored(values: np.ndarray) -> bool:
    """Mean 0 and standard deviation 1, to within 0.05: the output of a z-score."""
    if values.size < 2:
        return False
    values = values.astype(np.float64, copy=False)
    return abs(float(values.mean())) < 0.05 and abs(float(values.std()) - 1.0) < 0.05


def suggest_normalization(image: Any) -> str:
    """A default for data of unknown origin: ``"none"`` when the values look normalised
    already (they lie in [0, 1], or are z-scored over the image or over its non-zero
    voxels), else ``"percentile"``.

    GUIs start with this and say so; a model's own contract (z-score, ...) overrides it.
    Rescaling an image that a pipeline has z-scored already would give the model another
    input than the one it was trained on.
    """
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.size == 0:
        return "none"
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if 0.0 <= lo and hi <= 1.0:
        return "none"
    finite = arr[np.isfinite(arr)]
    if _looks_zscored(finite) or _looks_zscored(finite[finite != 0]):
        return "none"
    return "percentile"


def describe_normalization(
    mode: str, image: Any = None, percentiles: Sequence[float] = PERCENTILES
) -> str:
    """One line saying what a mode does, with the input's range when given.

    >>> describe_normalization("percentile")
    'percentile: clip to the 0.5–99.5th percentiles, rescale to [0, 1]'
    """
    lo, hi = _check(mode, percentiles)
    text = {
        "none": "none: values as they are",
        "zscore": "zscore: (x − mean) / std",
        "zscore-nonzero": "zscore-nonzero: (x − mean) / std over non-zero voxels",
        "percentile": f"percentile: clip to the {lo:g}–{hi:g}th percentiles, rescale to [0, 1]",
        "minmax": "minmax: rescale min…max to [0, 1]",
    }[mode]
    if image is not None:
        arr = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
        if arr.size:
            text += f" (input range {float(arr.min()):.4g} … {float(arr.max()):.4g})"
    return text
