"""Crop with context: perturb and run the model on the ROI's box plus a margin only.

For a region of interest in a large volume, only the voxels within the model's receptive
field of the ROI can change the ROI's outputs. A crop-mode run therefore explains the
*window*: the ROI's bounding box grown by a margin of at least the receptive-field radius
on every side (clipped to the image), with its origin and size aligned to the model's
total stride. The masks are the full volume's masks seen through the window
(:class:`WindowMasks`: the RISE grid and its random shifts are laid out in full-volume
coordinates), and the finished map is pasted into a full-size map that is 0 outside the
window (:func:`paste`).

What holds (see the guide "Explain one lesion in a large volume"):

* A fully convolutional model (convolutions, pooling, pointwise layers, batch norm in
  eval mode), a margin ≥ its receptive-field radius and a window aligned to its total
  stride: the ROI's outputs on the window equal those on the full volume for every mask,
  so every score and the map *inside the window* equal the full-volume run's (up to float
  rounding of convolutions on differently sized inputs).
* Outside the window the crop map is 0. The full-volume map is not 0 there: a RISE grid
  cell that straddles the window's edge correlates the mask values outside with those
  inside, so the full map has values up to a cell beyond the window, and noise of mean 0
  farther out. Neither reflects anything the model sees.
* A smaller margin: the model sees zero padding (its own) at the window's edge where the
  full run sees image: outputs within the receptive field of the edge differ.
* Normalisation over the image (instance or layer norm, batch norm in training mode),
  global pooling, attention: every output depends on the whole input; the receptive field
  is the image (:func:`receptive_field` says so) and the crop is an approximation.
* A window whose origin is not a multiple of the total stride shifts the pooling grid:
  a U-Net's outputs then differ everywhere. The window is aligned for this reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .masks import RiseMasks

__all__ = ["ReceptiveFieldError", "WindowMasks", "crop_window", "receptive_field"]


class ReceptiveFieldError(ValueError):
    """The receptive field could not be bounded by probing (global layers, or too small a probe)."""


def _impulse_support(
    model: Callable, x0: torch.Tensor, out0: torch.Tensor, at: tuple[int, ...], rel_tol: float
) -> tuple[int, ...] | None:
    """Per axis, the farthest output voxel changed by a large change of the input at ``at``."""
    x1 = x0.clone()
    index = (slice(None), slice(None), *at)
    x1[index] = x1[index] + 10.0
    with torch.inference_mode():
        out1 = model(x1)
    diff = (out1 - out0).abs().amax(dim=(0, 1)).double()
    peak = float(diff.max())
    if peak == 0.0:
        return None
    where = torch.nonzero(diff > rel_tol * peak)
    return tuple(int((where[:, ax] - at[ax]).abs().max()) for ax in range(where.shape[1]))


def receptive_field(
    model: Callable,
    in_channels: int,
    spatial_dims: int,
    *,
    probe: int | Sequence[int] = 96,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    rel_tol: float = 1e-6,
    whole_axes: Sequence[bool] | None = None,
) -> tuple[int, ...]:
    """Estimate the receptive-field radius per axis by probing ``model`` with impulses.

    The model runs on a random probe image, then on copies with one voxel raised by 10 at
    a few positions near the centre (four consecutive positions along the diagonal, so
    that a strided model is probed at every phase up to 4). The radius along an axis is
    the farthest output voxel whose value changed by more than ``rel_tol`` of the largest
    change. Returns one radius (in voxels) per spatial axis.

    ``whole_axes`` (one flag per axis) marks the axes where the probe is as long as the
    image itself: reaching the probe's edge there only says that a window must span that
    axis, and the radius returned for it is the probe's size.

    Raises
    ------
    ReceptiveFieldError
        When the change reaches the probe's edge on another axis: the outputs depend on
        the whole input (instance / layer norm, global pooling, attention) or on more
        than the probe holds. Then give the margin explicitly.
    """
    size = (int(probe),) * spatial_dims if np.isscalar(probe) else tuple(map(int, probe))
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn((1, in_channels, *size), generator=gen).to(device=device, dtype=dtype)
    with torch.inference_mode():
        out0 = model(x0)
    if out0.ndim != 2 + spatial_dims or tuple(out0.shape[2:]) != size:
        raise ReceptiveFieldError(
            f"probing needs a segmentation model returning (B, K, *spatial) of the input's "
            f"size {size}, got {tuple(out0.shape)}"
        )
    radius = [0] * spatial_dims
    for k in range(4):
        at = tuple(n // 2 - 2 + k for n in size)
        support = _impulse_support(model, x0, out0, at, rel_tol)
        if support is None:
            continue
        radius = [max(r, s) for r, s in zip(radius, support, strict=True)]
    whole = tuple(whole_axes) if whole_axes is not None else (False,) * spatial_dims
    if len(whole) != spatial_dims:
        raise ValueError(
            f"whole_axes needs one flag per spatial axis ({spatial_dims}), got {whole}"
        )
    for ax, (r, n) in enumerate(zip(radius, size, strict=True)):
        if r >= n // 2 - 2:
            if whole[ax]:
                radius[ax] = n  # the whole axis: a window spans it
                continue
            raise ReceptiveFieldError(
                f"an impulse changed the outputs up to the probe's edge along axis {ax} "
                f"(probe {size}): the outputs depend on the whole input (instance or layer "
                "norm, global pooling, attention) or on more than the probe holds; give the "
                "margin explicitly, or measure it with maskscope.receptive_field(model, "
                "in_channels, spatial_dims, probe=<a larger size>)"
            )
    return tuple(radius)


def crop_window(
    region: np.ndarray,
    margin: int | Sequence[int],
    *,
    align: int | Sequence[int] = 1,
) -> tuple[slice, ...]:
    """The ROI's bounding box grown by ``margin``, clipped to the image, aligned.

    The start of every axis is rounded down to a multiple of ``align`` and the size up to
    one (then clipped to the image; at the image's end the start moves down instead, so
    that the size stays a multiple when the image's size is one).
    """
    region = np.asarray(region, dtype=bool)
    nd = region.ndim
    margins = (int(margin),) * nd if np.isscalar(margin) else tuple(map(int, margin))
    aligns = (int(align),) * nd if np.isscalar(align) else tuple(map(int, align))
    if len(margins) != nd or len(aligns) != nd:
        raise ValueError(f"margin and align need one value or {nd} (one per axis)")
    if any(m < 0 for m in margins) or any(a < 1 for a in aligns):
        raise ValueError(f"margin must be >= 0 and align >= 1, got {margins} and {aligns}")
    out = []
    for ax, (m, a) in enumerate(zip(margins, aligns, strict=True)):
        other = tuple(i for i in range(nd) if i != ax)
        hit = np.flatnonzero(region.any(axis=other))
        n = region.shape[ax]
        lo = max(0, int(hit[0]) - m) // a * a
        hi = min(n, int(hit[-1]) + 1 + m)
        size = math.ceil((hi - lo) / a) * a
        stop = min(n, lo + size)
        start = max(0, min(lo, stop - size))
        out.append(slice(start, stop))
    return tuple(out)


class WindowMasks(RiseMasks):
    """The masks of a full volume, seen through a window: ``full_masks[..., window]``.

    Grid, cells and random shifts are those of :class:`RiseMasks` for ``spatial`` (the
    full volume): mask ``i`` here is exactly mask ``i`` of the full volume cropped to
    ``window``, computed without the full-size array.

    Parameters
    ----------
    spatial
        The full volume's spatial shape.
    window
        One slice per spatial axis.
    **kwargs
        As :class:`RiseMasks` (grid, p_keep, seed, device, dtype, reuse_output, sampling).
    """

    def __init__(self, spatial: Sequence[int], window: Sequence[slice], *args, **kwargs):
        super().__init__(spatial, *args, **kwargs)
        self.full_spatial = self.spatial
        self.origin = tuple(int(s.start) for s in window)
        self.spatial = tuple(int(s.stop) - int(s.start) for s in window)
