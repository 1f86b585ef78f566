"""Distances between segmentations, batched on the device: Hausdorff, HD95, 1 − Dice.

The Hausdorff distance here is the geometric one, between the *sets of foreground voxel
centres* of two segmentations, measured in physical units (``voxel_spacing``):

``HD(P, R) = max( max_{p∈P} d(p, R), max_{r∈R} d(r, P) )``

* ``d(p, R)`` for every voxel comes from one exact Euclidean distance transform of the
  reference (scipy), computed once per reference.
* ``d(r, P)`` only matters for ``r ∈ R \\ P`` (it is 0 elsewhere), and the nearest voxel of
  ``P`` to a voxel outside ``P`` is always a *surface* voxel of ``P`` (one with a face
  neighbour outside ``P``: a step towards the query point would otherwise be closer). Only
  the surface near those voxels is searched (see :mod:`maskscope._engine.hausdorff`).

HD95 takes the 95th percentile (linear interpolation, as ``numpy.percentile``) of each
directed set of distances and returns the larger one.

Empty sets: a reference with no foreground is rejected before any work starts; a
prediction with no foreground (the occlusion erased the segment) has, by definition, the
largest distance any two voxels of the image can have: its diagonal, in physical units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .hausdorff import Hausdorff, diagonal, surface

__all__ = [
    "DISTANCES",
    "Distance",
    "SkipUnchanged",
    "diagonal",
    "make_distance",
    "surface",
]

#: Signature of a distance: ``pred (B, *sp) bool -> (B,)`` against a fixed reference.
Distance = Callable[[torch.Tensor], torch.Tensor]

#: Names of the built-in distances, as listed by the GUIs.
DISTANCES = ("hausdorff", "hd95", "dice")


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
        return Hausdorff(ref, spacing, None)
    if name == "hd95":
        return Hausdorff(ref, spacing, 95.0)
    if name == "dice":
        return _OneMinusDice(ref)
    valid = ", ".join(repr(d) for d in DISTANCES)
    raise ValueError(f"distance must be one of {valid} or a callable, got {name!r}")
