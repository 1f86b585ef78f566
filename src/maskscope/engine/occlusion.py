"""Occlusion sweeps: a disk (2D) or ball (3D) at each centre of a regular grid.

Centres are laid out per axis every ``stride`` (in physical units, converted to whole voxels
per axis), symmetric about the image centre. They are visited coarse to fine: first every
``2**k``-th centre along each axis, then the centres between, halving the step down to 1, so
that an early snapshot already covers the whole image at lower resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .masks import linear_weights

__all__ = ["CentreGrid", "coarse_to_fine_order"]


def coarse_to_fine_order(shape: Sequence[int], first_step: int | None = None) -> np.ndarray:
    """Flat indices of a grid of ``shape``, coarse to fine, each exactly once.

    Parameters
    ----------
    shape
        Number of centres per axis.
    first_step
        Step of the first level (a power of two); by default the largest power of two that
        leaves at least 4 centres along the longest axis.
    """
    shape = tuple(int(n) for n in shape)
    if first_step is None:
        longest = max(shape)
        first_step = 1 << max(0, math.floor(math.log2(max(longest / 4, 1))))
    idx = np.indices(shape).reshape(len(shape), -1).T
    level = np.zeros(len(idx), dtype=np.int64)
    step = first_step
    rank = 0
    while step >= 1:
        on = np.all(idx % step == 0, axis=1) & (level == 0)
        level[on] = first_step * 4 - rank  # larger = earlier
        rank += 1
        step //= 2
    order = np.lexsort((np.arange(len(idx)), -level))
    return order


class CentreGrid:
    """The centres of an occlusion sweep and the disks drawn around them.

    Parameters
    ----------
    spatial
        Spatial shape of the image.
    diameter
        Disk / ball diameter in physical units.
    stride
        Distance between centres in physical units, one number or one per axis.
    spacing
        Physical voxel size per axis.
    device
        Where masks are produced.
    """

    def __init__(
        self,
        spatial: Sequence[int],
        diameter: float,
        stride: float | Sequence[float],
        spacing: Sequence[float],
        device: torch.device | str = "cpu",
    ) -> None:
        self.spatial = tuple(int(s) for s in spatial)
        nd = len(self.spatial)
        self.spacing = tuple(float(s) for s in spacing)
        strides = (float(stride),) * nd if np.isscalar(stride) else tuple(map(float, stride))
        if len(strides) != nd:
            raise ValueError(f"stride must be one number or {nd} (one per axis), got {stride!r}")
        extent = max(n * s for n, s in zip(self.spatial, self.spacing, strict=True))
        if not min(self.spacing) <= diameter <= extent:
            raise ValueError(
                f"diameter must be between one voxel ({min(self.spacing):g}) and the image's "
                f"largest extent ({extent:g}) in the units of voxel_spacing, got {diameter:g}"
            )
        steps = []
        for st, sp in zip(strides, self.spacing, strict=True):
            step = round(st / sp)
            if step < 1:
                raise ValueError(
                    f"stride {st:g} is less than one voxel (spacing {sp:g}) along an axis"
                )
            steps.append(step)
        self.steps = tuple(steps)
        self.counts = tuple((n - 1) // st + 1 for n, st in zip(self.spatial, steps, strict=True))
        self.offsets = tuple(
            ((n - 1) - (c - 1) * st) // 2
            for n, c, st in zip(self.spatial, self.counts, steps, strict=True)
        )
        self.radius = diameter / 2.0
        self.device = torch.device(device)
        self.order = torch.from_numpy(coarse_to_fine_order(self.counts)).to(self.device)
        self._axis_pos = [
            torch.arange(n, device=self.device, dtype=torch.float64) * sp
            for n, sp in zip(self.spatial, self.spacing, strict=True)
        ]

    @property
    def n_centres(self) -> int:
        """Number of centres."""
        return math.prod(self.counts)

    def centre_voxels(self, flat: torch.Tensor) -> torch.Tensor:
        """Voxel coordinates ``(n, ndim)`` of centres given by flat grid indices."""
        coords = []
        rem = flat
        for c in reversed(self.counts):
            coords.append(rem % c)
            rem = torch.div(rem, c, rounding_mode="floor")
        grid_idx = torch.stack(coords[::-1], dim=1)
        steps = torch.tensor(self.steps, device=flat.device)
        offs = torch.tensor(self.offsets, device=flat.device)
        return grid_idx * steps + offs

    def occluders(self, flat: torch.Tensor) -> torch.Tensor:
        """Boolean ``(n, *spatial)``: True inside the disk of each centre."""
        centres = self.centre_voxels(flat).double()
        d2 = None
        for ax, pos in enumerate(self._axis_pos):
            c = centres[:, ax : ax + 1] * self.spacing[ax]
            diff = (pos[None, :] - c) ** 2  # (n, size_ax)
            shape = [diff.shape[0]] + [1] * len(self.spatial)
            shape[1 + ax] = diff.shape[1]
            diff = diff.reshape(shape)
            d2 = diff if d2 is None else d2 + diff
        return d2 <= self.radius**2 + 1e-9

    def keep_masks(self, start: int, stop: int, dtype: torch.dtype) -> torch.Tensor:
        """Masks ``(n, 1, *spatial)`` for visits ``start .. stop-1``: 0 in the disk, 1 outside."""
        occ = self.occluders(self.order[start:stop])
        return (~occ).to(dtype).unsqueeze(1)

    def interpolation_matrices(self) -> list[torch.Tensor]:
        """Per axis, the ``(size, count)`` linear interpolation from centres to voxels."""
        mats = []
        for n, c, st, off in zip(self.spatial, self.counts, self.steps, self.offsets, strict=True):
            src = (torch.arange(n, dtype=torch.float64) - off) / st
            mats.append(linear_weights(src, c).to(self.device))
        return mats
