"""Images as the engine takes them: channel axis, array order, slices, normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._engine.inputs import normalize_spacing, prepare_image, spacing_from_image
from ..intensity import NORMALIZATIONS, describe_normalization, suggest_normalization
from ..io import AXES, reorder

__all__ = [
    "AXES",
    "NORMALIZATIONS",
    "SCOPES",
    "InputArray",
    "describe_normalization",
    "input_array",
    "normalization_status",
    "normalize_spacing",
    "prepare_image",
    "resolve_normalization",
    "reverse_axes",
    "reverse_explanation",
    "scope_slices",
    "spacing_from_image",
    "suggest_normalization",
]

#: What a 2D model explains in a volume: the slice on screen, every slice, or a range.
SCOPES = ("current slice", "all slices", "range")


@dataclass(frozen=True)
class InputArray:
    """A layer's array arranged for the engine.

    Attributes
    ----------
    image
        ``(C, *spatial)`` float32.
    spatial_axes
        The axes of the layer's array that are spatial, in order.
    channel_axis
        The layer's channel axis, or None.
    """

    image: np.ndarray
    spatial_axes: tuple[int, ...]
    channel_axis: int | None

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape."""
        return tuple(self.image.shape[1:])


def input_array(data: Any, channel_axis: int | None = None) -> InputArray:
    """Arrange a layer's array as ``(C, *spatial)`` with 2 or 3 spatial axes.

    Parameters
    ----------
    data
        The array (numpy, dask, ... anything ``np.asarray`` accepts).
    channel_axis
        The axis holding channels, or None for one channel.

    Raises
    ------
    ValueError
        When the array does not have 2 or 3 axes besides the channel axis.
    """
    arr = np.asarray(data)
    if channel_axis is not None:
        if not -arr.ndim <= channel_axis < arr.ndim:
            raise ValueError(
                f"channel axis {channel_axis} is out of range for an array of shape {arr.shape}"
            )
        channel_axis %= arr.ndim
    spatial_axes = tuple(a for a in range(arr.ndim) if a != channel_axis)
    if len(spatial_axes) not in (2, 3):
        where = "no channel axis" if channel_axis is None else f"channel axis {channel_axis}"
        raise ValueError(
            f"the image must have 2 or 3 spatial axes, got shape {arr.shape} with {where}: "
            "choose the channel axis, or a 2D or 3D image"
        )
    image = arr[None] if channel_axis is None else np.moveaxis(arr, channel_axis, 0)
    return InputArray(np.ascontiguousarray(image, dtype=np.float32), spatial_axes, channel_axis)


def reverse_axes(array: Any, n_spatial: int) -> np.ndarray:
    """The array with its last ``n_spatial`` axes reversed (ijk ↔ kji), contiguous."""
    return np.ascontiguousarray(reorder(np.asarray(array), "ijk", "kji", n_spatial))


def scope_slices(scope: str, *, current: int, start: int, stop: int, depth: int) -> Any:
    """The engine's ``slices`` for a scope choice of a 2D model on a volume.

    Parameters
    ----------
    scope
        One of :data:`SCOPES`.
    current
        The slice on screen.
    start, stop
        First and last slice of ``"range"`` (inclusive, in any order).
    depth
        Number of slices.
    """
    if scope == "current slice":
        return int(min(max(current, 0), depth - 1))
    if scope == "all slices":
        return "all"
    if scope == "range":
        lo, hi = sorted((int(start), int(stop)))
        if hi < 0 or lo >= depth:
            raise ValueError(f"slice range {lo}–{hi} is outside the volume's 0–{depth - 1}")
        return list(range(max(lo, 0), min(hi, depth - 1) + 1))
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")


def resolve_normalization(normalize: Any, image: Any) -> str:
    """``"auto"`` → :func:`~maskscope.intensity.suggest_normalization`; a mode as given.

    Raises
    ------
    ValueError
        For a name that is neither ``"auto"`` nor a mode.
    """
    if normalize == "auto":
        return suggest_normalization(image)
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be 'auto' or one of {', '.join(map(repr, NORMALIZATIONS))}, "
            f"got {normalize!r}"
        )
    return str(normalize)


def normalization_status(mode: str, image: Any, auto: bool) -> str:
    """``"normalisation: percentile: clip ... (input range ...), chosen for this image"``."""
    chosen = ", chosen for this image" if auto else ""
    return f"normalisation: {describe_normalization(mode, image)}{chosen}"


def reverse_explanation(expl: Any, n_spatial: int) -> Any:
    """An explanation made on reversed spatial axes, put back in the image's order.

    The map, standard error, reference, prediction, image and every extra with at least
    ``n_spatial`` axes have their last ``n_spatial`` axes reversed, and so has the voxel
    spacing. None stays None.
    """

    def back(arr: Any) -> Any:
        if arr is None or np.ndim(arr) < n_spatial:
            return arr
        return reverse_axes(arr, n_spatial)

    return expl.with_status(
        map=back(expl.map),
        stderr=back(expl.stderr),
        reference=back(expl.reference),
        prediction=back(expl.prediction),
        image=back(expl.image),
        extras={name: back(arr) for name, arr in expl.extras.items()},
        voxel_spacing=tuple(expl.voxel_spacing)[::-1],
    )
