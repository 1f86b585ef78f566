"""Small datasets written to disk: 2D images, NIfTI volumes, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Affine of the test volumes: anisotropic and shifted, so that keeping it is visible.
AFFINE = np.array(
    [[2.0, 0, 0, -10.0], [0, 1.5, 0, 4.0], [0, 0, 1.0, 7.0], [0, 0, 0, 1.0]], dtype=float
)


def image2d(i: int) -> np.ndarray:
    """A 0/1 image with a rectangle that moves with ``i`` (shapes 16×16 to 16×24)."""
    img = np.zeros((16, 16 + 4 * (i % 3)), np.float32)
    img[3 + i % 4 : 10 + i % 4, 4 + i : 11 + i] = 1.0
    return img


def volume3d(i: int) -> np.ndarray:
    """A 0/1 volume with a block that moves with ``i`` (8×8×8 to 8×10×8)."""
    vol = np.zeros((8, 8 + 2 * (i % 2), 8), np.float32)
    vol[2 + i % 2 : 6 + i % 2, 2:6, 2 + i % 3 : 6 + i % 3] = 1.0
    return vol


def write_2d(folder: Path, n: int, start: int = 0) -> list[Path]:
    """``n`` 2D images as .npy and .tif files in ``folder``."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        if i % 2:
            path = folder / f"img{i:02d}.tif"
            tifffile.imwrite(path, image2d(i))
        else:
            path = folder / f"img{i:02d}.npy"
            np.save(path, image2d(i))
        paths.append(path)
    return paths


def write_3d(folder: Path, n: int) -> list[Path]:
    """``n`` volumes as .nii.gz files with :data:`AFFINE`."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"vol{i:02d}.nii.gz"
        nib.save(nib.Nifti1Image(volume3d(i), AFFINE), str(path))
        paths.append(path)
    return paths


def write_broken(folder: Path) -> Path:
    """A .npy file that is not one."""
    path = folder / "broken.npy"
    path.write_bytes(b"not an array at all")
    return path
