"""Reading images and writing maps: ``.npy``, ``.npz``, ``.tif``/``.tiff`` and NIfTI.

NIfTI volumes (``.nii``, ``.nii.gz``; needs ``nibabel``, the ``medical`` extra) are read as
``(k, j, i)`` arrays — for the usual axial acquisitions ``(D, H, W)`` with axial slices
along the first axis — with the voxel spacing from the header, and maps are written back
in the file's own orientation with its affine, so they overlay the source in any viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMATS", "Volume", "read_image", "write_map"]

#: Accepted file suffixes.
FORMATS = (".npy", ".npz", ".tif", ".tiff", ".nii", ".nii.gz")


@dataclass
class Volume:
    """An array read from a file, with what is needed to write results alike.

    Attributes
    ----------
    data
        The array (NIfTI: axes reversed to ``(k, j, i)``).
    voxel_spacing
        Physical voxel size per axis of ``data`` (None when the file has none).
    format
        The file's suffix (one of :data:`FORMATS`).
    meta
        Format-specific information (the NIfTI header and affine).
    """

    data: np.ndarray
    voxel_spacing: tuple[float, ...] | None
    format: str
    meta: dict[str, Any] = field(default_factory=dict)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _check_format(path: Path) -> str:
    fmt = _suffix(path)
    if fmt not in FORMATS:
        raise ValueError(
            f"{path.name}: unsupported file type {fmt or '(none)'}; expected one of "
            f"{', '.join(FORMATS)}"
        )
    return fmt


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise ValueError("NIfTI files need nibabel: pip install 'maskscope[medical]'") from None
    return nibabel


def read_image(path: str | Path, key: str | None = None) -> Volume:
    """Read an image, volume or label file.

    Parameters
    ----------
    path
        A ``.npy``, ``.npz``, ``.tif``/``.tiff``, ``.nii`` or ``.nii.gz`` file.
    key
        For ``.npz``: the array to read (default ``"image"`` when present, else the only
        array, else an error listing the keys).
    """
    path = Path(path)
    fmt = _check_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    nib = _nibabel() if fmt in (".nii", ".nii.gz") else None
    try:
        if fmt == ".npy":
            return Volume(np.load(path, allow_pickle=False), None, fmt)
        if fmt == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
                if key is None:
                    key = "image" if "image" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None or key not in keys:
                    raise ValueError(f"{path.name}: choose an array among {keys}")
                spacing = tuple(map(float, z["voxel_spacing"])) if "voxel_spacing" in keys else None
                return Volume(z[key], spacing, fmt)
        if fmt in (".tif", ".tiff"):
            import tifffile

            return Volume(tifffile.imread(path), None, fmt)
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
        data = np.transpose(data, tuple(reversed(range(data.ndim))))
        return Volume(
            data, tuple(reversed(zooms)), fmt, {"affine": img.affine, "header": img.header}
        )
    except Exception as exc:  # a corrupt file: one line naming it
        if str(exc).startswith(path.name):  # our own message already names the file
            raise
        raise ValueError(f"{path.name}: cannot read it as {fmt} ({exc})") from None


def write_map(path: str | Path, data: np.ndarray, like: Volume | None = None) -> Path:
    """Write a map in the format given by ``path``'s suffix.

    For NIfTI the array is turned back to the file's axis order and written with the
    affine and header of ``like`` (when it is a NIfTI volume).
    """
    path = Path(path)
    fmt = _check_format(path)
    arr = np.asarray(data, dtype=np.float32)
    if fmt == ".npy":
        np.save(path, arr)
    elif fmt == ".npz":
        np.savez_compressed(path, map=arr)
    elif fmt in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, arr, photometric="minisblack")
    else:
        nib = _nibabel()
        arr = np.transpose(arr, tuple(reversed(range(arr.ndim))))
        if like is not None and like.format in (".nii", ".nii.gz"):
            header = like.meta["header"].copy()
            header.set_data_dtype(np.float32)
            img = nib.Nifti1Image(arr, like.meta["affine"], header)
        else:
            img = nib.Nifti1Image(arr, np.eye(4))
        nib.save(img, str(path))
    return path
