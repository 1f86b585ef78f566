"""A napari reader for NIfTI volumes (``.nii``, ``.nii.gz``) that keeps the voxel spacing.

The array is shown with its axes reversed, ``(z, y, x)`` (slices along the first axis, as
napari expects), the voxel spacing as the layer's ``scale`` and, when the volume's axes are
aligned with the scanner's (only flips), its orientation and origin as the layer's
``affine``. An oblique volume keeps its voxel grid on screen; its full affine is in the
layer's metadata. Small non-negative integer volumes open as Labels layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["get_reader", "read_nifti"]

_SUFFIXES = (".nii", ".nii.gz")
_MAX_LABELS = 64
LayerData = tuple[Any, dict[str, Any], str]


def _is_nifti(path: Any) -> bool:
    return isinstance(path, (str, Path)) and str(path).lower().endswith(_SUFFIXES)


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_nifti` when every path is a NIfTI file, else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if paths and all(_is_nifti(p) for p in paths):
        return read_nifti
    return None


def _looks_like_labels(data: np.ndarray) -> bool:
    if data.dtype.kind not in "iub" or data.size == 0:
        return False
    if data.min() < 0 or data.max() >= 2**16:
        return False
    return np.unique(data).size <= _MAX_LABELS


def _orientation_affine(affine: np.ndarray, spacing: np.ndarray, ndim: int) -> np.ndarray | None:
    """The affine in napari's reversed axis order without the scale, if it is only flips."""
    rotation = affine[:3, :3] / spacing[None, :3]
    if not np.allclose(np.abs(rotation), np.eye(3), atol=1e-4):
        return None  # oblique or permuted axes: napari slices those poorly
    out = np.eye(ndim + 1)
    flips = np.sign(np.diag(rotation))[::-1]
    origin = affine[:3, 3][::-1]
    out[ndim - 3 : ndim, ndim - 3 : ndim] = np.diag(flips)
    out[ndim - 3 : ndim, ndim] = origin
    if np.allclose(out, np.eye(ndim + 1)):
        return None
    return out


def _read_one(path: str | Path) -> LayerData:
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading NIfTI files needs nibabel: pip install 'maskscope[medical]'"
        ) from None
    path = Path(path)
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    zooms = np.asarray(img.header.get_zooms()[: data.ndim], dtype=float)
    zooms = np.where(zooms > 0, zooms, 1.0)
    if data.ndim > 3:
        # (x, y, z, t/channel, ...) → (..., t/channel, z, y, x): extra axes in front.
        extra = list(range(data.ndim - 1, 2, -1))
        order = [*extra, 2, 1, 0]
        data = np.transpose(data, order)
        zooms = np.concatenate([np.ones(len(extra)), zooms[:3][::-1]])
    else:
        data = np.transpose(data, tuple(range(data.ndim))[::-1])
        zooms = zooms[::-1]
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    full_affine = np.asarray(img.affine, dtype=float)
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": tuple(float(z) for z in zooms),
        "metadata": {"nifti_affine": full_affine.tolist(), "path": str(path)},
    }
    if data.ndim >= 3:
        spacing = np.asarray(img.header.get_zooms()[:3], dtype=float)
        spacing = np.where(spacing > 0, spacing, 1.0)
        affine = _orientation_affine(full_affine, spacing, data.ndim)
        if affine is not None:
            kwargs["affine"] = affine
    if _looks_like_labels(data):
        return np.ascontiguousarray(data).astype(np.int32, copy=False), kwargs, "labels"
    return np.ascontiguousarray(data), kwargs, "image"


def read_nifti(path: str | Sequence[str]) -> list[LayerData]:
    """Read one or more NIfTI files as napari layer data.

    Parameters
    ----------
    path
        A ``.nii`` / ``.nii.gz`` path, or a list of them.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One layer per file: ``scale`` holds the voxel spacing in the reversed axis order.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [_read_one(p) for p in paths]
