"""Adaptive HDM: a coarse sweep, refined only where the occlusions changed something.

Centres are visited level by level, as in the full sweep's coarse-to-fine order: first
every ``h0``-th centre along each axis, then the centres halfway between, halving the
step down to 1. A centre of a finer level lies halfway between 2, 4 or 8 centres of the
coarser levels along its odd axes (its *parents*). It is evaluated unless every parent
is known and every parent's distance equals the baseline within ``tol``: then occluding
anywhere around it changed nothing, and it gets the mean of its parents (its multilinear
interpolation, the value the full sweep's map would draw between them). Centres at the
grid's edge whose parents fall outside the grid are always evaluated.

A level is planned once the previous one is complete, so the centres evaluated, their
order and the map do not depend on the batch size. The full sweep is the special case
where nothing is skipped. ``h0`` defaults to the largest power of two whose step stays
within the occluder's radius (so neighbouring coarse occluders overlap and a change
cannot hide between them), at most 8.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .accumulate import DistanceGrid
from .mask_batch import MaskBatch

__all__ = ["AdaptivePlan", "AdaptiveSweep", "default_first_step"]


def default_first_step(grid) -> int:
    """Largest power of two ``h`` with ``h`` centre steps ≤ the radius on every axis (≤ 8)."""
    step_len = max(st * sp for st, sp in zip(grid.steps, grid.spacing, strict=True))
    h = 1
    while h < 8 and 2 * h * step_len <= grid.radius and 2 * h < max(grid.counts):
        h *= 2
    return h


class AdaptivePlan:
    """Which centres a grid of ``counts`` evaluates, level by level (numpy, on the CPU).

    Parameters
    ----------
    counts
        Centres per axis.
    baseline
        The unperturbed distance.
    first_step
        Step of the first level, a power of two.
    tol
        A distance within ``tol`` of the baseline counts as "no change".
    """

    def __init__(self, counts, baseline: float, first_step: int, tol: float = 0.0) -> None:
        self.counts = tuple(int(c) for c in counts)
        self.baseline, self.tol = float(baseline), float(tol)
        self.values = np.full(self.counts, np.nan)
        self.known = np.zeros(self.counts, bool)
        self.evaluated = np.zeros(self.counts, bool)
        self.visits: list[int] = []  # flat centre indices, in visit order
        self.step = int(first_step)
        self._pending = 0
        idx = np.indices(self.counts).reshape(len(self.counts), -1)
        self._coords = idx
        first = np.all(idx % self.step == 0, axis=0)
        self._plan(np.flatnonzero(first))

    @property
    def n_planned(self) -> int:
        """Centres planned so far (the visits known)."""
        return len(self.visits)

    @property
    def n_skipped(self) -> int:
        """Centres given their parents' value instead of a model call."""
        return int((self.known & ~self.evaluated).sum())

    def _plan(self, flat: np.ndarray) -> None:
        self.visits.extend(int(i) for i in flat)
        self._pending = flat.size
        if flat.size == 0:
            self._next_level()

    def record(self, flat: np.ndarray, values: np.ndarray) -> None:
        """Distances of evaluated centres; plans the next level when a level is done."""
        self.values.flat[flat] = values
        self.known.flat[flat] = True
        self.evaluated.flat[flat] = True
        self._pending -= len(flat)
        if self._pending == 0:
            self._next_level()

    def _next_level(self) -> None:
        while self.step > 1:
            h = self.step // 2
            self.step = h
            idx = self._coords
            on = np.all(idx % h == 0, axis=0) & ~np.all(idx % (2 * h) == 0, axis=0)
            cand = np.flatnonzero(on)
            evaluate = self._decide(cand, h)
            if evaluate.size:
                self._plan(evaluate)
                return
        self._pending = 0

    def _decide(self, cand: np.ndarray, h: int) -> np.ndarray:
        """Fill the candidates that can be skipped; return the ones to evaluate."""
        coords = self._coords[:, cand]  # (nd, n)
        odd = coords % (2 * h) != 0
        n_odd = odd.sum(axis=0)
        total = np.zeros(cand.size)
        quiet = np.ones(cand.size, bool)
        corners = np.array(np.meshgrid(*[[-1, 1]] * len(self.counts), indexing="ij"))
        corners = corners.reshape(len(self.counts), -1)
        for k in range(corners.shape[1]):
            offs = corners[:, k : k + 1] * h * odd  # only odd axes move
            p = coords + offs
            inside = np.all((p >= 0) & (p < np.asarray(self.counts)[:, None]), axis=0)
            pc = np.clip(p, 0, np.asarray(self.counts)[:, None] - 1)
            pf = np.ravel_multi_index(tuple(pc), self.counts)
            known = inside & self.known.flat[pf]
            vals = self.values.flat[pf]
            quiet &= known & (np.abs(vals - self.baseline) <= self.tol)
            total += np.where(known, vals, 0.0)
        # each distinct parent appears 2**(nd - n_odd) times among the corners
        mean = total / (2.0 ** len(self.counts))
        skip = quiet & (n_odd > 0)
        self.values.flat[cand[skip]] = mean[skip]
        self.known.flat[cand[skip]] = True
        return cand[~skip]

    @property
    def finished(self) -> bool:
        """Every level is planned and recorded."""
        return self.step == 1 and self._pending == 0


class AdaptiveSweep(DistanceGrid):
    """HDM's distance grid with an adaptive plan: masks, limit and sums of the sweep.

    The loop asks :meth:`planned` how many visits are known, gets their masks from
    :meth:`batch` and gives their distances to :meth:`update`. Snapshots and the final
    map are those of :class:`~maskscope._engine.accumulate.DistanceGrid`, with the skipped
    centres at their parents' value; the extra ``grid_evaluated`` marks the centres the
    model saw (1) and the skipped ones (0).
    """

    def __init__(self, grid, baseline: float, tol: float = 0.0, first_step: int | None = None):
        super().__init__(grid, baseline)
        h = first_step or default_first_step(grid)
        self.plan = AdaptivePlan(grid.counts, baseline, h, tol)
        self._sync()

    def planned(self) -> int:
        """Visits known so far (grows as levels complete)."""
        return self.plan.n_planned

    def batch(self, start: int, stop: int, dtype: torch.dtype) -> MaskBatch:
        """Occlusion masks of visits ``start .. stop-1`` with their holes."""
        flat = torch.tensor(self.plan.visits[start:stop], device=self.grid.device)
        rows, voxels = self.grid.occluded(flat)
        n = flat.shape[0]
        keep = torch.ones(n, math.prod(self.grid.spatial), dtype=dtype, device=self.grid.device)
        keep[rows, voxels] = 0
        return MaskBatch(start, keep.reshape(n, 1, *self.grid.spatial), holes=(rows, voxels))

    def update(self, batch: MaskBatch, scores: torch.Tensor) -> None:
        """Record the distances of a batch of visits; plan the next level when one is done."""
        flat = np.asarray(self.plan.visits[batch.start : batch.stop])
        self.plan.record(flat, scores.double().cpu().numpy())
        self.n += len(batch)
        self._sync()

    def _sync(self) -> None:
        """The parent's values and visited flags from the plan (skipped centres included)."""
        known = torch.from_numpy(self.plan.known.ravel()).to(self.values.device)
        vals = torch.from_numpy(self.plan.values.ravel()).to(self.values.device)
        self.visited = known
        self.values = torch.where(known, vals, torch.full_like(vals, math.nan))

    def partial(self):
        """The distance grid's maps, and which centres the model saw."""
        out = super().partial()
        ev = torch.from_numpy(self.plan.evaluated.astype(np.float64)).to(self.values.device)
        out.extras["grid_evaluated"] = ev.reshape(self.grid.counts)
        return out
