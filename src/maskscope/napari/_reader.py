"""napari reader and writer for NIfTI volumes (``.nii``, ``.nii.gz``).

The reader is :func:`maskscope.io.read_image` and the writer :func:`maskscope.io.write_map`,
the ones the command line and the API use.
Opened from napari, a layer holds the file's own ``(i, j, k)`` order (nibabel's and
MONAI's); :func:`read_nifti` with ``axes="kji"`` gives SimpleITK's and nnU-Net's
``(k, j, i)`` (``viewer.add_layer(Layer.create(*read_nifti(path, axes="kji")[0]))``), and
the widget's "array order" field feeds the model either order whatever the layer's.
Either way the volume is placed right in world space: the voxel spacing is the layer's
``scale`` and, when the volume's axes are aligned with the scanner's (only flips), its
orientation and origin are the layer's ``affine``. An oblique volume keeps its voxel grid
on screen. The file's affine and the array order are kept in the layer's metadata
(``nifti_affine``, ``nifti_axes``), so that :func:`write_nifti` saves a map computed on the
layer back in the file's space. Small non-negative integer volumes open as Labels layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import Volume, check_axes, read_image, write_map

__all__ = [
    "AFFINE_KEY",
    "AXES_KEY",
    "get_reader",
    "layer_affine",
    "read_nifti",
    "write_nifti",
]

#: Layer metadata keys holding the source file's 4×4 affine and the layer's array order.
AFFINE_KEY = "nifti_affine"
AXES_KEY = "nifti_axes"

_SUFFIXES = (".nii", ".nii.gz")
_MAX_LABELS = 64
LayerData = tuple[Any, dict[str, Any], str]


def _is_nifti(path: Any) -> bool:
    return isinstance(path, (str, Path)) and str(path).lower().endswith(_SUFFIXES)


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_nifti` (``(i, j, k)`` arrays) when every path is NIfTI, else None."""
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


def layer_affine(affine: np.ndarray, axes: str, ndim: int) -> np.ndarray | None:
    """The layer affine (without the scale) placing an array of ``axes`` order in the world.

    World axes are the scanner's ``(x, y, z)`` for ``"ijk"`` and ``(z, y, x)`` for
    ``"kji"``. Returns None when the affine is more than flips (an oblique or permuted
    grid: napari slices those poorly, the grid is kept) or nothing but the identity.
    """
    affine = np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    rotation = affine[:3, :3] / spacing[None, :]
    if not np.allclose(np.abs(rotation), np.eye(3), atol=1e-4):
        return None
    flips, origin = np.sign(np.diag(rotation)), affine[:3, 3]
    if axes == "kji":
        flips, origin = flips[::-1], origin[::-1]
    out = np.eye(ndim + 1)
    out[ndim - 3 : ndim, ndim - 3 : ndim] = np.diag(flips)
    out[ndim - 3 : ndim, ndim] = origin
    return None if np.allclose(out, np.eye(ndim + 1)) else out


def _name(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_one(path: str | Path, axes: str) -> LayerData:
    path = Path(path)
    vol = read_image(path, axes=axes)
    data = vol.data
    n_extra = data.ndim - len(vol.voxel_spacing or ())
    scale = (1.0,) * n_extra + tuple(vol.voxel_spacing or ())
    full_affine = vol.meta["affine"]
    kwargs: dict[str, Any] = {
        "name": _name(path),
        "scale": scale,
        "metadata": {AFFINE_KEY: full_affine.tolist(), AXES_KEY: axes, "path": str(path)},
    }
    if data.ndim >= 3 and len(vol.voxel_spacing or ()) == 3:
        affine = layer_affine(full_affine, axes, data.ndim)
        if affine is not None:
            kwargs["affine"] = affine
    if _looks_like_labels(data):
        return np.ascontiguousarray(data).astype(np.int32, copy=False), kwargs, "labels"
    return np.ascontiguousarray(data), kwargs, "image"


def read_nifti(path: str | Sequence[str], axes: str = "ijk") -> list[LayerData]:
    """Read one or more NIfTI files as napari layer data.

    Parameters
    ----------
    path
        A ``.nii`` / ``.nii.gz`` path, or a list of them.
    axes
        The layers' array order: ``"ijk"`` (nibabel, MONAI) or ``"kji"`` (SimpleITK,
        nnU-Net).

    Returns
    -------
    list of (data, kwargs, layer_type)
        One layer per file: ``scale`` holds the voxel spacing in the array's order.
    """
    check_axes(axes)
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [_read_one(p, axes) for p in paths]


def write_nifti(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save an Image layer (a saliency map) as NIfTI in its source file's space.

    The affine and array order come from the layer's metadata (``nifti_affine``,
    ``nifti_axes``: set by this plugin's reader and copied onto maskscope's output
    layers). A layer without them is written as an ``(i, j, k)`` array with its
    ``scale`` as the voxel size.

    Returns
    -------
    list of str
        The written path.
    """
    if not str(path).lower().endswith(_SUFFIXES):
        path = f"{path}.nii.gz"
    metadata = meta.get("metadata") or {}
    arr = np.asarray(data, dtype=np.float32)
    affine = metadata.get(AFFINE_KEY)
    axes = check_axes(metadata.get(AXES_KEY, "ijk"))
    if affine is None:
        scale = [abs(float(s)) for s in list(meta.get("scale") or [1.0] * arr.ndim)[-3:]]
        affine = np.diag([*scale, *[1.0] * (4 - len(scale))])
    # the writer of the command line and the API, with the source's space as "like"
    space = {"affine": np.asarray(affine, dtype=float), "header": None, "axes": axes}
    like = Volume(np.broadcast_to(np.float32(0), arr.shape), None, ".nii.gz", space)
    return [str(write_map(path, arr, like=like))]
