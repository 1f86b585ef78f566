"""Distances between segmentations, batched on the device: Hausdorff, HD95, 1 − Dice.

The Hausdorff distance here is the geometric one, between the *sets of foreground voxel
centres* of two segmentations, measured in physical units (``voxel_spacing``):

``HD(P, R) = max( max_{p∈P} d(p, R), max_{r∈R} d(r, P) )``

* ``d(p, R)`` for every voxel comes from one exact Euclidean distance transform of the
  reference (scipy), computed once per reference and kept on the device.
* ``d(r, P)`` only matters for ``r ∈ R \\ P`` (it is 0 elsewhere), and the nearest voxel of
  ``P`` to a voxel outside ``P`` is always a *surface* voxel of ``P`` (one with a face
  neighbour outside ``P``: a step towards the query point would otherwise be closer). So it
  is a chunked nearest-neighbour query between two small point sets.

HD95 takes the 95th percentile (linear interpolation, as ``numpy.percentile``) of each
directed set of distances and returns the larger one.

Empty sets: a reference with no foreground is rejected before any work starts; a
prediction with no foreground (the occlusion erased the segment) has, by definition, the
largest distance any two voxels of the image can have: its diagonal, in physical units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "DISTANCES",
    "Distance",
    "SkipUnchanged",
    "diagonal",
    "directed_distances_to",
    "make_distance",
    "surface",
]

#: Signature of a distance: ``pred (B, *sp) bool -> (B,)`` against a fixed reference.
Distance = Callable[[torch.Tensor], torch.Tensor]

#: Names of the built-in distances, as listed by the GUIs.
DISTANCES = ("hausdorff", "hd95", "dice")

_QUERY_CHUNK = 4096


def diagonal(spatial: Sequence[int], spacing: Sequence[float]) -> float:
    """Largest distance between two voxel centres of the image, in physical units."""
    return math.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(spatial, spacing, strict=True)))


def surface(fg: torch.Tensor) -> torch.Tensor:
    """Foreground voxels with a face neighbour outside the foreground, batched.

    ``fg`` is ``(B, *sp)`` bool; the outside of the image counts as foreground (a voxel on
    the image border is not nearest to anything inside the image for that reason alone).
    """
    nd = fg.ndim - 1
    f = fg.new_ones((fg.shape[0], *(n + 2 for n in fg.shape[1:])))
    f[(slice(None),) + (slice(1, -1),) * nd] = fg
    interior = fg.clone()
    for ax in range(1, nd + 1):
        interior &= _shifted(f, ax, 0, fg)
        interior &= _shifted(f, ax, 2, fg)
    return fg & ~interior


def _shifted(padded: torch.Tensor, axis: int, offset: int, like: torch.Tensor) -> torch.Tensor:
    """The padded array shifted by ``offset - 1`` along ``axis``, cropped to ``like``."""
    out = padded
    for ax in range(1, like.ndim):
        start = offset if ax == axis else 1
        out = out.narrow(ax, start, like.shape[ax])
    return out


def _coords(index: torch.Tensor, spatial: Sequence[int], spacing: torch.Tensor) -> torch.Tensor:
    """Physical coordinates ``(n, ndim)`` of flat voxel indices."""
    coords = []
    rem = index
    for n in reversed(spatial):
        coords.append(rem % n)
        rem = torch.div(rem, n, rounding_mode="floor")
    return torch.stack(coords[::-1], dim=1).to(spacing.dtype) * spacing


def directed_distances_to(
    queries: torch.Tensor, targets: torch.Tensor, chunk: int = _QUERY_CHUNK
) -> torch.Tensor:
    """For each query point, the distance to the nearest target point (chunked cdist)."""
    out = []
    for i in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[i : i + chunk], targets)
        out.append(d.amin(dim=1))
    return torch.cat(out) if out else queries.new_zeros(0)


class _Hausdorff:
    """Hausdorff or percentile-Hausdorff distances of a batch of predictions to a reference."""

    def __init__(
        self, reference: torch.Tensor, spacing: Sequence[float], percentile: float | None
    ) -> None:
        ref = reference.bool()
        if not ref.any():
            raise ValueError("the reference segmentation is empty: no distance is defined")
        self.spatial = tuple(ref.shape)
        self.device = ref.device
        self.percentile = percentile
        self.spacing = torch.tensor(spacing, dtype=torch.float64, device=self.device)
        self.ref_flat = ref.flatten()
        self.n_ref = int(self.ref_flat.sum())
        from scipy import ndimage  # imported when used: `import maskscope` stays light

        dt = ndimage.distance_transform_edt(~ref.cpu().numpy(), sampling=tuple(spacing))
        self.dt_ref = torch.from_numpy(np.asarray(dt, dtype=np.float64)).to(self.device).flatten()
        self.empty_value = diagonal(self.spatial, spacing)

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        b = pred.shape[0]
        flat = pred.bool().reshape(b, -1)
        out = torch.full((b,), self.empty_value, dtype=torch.float64, device=self.device)
        rows = flat.any(dim=1).nonzero().squeeze(1)
        if rows.numel() == 0:
            return out
        if rows.numel() < b:
            flat = flat[rows]
        # surfaces of the non-empty predictions only, each needed by its own row alone
        surf = surface(flat.reshape(-1, *self.spatial)).reshape(flat.shape[0], -1)
        for j, i in enumerate(rows.tolist()):
            out[i] = self._one(flat[j], surf[j])
        return out

    def _one(self, flat: torch.Tensor, surf: torch.Tensor) -> torch.Tensor:
        """The distance of one non-empty prediction (flat bool) with its surface."""
        # prediction → reference: the reference's distance transform at P's voxels
        d_pr = self.dt_ref[flat]
        # reference → prediction: 0 inside P, nearest surface voxel of P elsewhere
        outside = self.ref_flat > flat  # R and not P
        q_idx = outside.nonzero().squeeze(1)
        if q_idx.numel():
            s_idx = surf.nonzero().squeeze(1)
            q = _coords(q_idx, self.spatial, self.spacing)
            s = _coords(s_idx, self.spatial, self.spacing)
            d_out = directed_distances_to(q, s)
        else:
            d_out = self.dt_ref.new_zeros(0)
        if self.percentile is None:
            far = d_out.max() if d_out.numel() else d_pr.new_zeros(())
            return torch.maximum(d_pr.max(), far)
        n_in = self.n_ref - q_idx.numel()  # |R and P|
        d_rp = torch.cat([d_out, d_out.new_zeros(n_in)])
        q = self.percentile / 100.0
        return torch.maximum(_quantile(d_pr, q), _quantile(d_rp, q))


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation quantile (numpy's default), without torch.quantile's size limit."""
    v = values.sort().values
    pos = q * (v.numel() - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, v.numel() - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


class _OneMinusDice:
    def __init__(self, reference: torch.Tensor) -> None:
        self.ref = reference.bool().flatten()
        self.n_ref = int(self.ref.sum())

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        flat = pred.bool().reshape(pred.shape[0], -1)
        inter = (flat & self.ref).sum(dim=1).double()
        denom = flat.sum(dim=1).double() + self.n_ref
        dice = torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))
        return 1.0 - dice


class SkipUnchanged:
    """A distance that reuses the distance of a known prediction for every copy of it.

    Most occlusions leave the segmentation exactly as it was: those predictions get the
    known prediction's distance, computed once by the wrapped distance itself, and only the
    others are passed on. The wrapped distance must score each prediction on its own
    (as the built-in ones do), so that the result is the one it would give for the batch.

    Parameters
    ----------
    distance
        The distance to wrap.
    known
        Boolean prediction ``(*sp)``, usually the unperturbed one.

    Attributes
    ----------
    value
        ``distance`` of ``known`` (a float64 scalar tensor).
    n_computed
        How many predictions were passed on to ``distance`` so far.
    """

    def __init__(self, distance: Distance, known: torch.Tensor) -> None:
        self.distance = distance
        self.known = known.bool().flatten()
        self.value = distance(known.bool()[None])[0].double()
        self.n_computed = 0

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        b = pred.shape[0]
        changed = _rows_differ(pred.bool().reshape(b, -1), self.known)
        out = self.value.expand(b).clone()
        rows = changed.nonzero().squeeze(1)
        if rows.numel():
            out[rows] = self.distance(pred if rows.numel() == b else pred[rows]).double()
            self.n_computed += rows.numel()
        return out


def _rows_differ(flat: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``(flat != known).any(dim=1)`` for bool ``(B, N)`` and ``(N,)``, 8 voxels at a time."""
    n = known.numel()
    for wide, size in ((torch.int64, 8), (torch.int32, 4)):
        if n % size == 0:
            try:
                rows = flat.contiguous().view(torch.uint8).view(wide)
                ref = known.contiguous().view(torch.uint8).view(wide)
            except RuntimeError:  # storage offset not aligned: compare voxel by voxel
                break
            return (rows != ref).any(dim=1)
    return (flat != known).any(dim=1)


def make_distance(
    name: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: torch.Tensor,
    spacing: Sequence[float],
) -> Distance:
    """A distance to a fixed reference foreground.

    Parameters
    ----------
    name
        ``"hausdorff"``, ``"hd95"``, ``"dice"`` (1 − Dice), or a callable
        ``(pred (B, *sp) bool, ref (*sp) bool) -> (B,)``.
    reference
        Boolean reference foreground ``(*sp)`` on the device.
    spacing
        Physical voxel size per axis.
    """
    ref = reference.bool()
    if callable(name):
        user = name

        def distance(pred: torch.Tensor) -> torch.Tensor:
            d = user(pred, ref)
            if not torch.is_tensor(d) or tuple(d.shape) != (pred.shape[0],):
                got = tuple(d.shape) if torch.is_tensor(d) else type(d).__name__
                raise ValueError(f"distance must return a ({pred.shape[0]},) tensor, got {got}")
            return d.double()

        return distance
    if name == "hausdorff":
        return _Hausdorff(ref, spacing, None)
    if name == "hd95":
        return _Hausdorff(ref, spacing, 95.0)
    if name == "dice":
        return _OneMinusDice(ref)
    valid = ", ".join(repr(d) for d in DISTANCES)
    raise ValueError(f"distance must be one of {valid} or a callable, got {name!r}")
