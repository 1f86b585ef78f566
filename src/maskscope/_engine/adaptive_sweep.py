"""Adaptive HDM: a coarse sweep, refined only where an occlusion can change something.

:class:`AdaptiveSweep` is HDM's distance grid driven by an
:class:`~maskscope._engine.adaptive_plan.AdaptivePlan` (which centres are evaluated, level
by level, and why); this module also computes what the plan's content rules look at:
which occluders hide something (:func:`hiding_centres`), which hide a sizeable part of a
structure (:func:`structure_centres`), and how much each one hides (:func:`hidden_content`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from .accumulate import DistanceGrid
from .adaptive_plan import AdaptivePlan
from .mask_batch import MaskBatch

__all__ = [
    "BUSY",
    "AdaptivePlan",
    "AdaptiveSweep",
    "default_first_step",
    "hidden_content",
    "hiding_centres",
    "structure_centres",
    "structures_and_content",
]

#: Fraction of a level's candidates above which the whole level is evaluated.
BUSY = 0.7

#: :func:`structure_centres`: an occluder that hides at least this share of a structure's
#: voxels is always evaluated.
STRUCTURE_SHARE = 0.02

#: :func:`structure_centres`: structures of fewer voxels than this share of an occluder's
#: are specks (noise), not structures.
SPECK = 0.05


def default_first_step(grid, diameter: float) -> int:
    """Step of the first level: the largest power of two up to 8 that leaves no point
    farther than one ``diameter`` from a first-level centre along an axis (first-level
    centres at most 2 diameters apart), and that leaves a finer level on the longest axis.
    """
    stride = max(st * sp for st, sp in zip(grid.steps, grid.spacing, strict=True))
    h = 1
    while h < 8 and 2 * h < max(grid.counts) and 2 * h * stride <= 2 * diameter + 1e-9:
        h *= 2
    return h


def _centre_chunks(grid, chunk: int = 256):
    """``(start, n, rows, voxels)`` of :meth:`CentreGrid.occluded` for every centre, by chunks."""
    for start in range(0, grid.n_centres, chunk):
        flat = torch.arange(start, min(start + chunk, grid.n_centres), device=grid.device)
        rows, voxels = grid.occluded(flat)
        yield start, flat.numel(), rows, voxels


class _PerCentre:
    """Per centre, the ``"any"`` or ``"mean"`` of ``voxel_values`` (flat) over its disk."""

    def __init__(self, grid, voxel_values: torch.Tensor, reduce: str) -> None:
        self.values, self.reduce = voxel_values, reduce
        self.out = torch.zeros(grid.n_centres, dtype=torch.float64, device=voxel_values.device)

    def add(self, start: int, n: int, rows: torch.Tensor, voxels: torch.Tensor) -> None:
        vals = self.values[voxels].double()
        if self.reduce == "any":
            vals = (vals > 0).double()
        sums = torch.zeros(n, dtype=torch.float64, device=vals.device)
        sums.index_add_(0, rows, vals)
        if self.reduce == "mean":
            sums = sums / torch.bincount(rows, minlength=n).clamp(min=1)
        self.out[start : start + n] = sums

    def result(self) -> np.ndarray:
        return self.out.cpu().numpy()


class _Structures:
    """:func:`structure_centres`' counts of each structure's voxels under each occluder."""

    def __init__(self, grid, x, hidden, content_tol: float, share: float, speck: float) -> None:
        big = _different(x, hidden, content_tol).reshape(grid.spatial).cpu().numpy()
        labels, self.n_struct = ndimage.label(big)
        self.sizes = np.bincount(labels.ravel(), minlength=self.n_struct + 1)
        self.labels = torch.from_numpy(labels.ravel()).to(grid.device)
        self.n_centres, self.share, self.speck = grid.n_centres, share, speck
        self.pairs: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.largest = 0

    def add(self, start: int, n: int, rows: torch.Tensor, voxels: torch.Tensor) -> None:
        self.largest = max(self.largest, int(torch.bincount(rows).max()))
        lab = self.labels[voxels]
        inside = lab > 0
        key = (rows[inside] + start) * (self.n_struct + 1) + lab[inside]
        key, count = torch.unique(key, return_counts=True)
        self.pairs.append(key.cpu().numpy())
        self.counts.append(count.cpu().numpy())

    def result(self) -> np.ndarray:
        key, count = np.concatenate(self.pairs), np.concatenate(self.counts)
        struct = key % (self.n_struct + 1)
        real = self.sizes[struct] >= self.speck * self.largest
        hit = real & (count >= self.share * self.sizes[struct])
        out = np.zeros(self.n_centres, bool)
        out[key[hit] // (self.n_struct + 1)] = True
        return out


def _one_pass(grid, *reducers) -> list[np.ndarray]:
    """Every reducer's result, from one pass of :func:`_centre_chunks`."""
    for chunk in _centre_chunks(grid):
        for reducer in reducers:
            reducer.add(*chunk)
    return [reducer.result() for reducer in reducers]


def hiding_centres(grid, x: torch.Tensor, hidden: torch.Tensor, content_tol: float) -> np.ndarray:
    """Centres whose occluder hides something: the fill differs from the image somewhere.

    ``hidden`` is the fill's value at every voxel ``(1, C, *sp)``; a centre hides
    something when, at some voxel of its disk and some channel, ``|x − hidden|`` exceeds
    ``content_tol`` times the image's range. Returns a flat bool array over the centres.
    """
    (anything,) = _one_pass(grid, _PerCentre(grid, _different(x, hidden, content_tol), "any"))
    return anything > 0


def _different(x: torch.Tensor, hidden: torch.Tensor, content_tol: float) -> torch.Tensor:
    """Bool per voxel (flat): the fill differs from the image by more than ``content_tol``
    times the image's range, in some channel."""
    diff = (x - hidden).abs().amax(dim=1).flatten()  # (V,)
    span = float(x.max() - x.min())
    return diff > content_tol * span if span > 0 else diff > 0


def structure_centres(
    grid,
    x: torch.Tensor,
    hidden: torch.Tensor,
    content_tol: float,
    share: float = STRUCTURE_SHARE,
    speck: float = SPECK,
) -> np.ndarray:
    """Centres whose occluder hides a sizeable part of a structure.

    The structures are the connected regions (face-connected voxels) where the fill differs
    from the image by more than ``content_tol`` times the image's range; those of fewer
    voxels than ``speck`` times the largest occluder's are specks and are left out. A
    centre is returned when its occluder covers at least ``share`` of some structure's
    voxels: a shape on a background, which the model may stop seeing once enough of it is
    hidden. An occluder inside a body many times its size covers a small share of it, and
    is left to the rule on what it hides (:func:`hidden_content`). Returns a flat bool
    array over the centres.
    """
    (out,) = _one_pass(grid, _Structures(grid, x, hidden, content_tol, share, speck))
    return out


def _content(grid, x: torch.Tensor, hidden: torch.Tensor) -> _PerCentre:
    diff = (x - hidden).abs().amax(dim=1).flatten().double()
    span = float(x.max() - x.min())
    return _PerCentre(grid, diff / span if span > 0 else diff, "mean")


def hidden_content(grid, x: torch.Tensor, hidden: torch.Tensor) -> np.ndarray:
    """How much each occluder hides: the mean over its disk of ``|x − hidden|`` (the largest
    over channels), as a fraction of the image's range. A flat float array over the centres.
    """
    (out,) = _one_pass(grid, _content(grid, x, hidden))
    return out


def structures_and_content(
    grid, x: torch.Tensor, hidden: torch.Tensor, content_tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`structure_centres` and :func:`hidden_content` from one pass over the centres
    (the occluders of a large volume are the costly part of planning)."""
    must, content = _one_pass(
        grid,
        _Structures(grid, x, hidden, content_tol, STRUCTURE_SHARE, SPECK),
        _content(grid, x, hidden),
    )
    return must, content


class AdaptiveSweep(DistanceGrid):
    """HDM's distance grid with an adaptive plan: masks, limit and sums of the sweep.

    The loop asks :meth:`planned` how many visits are known, gets their masks from
    :meth:`batch` and gives their distances to :meth:`update`. Snapshots and the final
    map are those of :class:`~maskscope._engine.accumulate.DistanceGrid`, with the skipped
    centres at their parents' interpolation, and so are the centres not yet known while the
    sweep runs (:meth:`~maskscope._engine.adaptive_plan.AdaptivePlan.filled`); the extra
    ``grid_evaluated`` marks the centres the model saw (1) and the skipped ones (0), and
    ``grid_reasons`` why each was evaluated (the sum of the
    :data:`~maskscope._engine.adaptive_plan.REASONS` flags; 0: skipped or not yet planned).
    """

    #: Split runs give ranges of a fixed list of centres; this sweep's list grows level
    #: by level from the distances found.
    splittable = False

    def __init__(
        self,
        grid,
        baseline: float,
        tol: float = 0.0,
        first_step: int = 8,
        must: np.ndarray | None = None,
        reach: int = 1,
        content: np.ndarray | None = None,
        content_tol: float = 0.0,
        busy: float = BUSY,
    ) -> None:
        super().__init__(grid, baseline)
        self.plan = AdaptivePlan(
            grid.counts,
            first_step,
            tol,
            reach=reach,
            must=must,
            content=content,
            content_tol=content_tol,
            busy=busy,
        )
        self._sync()

    def planned(self) -> int:
        """Visits known so far (grows as levels complete)."""
        return self.plan.n_planned

    def batch(self, start: int, stop: int, dtype: torch.dtype) -> MaskBatch:
        """Occlusion masks of visits ``start .. stop-1`` with their holes."""
        return self.masks_of(self.plan.visits[start:stop], start, dtype)

    def masks_of(self, centres: list[int], start: int, dtype: torch.dtype) -> MaskBatch:
        """Occlusion masks of the flat ``centres``, with their holes, as batch ``start``."""
        flat = torch.tensor(centres, dtype=torch.int64, device=self.grid.device)
        rows, voxels = self.grid.occluded(flat)
        n = flat.shape[0]
        keep = torch.ones(n, math.prod(self.grid.spatial), dtype=dtype, device=self.grid.device)
        keep[rows, voxels] = 0
        return MaskBatch(start, keep.reshape(n, 1, *self.grid.spatial), holes=(rows, voxels))

    def update(self, batch: MaskBatch, scores: torch.Tensor) -> None:
        """Record the distances of a batch of visits; plan the next level when one is done."""
        flat = np.asarray(self.plan.visits[batch.start : batch.stop])
        self.record(flat, scores.double().cpu().numpy())

    def record(self, flat: np.ndarray, values: np.ndarray) -> None:
        """Record the distances of the flat centres ``flat`` (visits of this plan)."""
        self.plan.record(flat, values)
        self.n += len(flat)
        self._sync()

    def _sync(self) -> None:
        """The parent's values and visited flags from the plan (skipped centres included)."""
        known = torch.from_numpy(self.plan.known.ravel()).to(self.values.device)
        vals = torch.from_numpy(self.plan.values.ravel()).to(self.values.device)
        self.visited = known
        self.values = torch.where(known, vals, torch.full_like(vals, math.nan))

    def _filled(self) -> torch.Tensor:
        """Known centres as they are, the others at their interpolation (baseline: none known)."""
        vals = self.plan.filled(fallback=self.baseline)
        return torch.from_numpy(vals).to(self.values.device)

    def partial(self):
        """The distance grid's maps, and which centres the model saw."""
        out = super().partial()
        ev = torch.from_numpy(self.plan.evaluated.astype(np.float64)).to(self.values.device)
        out.extras["grid_evaluated"] = ev.reshape(self.grid.counts)
        why = torch.from_numpy(self.plan.reasons.astype(np.float64)).to(self.values.device)
        out.extras["grid_reasons"] = why.reshape(self.grid.counts)
        return out
