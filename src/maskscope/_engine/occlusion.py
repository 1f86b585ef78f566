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

from .mask_batch import MaskBatch
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
        for axis, (st, sp) in enumerate(zip(strides, self.spacing, strict=True)):
            step = round(st / sp)
            if step < 1:
                raise ValueError(
                    f"stride {st:g} is less than one voxel along spatial axis {axis} (of "
                    f"{nd}; its voxel_spacing is {sp:g}): give a stride of at least {sp:g}"
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
        # inside test: squared physical distance <= _threshold; no voxel farther than
        # _half[ax] voxels from the centre along an axis passes it (clipped to the axis)
        self._threshold = self.radius**2 + 1e-9
        self._half = tuple(
            min(n, math.ceil(math.sqrt(self._threshold) / sp) + 1)
            for n, sp in zip(self.spatial, self.spacing, strict=True)
        )
        self._rel = [torch.arange(-h, h + 1, device=self.device) for h in self._half]
        self._strides = tuple(math.prod(self.spatial[ax + 1 :]) for ax in range(nd))
        self._stencil_cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

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

    def _stencil(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The offsets that can lie inside a ball, the ones to test exactly, their flat offsets.

        An offset ``k`` (voxels per axis, in box order) whose squared physical length
        ``Σ (k·s)²`` is within ``band`` of the threshold is *unsure*: the whole-image
        arithmetic ``Σ (i·s − c·s)²`` rounds differently and may fall on either side (see
        the last case of tests/hdm/test_occlusion_masks.py). ``band`` is far above that
        rounding (``nd · 2⁻⁵¹ · (R·E + 2R²)`` for a radius ``R`` and an image extent ``E``),
        so every other offset is inside or outside every ball alike.
        """
        if self._stencil_cache is not None:
            return self._stencil_cache
        nd = len(self.spatial)
        d2 = None
        for ax, (sp, rel) in enumerate(zip(self.spacing, self._rel, strict=True)):
            shape = [1] * nd
            shape[ax] = rel.numel()
            part = ((rel.double() * sp) ** 2).reshape(shape)
            d2 = part if d2 is None else d2 + part
        extent = max(n * s for n, s in zip(self.spatial, self.spacing, strict=True))
        band = 1e-12 * nd * (extent + self.radius + 1.0) * (self.radius + 1.0)
        candidate = d2 <= self._threshold + band
        grids = torch.meshgrid(*self._rel, indexing="ij")
        offsets = torch.stack([g[candidate] for g in grids], dim=1)  # (m, nd), box order
        unsure = (d2[candidate] > self._threshold - band).nonzero().squeeze(1)
        strides = torch.tensor(self._strides, device=self.device)
        self._stencil_cache = (offsets, unsure, (offsets * strides).sum(dim=1))
        return self._stencil_cache

    def occluded(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every voxel inside the disks of the centres ``flat``, as two index tensors.

        The result of a test over the whole image in float64, the per-axis squared offsets
        ``(i * s - c * s) ** 2`` summed in axis order and compared with
        ``radius**2 + 1e-9``, computed from the ball's stencil (:meth:`_stencil`): its
        offsets that are inside every ball are placed at each centre, the few whose test
        could round either way are tested with that very arithmetic, and only centres
        whose ball crosses the image's border check the bounds.

        Returns
        -------
        rows, voxels
            Position of the centre in ``flat`` and flat voxel index, one entry per voxel
            inside a disk, ordered by centre, then by voxel index.
        """
        centres = self.centre_voxels(flat)
        offsets, unsure, flat_offsets = self._stencil()
        size = torch.tensor(self.spatial, device=centres.device)
        strides = torch.tensor(self._strides, device=centres.device)
        lin = (centres * strides).sum(dim=1, keepdim=True) + flat_offsets[None]
        lo, hi = offsets.min(dim=0).values, offsets.max(dim=0).values
        inner = ((centres + lo >= 0) & (centres + hi < size)).all(dim=1)
        valid = torch.ones(lin.shape, dtype=torch.bool, device=centres.device)
        edge = (~inner).nonzero().squeeze(1)
        if edge.numel():
            idx = centres[edge][:, None, :] + offsets[None]
            valid[edge] = ((idx >= 0) & (idx < size)).all(dim=2)
        if unsure.numel():
            d2 = None
            for ax, sp in enumerate(self.spacing):
                c = centres[:, ax : ax + 1]
                diff = ((c + offsets[unsure, ax][None]).double() * sp - c.double() * sp) ** 2
                d2 = diff if d2 is None else d2 + diff
            valid[:, unsure] &= d2 <= self._threshold
        rows = torch.arange(centres.shape[0], device=centres.device)[:, None].expand_as(valid)
        return rows[valid], lin[valid]

    def occluders(self, flat: torch.Tensor) -> torch.Tensor:
        """Boolean ``(n, *spatial)``: True inside the disk of each centre."""
        rows, voxels = self.occluded(flat)
        out = torch.zeros(flat.shape[0], math.prod(self.spatial), dtype=torch.bool)
        out = out.to(self.device)
        out[rows, voxels] = True
        return out.reshape(flat.shape[0], *self.spatial)

    def keep_masks(self, start: int, stop: int, dtype: torch.dtype) -> torch.Tensor:
        """Masks ``(n, 1, *spatial)`` for visits ``start .. stop-1``: 0 in the disk, 1 outside."""
        return self.keep_masks_and_holes(start, stop, dtype)[0]

    def keep_masks_and_holes(
        self, start: int, stop: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`keep_masks` and where their zeros are (``rows, voxels`` of :meth:`occluded`)."""
        flat = self.order[start:stop]
        rows, voxels = self.occluded(flat)
        n = flat.shape[0]
        keep = torch.ones(n, math.prod(self.spatial), dtype=dtype, device=self.device)
        keep[rows, voxels] = 0
        return keep.reshape(n, 1, *self.spatial), rows, voxels

    def batch(self, start: int, stop: int, dtype: torch.dtype) -> MaskBatch:
        """:meth:`keep_masks` of visits ``start .. stop-1`` with their holes."""
        masks, rows, voxels = self.keep_masks_and_holes(start, stop, dtype)
        return MaskBatch(start, masks, holes=(rows, voxels))

    def interpolation_matrices(self) -> list[torch.Tensor]:
        """Per axis, the ``(size, count)`` linear interpolation from centres to voxels."""
        mats = []
        for n, c, st, off in zip(self.spatial, self.counts, self.steps, self.offsets, strict=True):
            src = (torch.arange(n, dtype=torch.float64) - off) / st
            mats.append(linear_weights(src, c).to(self.device))
        return mats
