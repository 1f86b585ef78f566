"""Adaptive HDM: a coarse sweep, refined only where an occlusion can change something.

Centres are visited level by level, as in the full sweep's coarse-to-fine order: first
every ``h0``-th centre along each axis (``h0`` = 8 by default), then the centres halfway
between, halving the step down to 1. A centre of a finer level lies halfway between 2, 4
or 8 centres of the coarser levels along its odd axes (its *parents*). It is evaluated

* when its occluder hides something (``must``: the fill differs from the image by more
  than a fraction of the image's range somewhere in the disk; see
  :func:`hiding_centres`), or
* when a parent is missing (the grid's edge) or a coarser centre within ``reach`` cells
  changed the distance (differs from the baseline by more than ``tol``).

Otherwise occluding around it hides only what the fill already is, and nothing near it
changed the output: it gets the mean of its parents (its multilinear interpolation, the
value the full sweep's map draws between them). On the bundled 2D sample this is the
full sweep's map within 1 (Hausdorff units, of a range of 141) at 5 of 2304 centres, with
3.1× fewer model calls (``benchmarks/hdm_adaptive.py``).

A level is planned once the previous one is complete, so the centres evaluated, their
order and the map do not depend on the batch size. The full sweep is the special case
where nothing is skipped.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .accumulate import DistanceGrid
from .mask_batch import MaskBatch

__all__ = ["AdaptivePlan", "AdaptiveSweep", "default_first_step", "hiding_centres"]


def default_first_step(grid) -> int:
    """Step of the first level: 8, or less on a grid with fewer than 17 centres per axis."""
    h = 1
    while h < 8 and 2 * h < max(grid.counts):
        h *= 2
    return h


def hiding_centres(grid, x: torch.Tensor, hidden: torch.Tensor, content_tol: float) -> np.ndarray:
    """Centres whose occluder hides something: the fill differs from the image somewhere.

    ``hidden`` is the fill's value at every voxel ``(1, C, *sp)``; a centre hides
    something when, at some voxel of its disk and some channel, ``|x − hidden|`` exceeds
    ``content_tol`` times the image's range. Returns a flat bool array over the centres.
    """
    diff = (x - hidden).abs().amax(dim=1).flatten()  # (V,)
    span = float(x.max() - x.min())
    big = diff > content_tol * span if span > 0 else diff > 0
    out = torch.zeros(grid.n_centres, dtype=torch.bool, device=big.device)
    chunk = 256
    for start in range(0, grid.n_centres, chunk):
        flat = torch.arange(start, min(start + chunk, grid.n_centres), device=grid.device)
        rows, voxels = grid.occluded(flat)
        hit = torch.zeros(flat.numel(), dtype=torch.bool, device=big.device)
        hit[rows[big[voxels]]] = True
        out[start : start + flat.numel()] = hit
    return out.cpu().numpy()


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

    def __init__(
        self,
        counts,
        baseline: float,
        first_step: int,
        tol: float = 0.0,
        reach: int = 1,
        must: np.ndarray | None = None,
    ) -> None:
        self.counts = tuple(int(c) for c in counts)
        self.reach = int(reach)
        self.must = np.zeros(self.counts, bool) if must is None else must.reshape(self.counts)
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
        counts = np.asarray(self.counts)[:, None]
        total = np.zeros(cand.size)
        quiet = ~self.must.flat[cand]
        for offs in self._offsets(odd, h, 1):  # the parents: all must be known
            p = coords + offs
            inside = np.all((p >= 0) & (p < counts), axis=0)
            pf = np.ravel_multi_index(tuple(np.clip(p, 0, counts - 1)), self.counts)
            vals = self.values.flat[pf]
            quiet &= inside & self.known.flat[pf]
            total += np.where(inside, vals, 0.0)
        for offs in self._offsets(odd, h, self.reach):  # the window: no change in it
            p = coords + offs
            inside = np.all((p >= 0) & (p < counts), axis=0)
            pf = np.ravel_multi_index(tuple(np.clip(p, 0, counts - 1)), self.counts)
            vals = self.values.flat[pf]
            changed = inside & self.known.flat[pf] & (np.abs(vals - self.baseline) > self.tol)
            quiet &= ~changed
        # each distinct parent appears 2**(nd - n_odd) times among the corners
        mean = total / (2.0 ** len(self.counts))
        self.values.flat[cand[quiet]] = mean[quiet]
        self.known.flat[cand[quiet]] = True
        return cand[~quiet]

    def _offsets(self, odd: np.ndarray, h: int, reach: int):
        """Offsets ``(nd, n)`` to the coarser centres within ``reach`` cells of each candidate.

        Along an odd axis ``±h, ±3h, ... ±(2 reach − 1) h``; along the others
        ``0, ±2h, ... ±2 (reach − 1) h`` (some combinations repeat). ``reach=1`` gives the
        parents, each ``2**(nd − n_odd)`` times.
        """
        odd_offs = [s * (2 * k + 1) * h for k in range(reach) for s in (-1, 1)]
        even_offs = [2 * k * h for k in range(-(reach - 1), reach)]
        for combo in itertools.product(range(2 * reach), repeat=len(self.counts)):
            rows = [
                np.where(odd[ax], odd_offs[k], even_offs[min(k, len(even_offs) - 1)])
                for ax, k in enumerate(combo)
            ]
            yield np.stack(rows)

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

    def __init__(
        self,
        grid,
        baseline: float,
        tol: float = 0.0,
        first_step: int | None = None,
        must: np.ndarray | None = None,
        reach: int = 1,
    ) -> None:
        super().__init__(grid, baseline)
        h = first_step or default_first_step(grid)
        self.plan = AdaptivePlan(grid.counts, baseline, h, tol, reach=reach, must=must)
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
