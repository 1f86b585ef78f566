"""HDM's circle map: every centre drawn as its disk, coloured by its value, larger on top."""

from __future__ import annotations

import numpy as np
import torch

from .._engine.occlusion import CentreGrid
from ..explanation import Explanation
from ..render import colorize, normalize

__all__ = ["circle_map"]

_VIEWS = ("raw", "better_only", "worse_only")


def _disk_footprint(radius: float, spacing: tuple[float, float]) -> np.ndarray:
    half = [int(np.floor(radius / s + 1e-9)) for s in spacing]
    yy, xx = np.mgrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1]
    return (yy * spacing[0]) ** 2 + (xx * spacing[1]) ** 2 <= radius**2 + 1e-9


def _circle_values(expl: Explanation, view: str, z: int | None) -> np.ndarray:
    """Per voxel of the shown 2D plane: the largest value among disks covering it (or NaN)."""
    p = expl.params
    grid_vals = np.asarray(expl.extras[f"grid_{view}"], dtype=np.float64)
    sliced = expl.slices is not None
    spatial = expl.map.shape[1:] if sliced else expl.map.shape
    spacing = tuple(expl.voxel_spacing[1:] if sliced else expl.voxel_spacing)
    stride = p["stride"] if not isinstance(p["stride"], list) else tuple(p["stride"])
    if sliced:
        grid_vals = grid_vals[z]
    grid = CentreGrid(spatial, p["diameter"], stride, spacing)
    centres = grid.centre_voxels(torch.arange(grid.n_centres)).numpy()
    vals = grid_vals.reshape(-1)
    finite = np.isfinite(vals)
    if len(spatial) == 2:
        planes = [(centres, vals, grid.radius)]
        plane_shape = spatial
    else:
        plane_shape = spatial[1:]
        planes = []
        for zc in np.unique(centres[:, 0]):
            dz = (z - zc) * spacing[0]
            if abs(dz) <= grid.radius:
                on = centres[:, 0] == zc
                planes.append(
                    (centres[on][:, 1:], vals[on], float(np.sqrt(grid.radius**2 - dz**2)))
                )
        spacing = spacing[1:]
    out = np.full(plane_shape, -np.inf)
    for cs, vs, r in planes:
        ok = np.isfinite(vs)
        if not ok.any():
            continue
        impulses = np.full(plane_shape, -np.inf)
        impulses[cs[ok, 0], cs[ok, 1]] = vs[ok]
        from scipy import ndimage

        dil = ndimage.grey_dilation(
            impulses, footprint=_disk_footprint(r, spacing), mode="constant", cval=-np.inf
        )
        out = np.maximum(out, dil)
    if not finite.any():
        return np.full(plane_shape, np.nan)
    return np.where(np.isfinite(out), out, np.nan)


def circle_map(
    expl: Explanation,
    view: str = "raw",
    *,
    cmap: str = "Blues",
    slice_index: int | None = None,
    with_image: bool = True,
    alpha: float = 0.85,
) -> np.ndarray:
    """Render an HDM result as interpret-segmentation's circle map.

    Parameters
    ----------
    expl
        An :class:`~maskscope.explanation.Explanation` of :class:`~maskscope.HDM`.
    view
        ``"raw"``, ``"better_only"`` or ``"worse_only"``.
    cmap
        Colormap name (``cmap`` package), scaled to the view's min and max.
    slice_index
        For 3D results, the slice along the first axis (default: the explanation's).
    with_image
        Show the image in gray where no disk was drawn, and under the disks.
    alpha
        Opacity of the disks over the image.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 RGB (save with ``PIL.Image.fromarray``).
    """
    if expl.method != "HDM":
        raise ValueError(f"circle_map needs an HDM explanation, got {expl.method}")
    if view not in _VIEWS:
        raise ValueError(f"view must be one of {_VIEWS}, got {view!r}")
    z = slice_index if slice_index is not None else expl.default_slice()
    values = _circle_values(expl, view, z)
    drawn = np.isfinite(values)
    rgb = colorize(np.where(drawn, values, np.nan), cmap).astype(np.float64)
    if with_image and expl.image is not None:
        img = expl.image[0] if z is None else expl.image[0, z]
        gray = np.repeat(normalize(img)[..., None] * 255.0, 3, axis=-1)
    else:
        gray = np.full((*values.shape, 3), 255.0)
    a = np.where(drawn, alpha, 0.0)[..., None]
    return np.clip((1 - a) * gray + a * rgb + 0.5, 0, 255).astype(np.uint8)
