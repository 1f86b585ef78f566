"""The exact Hausdorff and percentile-Hausdorff distances to a fixed reference, cheap in 3D.

``HD(P, R) = max( max_{p∈P} d(p, R), max_{r∈R} d(r, P) )`` between the foreground voxel
centres of a prediction ``P`` and the reference ``R``, in physical units.

* ``d(p, R)`` is a lookup: the exact Euclidean distance transform of the reference
  (scipy, with the voxel spacing) is computed once per reference. It is 0 on
  ``R``, so only the voxels of ``P \\ R`` have a value to sort for a percentile.
* ``d(r, P)`` is 0 on ``P`` and matters only for ``r ∈ R \\ P``, usually the few voxels an
  occluder removed from the segment. Only the queries' bounding box grown by a margin is
  searched, by an exact distance transform of ``P`` inside that box (scipy, with the
  spacing): a query whose nearest voxel of ``P`` there is no farther than the box's faces
  (the faces inside the image; nothing lies beyond the image's own border) has its exact
  distance. The others are searched again with a margin twice as large, until the box
  covers the image. The first margin is one voxel: a query inside a hole an occluder cut
  is usually no farther from the hole's rim than from the faces of the hole's own bounding box.
  Small boxes (few queries times surface voxels) are searched pair by pair.
* For a percentile, ``d(r, P)`` is not searched at all when so few reference voxels are
  missing that the percentile falls among the zeros.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["Hausdorff", "diagonal", "quantile_with_zeros", "surface"]


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


class Hausdorff:
    """Hausdorff (``percentile=None``) or percentile-Hausdorff distances to a reference.

    Parameters
    ----------
    reference
        Boolean reference foreground ``(*sp)`` on the device (not empty).
    spacing
        Physical voxel size per axis.
    percentile
        None for the Hausdorff distance, or e.g. 95 for HD95 (linear interpolation of each
        directed set of distances, as ``numpy.percentile``; the larger of the two).

    Attributes
    ----------
    n_searches
        Box searches run so far (one per prediction that misses reference voxels, more
        when a margin had to grow).
    """

    def __init__(
        self, reference: torch.Tensor, spacing: Sequence[float], percentile: float | None
    ) -> None:
        ref = reference.bool()
        if not ref.any():
            raise ValueError("the reference segmentation is empty: no distance is defined")
        self.spatial = tuple(ref.shape)
        self.device = ref.device
        self.percentile = percentile
        self.spacing_list = [float(s) for s in spacing]
        self.ref_flat = ref.flatten()
        self.n_ref = int(self.ref_flat.sum())
        from scipy import ndimage  # imported when used: `import maskscope` stays light

        dt = ndimage.distance_transform_edt(~ref.cpu().numpy(), sampling=tuple(spacing))
        self.dt_np = np.asarray(dt, dtype=np.float64).ravel()
        self.empty_value = diagonal(self.spatial, spacing)
        self.n_searches = 0

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        """Distances ``(B,)`` float64 of a batch of predictions ``(B, *sp)``."""
        b = pred.shape[0]
        flat = pred.bool().reshape(b, -1)
        values = np.full(b, self.empty_value, dtype=np.float64)
        rows = flat.any(dim=1).nonzero().squeeze(1)
        if rows.numel():
            if rows.numel() < b:
                flat = flat[rows]
            ref = self.ref_flat
            missing = (ref & ~flat).cpu().numpy()  # R and not P, per prediction
            extra = (flat & ~ref).cpu().numpy()  # P and not R: the only positive d(p, R)
            fgs = flat.reshape(-1, *self.spatial).cpu().numpy()
            sizes = flat.sum(dim=1).tolist()
            for j, i in enumerate(rows.tolist()):
                d_pr = self.dt_np[np.flatnonzero(extra[j])]
                q_idx = np.flatnonzero(missing[j])
                if self._rp_is_zero(q_idx.size):
                    q_idx = q_idx[:0]
                d_rp = self._to_prediction(fgs[j], q_idx)
                values[i] = self._combine(d_pr, sizes[j] - d_pr.size, d_rp)
        return torch.from_numpy(values).to(self.device)

    def _rp_is_zero(self, n_missing: int) -> bool:
        """The percentile of ``d(r, P)`` over the reference is 0 whatever the distances: both
        values it interpolates between are among the ``n_ref − n_missing`` zeros."""
        if self.percentile is None or n_missing == 0:
            return False
        lo = math.floor(self.percentile / 100.0 * (self.n_ref - 1))
        return min(lo + 1, self.n_ref - 1) < self.n_ref - n_missing

    def _combine(self, d_pr: np.ndarray, n_shared: int, d_rp: np.ndarray) -> float:
        """The distance from the positive directed distances (``n_shared`` = ``|P ∩ R|``)."""
        if self.percentile is None:
            return float(max(d_pr.max(initial=0.0), d_rp.max(initial=0.0)))
        q = self.percentile / 100.0
        a = quantile_with_zeros(d_pr, n_shared, q)
        r = quantile_with_zeros(d_rp, self.n_ref - d_rp.size, q)
        return max(a, r)

    def _to_prediction(self, fg: np.ndarray, q_idx: np.ndarray) -> np.ndarray:
        """``d(r, P)`` for the reference voxels ``q_idx`` (flat) outside the prediction ``fg``.

        ``fg`` is the prediction ``(*sp)`` as a numpy bool array on the CPU.
        """
        if q_idx.size == 0:
            return np.zeros(0)
        queries = np.stack(np.unravel_index(q_idx, self.spatial), axis=1)
        result = np.empty(queries.shape[0], dtype=np.float64)
        todo = np.arange(queries.shape[0])
        spacing = np.asarray(self.spacing_list)
        shape = np.asarray(self.spatial)
        margin = float(spacing.max())
        while True:
            self.n_searches += 1
            q = queries[todo]
            steps = np.ceil(margin / spacing).astype(np.int64)
            blo = np.maximum(q.min(axis=0) - steps, 0)
            bhi = np.minimum(q.max(axis=0) + steps, shape - 1)
            d = _box_distances(fg, q, blo, bhi, spacing)
            ok = d <= _bound(q, blo, bhi, shape, spacing)
            result[todo[ok]] = d[ok]
            if ok.all():
                return result
            todo = todo[~ok]
            margin *= 2


#: Pairs (queries × surface voxels) per voxel of the box up to which the box is searched
#: pair by pair; above, by a distance transform (a pair costs about an eighth of a voxel).
PAIRWISE_LIMIT = 8


def _box_distances(
    fg: np.ndarray, q: np.ndarray, blo: np.ndarray, bhi: np.ndarray, spacing: np.ndarray
) -> np.ndarray:
    """Distance from each query to the nearest voxel of ``fg`` inside the box (inf: none).

    The nearest voxel of ``fg`` in the box to a query outside ``fg`` is a surface voxel of
    ``fg`` there (a voxel with a face neighbour in the box outside ``fg``): the step from it
    towards the query stays in the box and would be closer. So only those are searched,
    pair by pair, with the arithmetic of scipy's exact distance transform (per-axis
    differences times the spacing, squared and summed in axis order, then the root): the
    same values bit for bit. A box with more than :data:`PAIRWISE_LIMIT` pairs per voxel
    gets that distance transform itself.
    """
    box = tuple(slice(a, b + 1) for a, b in zip(blo.tolist(), bhi.tolist(), strict=True))
    crop = fg[box]
    if not crop.any():
        return np.full(q.shape[0], math.inf)
    local = q - blo
    edge = _surface_np(crop)
    pts = np.argwhere(edge)
    if pts.shape[0] * local.shape[0] > PAIRWISE_LIMIT * crop.size:
        from scipy import ndimage

        dt = ndimage.distance_transform_edt(~crop, sampling=tuple(spacing.tolist()))
        return dt[tuple(local.T)]
    d2 = None
    for ax in range(local.shape[1]):
        diff = (pts[None, :, ax] - local[:, None, ax]).astype(np.float64) * spacing[ax]
        d2 = diff * diff if d2 is None else d2 + diff * diff
    return np.sqrt(d2.min(axis=1))


def _surface_np(fg: np.ndarray) -> np.ndarray:
    """Voxels of ``fg`` with a face neighbour (inside the array) outside ``fg``."""
    out = np.zeros_like(fg)
    for ax in range(fg.ndim):
        lo = [slice(None)] * fg.ndim
        hi = [slice(None)] * fg.ndim
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        out[lo] |= fg[lo] & ~fg[hi]
        out[hi] |= fg[hi] & ~fg[lo]
    return out


def _bound(
    q: np.ndarray, blo: np.ndarray, bhi: np.ndarray, shape: np.ndarray, spacing: np.ndarray
) -> np.ndarray:
    """Distance from each query to the nearest voxel outside the box (inf: none).

    A voxel beyond the box's low face along an axis has an index of ``blo - 1`` at most,
    so it is at least ``(q - blo + 1) * spacing`` away; faces on the image's border have
    nothing beyond them.
    """
    low = np.where(blo > 0, (q - blo + 1) * spacing, math.inf)
    high = np.where(bhi < shape - 1, (bhi - q + 1) * spacing, math.inf)
    return np.minimum(low.min(axis=1), high.min(axis=1))


def quantile_with_zeros(values: np.ndarray, n_zeros: int, q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of ``values`` and ``n_zeros`` zeros.

    ``values`` are all positive; only they are sorted.
    """
    n = values.size + n_zeros
    if values.size == 0:
        return 0.0
    v = np.sort(values)
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)

    def at(k: int) -> float:
        return float(v[k - n_zeros]) if k >= n_zeros else 0.0

    return at(lo) + (at(hi) - at(lo)) * (pos - lo)
