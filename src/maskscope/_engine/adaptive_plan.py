"""Which centres an adaptive HDM sweep evaluates, level by level (numpy, on the CPU).

The centres are visited as in the full sweep's coarse-to-fine order. Along an axis of
``n`` centres, level ``h`` holds the multiples of ``h`` and the last centre ``n − 1``
(so the grid's far edge is a coarse centre too, whatever ``n`` is). The first level is
``h0`` (a power of two); each further level halves ``h`` down to 1. A *candidate* of level
``h`` is a centre of level ``h`` that is not one of level ``2h``. Along each axis it is
either on a coarser centre, or halfway between two (the last gap of an axis may be
shorter): its *parents* are the corners of the coarser cell around it, and its
*interpolation* is their multilinear interpolation, the value the full sweep's map draws
between them.

A candidate is evaluated (its reasons are recorded as bit flags, :data:`REASONS`) when

* ``HIDDEN``: its occluder hides something (``must``), or
* ``CONTENT``: what its occluder hides differs from the interpolation of what its parents'
  occluders hide by more than ``content_tol`` (``content``, one number per centre), or
* ``NEIGHBOURS``: the coarser centres around it (its parents, or ``reach`` cells each way)
  differ from each other by more than ``tol``;
* ``BUSY``: and every candidate of a level is evaluated when more than ``busy`` of them
  are for the reasons above: a map that changes almost everywhere at this scale is not
  smooth enough to be interpolated in the few places left.

The others take their interpolation. A level is planned once the previous one is
complete, so the centres evaluated, their order and the map do not depend on the batch
size. With ``tol`` = 0 a candidate is skipped only when all of its neighbours have one and
the same distance.

Within a level, the centres to evaluate are visited where their coarser neighbours differ
most first (ties in grid order): that is where the map is least known, so a streamed map
sharpens where it changes before it is refined where it is flat. Until a centre is known,
snapshots show it at the interpolation of its coarser level (:meth:`AdaptivePlan.filled`),
as a skipped centre would be, rather than at its nearest visited neighbour's value.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

__all__ = ["REASONS", "AdaptivePlan", "axis_level"]

#: Bit flags of :attr:`AdaptivePlan.reasons`: why a centre was evaluated.
REASONS = {"first": 1, "hidden": 2, "content": 4, "neighbours": 8, "busy": 16}


def axis_level(n: int, h: int) -> np.ndarray:
    """Coordinates of level ``h`` along an axis of ``n`` centres: multiples of h, and n − 1."""
    return np.union1d(np.arange(0, n, h), [n - 1])


class AdaptivePlan:
    """The centres of a grid of ``counts`` to evaluate, and the values of the others.

    Parameters
    ----------
    counts
        Centres per axis.
    first_step
        Step ``h0`` of the first level, a power of two.
    tol
        Coarser neighbours within ``tol`` of each other count as equal.
    reach
        Neighbours compared: the coarser centres up to ``reach`` cells away along each axis
        (1: the parents).
    must
        Bool per centre: always evaluated (``HIDDEN``).
    content
        A number per centre (what its occluder hides), compared with its parents'
        interpolation (``CONTENT``); None: no such rule.
    content_tol
        Largest deviation of ``content`` from the interpolation that is not a change.
    busy
        Fraction of a level's candidates above which the whole level is evaluated.
    """

    def __init__(
        self,
        counts,
        first_step: int,
        tol: float = 0.0,
        reach: int = 1,
        must: np.ndarray | None = None,
        content: np.ndarray | None = None,
        content_tol: float = 0.0,
        busy: float = 1.0,
    ) -> None:
        self.counts = tuple(int(c) for c in counts)
        self.tol, self.reach, self.busy = float(tol), int(reach), float(busy)
        self.must = np.zeros(self.counts, bool) if must is None else must.reshape(self.counts)
        self.content = None if content is None else np.asarray(content, float).reshape(self.counts)
        self.content_tol = float(content_tol)
        self.values = np.full(self.counts, np.nan)
        self.known = np.zeros(self.counts, bool)
        self.evaluated = np.zeros(self.counts, bool)
        self.reasons = np.zeros(self.counts, np.uint8)
        self.visits: list[int] = []  # flat centre indices, in visit order
        self._queued = np.zeros(self.counts, bool)  # in visits
        self.step = self.first_step = int(first_step)
        self._pending = 0
        self._coords = np.indices(self.counts).reshape(len(self.counts), -1)
        first = np.flatnonzero(self._on_level(self.step))
        self.reasons.flat[first] = REASONS["first"]
        self._plan(first)

    @property
    def n_planned(self) -> int:
        """Centres planned so far (the visits known)."""
        return len(self.visits)

    @property
    def n_skipped(self) -> int:
        """Centres given their interpolation instead of a model call."""
        return int((self.known & ~self.evaluated).sum())

    @property
    def finished(self) -> bool:
        """Every level is planned and recorded."""
        return self.step == 1 and self._pending == 0

    def record(self, flat: np.ndarray, values: np.ndarray) -> None:
        """Distances of evaluated centres; plans the next level when a level is done."""
        self.values.flat[flat] = values
        self.known.flat[flat] = True
        self.evaluated.flat[flat] = True
        self._pending -= len(flat)
        if self._pending == 0:
            self._next_level()

    def _on_level(self, h: int) -> np.ndarray:
        """Bool per centre: on level ``h`` along every axis."""
        on = np.ones(self._coords.shape[1], bool)
        for ax, n in enumerate(self.counts):
            member = np.zeros(n, bool)
            member[axis_level(n, h)] = True
            on &= member[self._coords[ax]]
        return on

    def waiting(self, flat: np.ndarray) -> np.ndarray:
        """Bool per flat index: a visit of this plan not yet recorded."""
        return self._queued.flat[flat] & ~self.evaluated.flat[flat]

    def _plan(self, flat: np.ndarray) -> None:
        self.visits.extend(int(i) for i in flat)
        self._queued.flat[flat] = True
        self._pending = flat.size
        if flat.size == 0:
            self._next_level()

    def _next_level(self) -> None:
        while self.step > 1:
            h = self.step // 2
            self.step = h
            cand = np.flatnonzero(self._on_level(h) & ~self._on_level(2 * h))
            evaluate = self._decide(cand, h)
            if evaluate.size:
                self._plan(evaluate)
                return
        self._pending = 0

    def _decide(self, cand: np.ndarray, h: int) -> np.ndarray:
        """Fill the candidates that can be skipped; return the ones to evaluate."""
        why = np.where(self.must.flat[cand], REASONS["hidden"], 0).astype(np.uint8)
        corners = self._corners(cand, h)
        if self.content is not None:
            dev = np.abs(self.content.flat[cand] - _interpolate(self.content, corners))
            why |= np.where(dev > self.content_tol, REASONS["content"], 0).astype(np.uint8)
        lo, hi = self._window_range(cand, h)
        why |= np.where(hi - lo > self.tol, REASONS["neighbours"], 0).astype(np.uint8)
        if np.count_nonzero(why) > self.busy * cand.size:
            why |= REASONS["busy"]
        quiet = why == 0
        skip = cand[quiet]
        spread = (hi - lo)[~quiet]
        # the most different neighbours first; the same order for any batch size
        first = np.lexsort((cand[~quiet], -spread))
        kept = [(tuple(a[quiet] for a in idx), w[quiet]) for idx, w in corners]
        self.values.flat[skip] = _interpolate(self.values, kept)
        self.known.flat[skip] = True
        self.reasons.flat[cand] = why
        return cand[~quiet][first]

    def filled(self, fallback: float = 0.0) -> np.ndarray:
        """Every centre's value as far as it is known: the others at their interpolation.

        A centre not yet known takes the multilinear interpolation of its parents, level by
        level from the first (whose missing centres take a nearest known first-level
        centre's value, or ``fallback`` when none is known): the value it would take if it
        were skipped, with the centres still to be evaluated standing in for themselves.
        """
        out = np.where(self.known, self.values, np.nan)
        first = self._on_level(self.first_step).reshape(self.counts)
        top = first & ~self.known
        if top.any():
            have = first & self.known
            if not have.any():
                out[top] = fallback
            else:  # the nearest known first-level centre, in centre-index units
                _, nearest = ndimage.distance_transform_edt(~have, return_indices=True)
                out[top] = out[tuple(ax[top] for ax in nearest)]
        h = self.first_step // 2
        while h >= 1:
            cand = np.flatnonzero(self._on_level(h) & ~self._on_level(2 * h))
            miss = cand[~self.known.flat[cand]]
            if miss.size:
                out.flat[miss] = _interpolate(out, self._corners(miss, h))
            h //= 2
        return out

    def _on_coarser(self, ax: int, cand: np.ndarray, h: int):
        """Along axis ``ax``: the coarser level's positions, the candidates' coordinates,
        where they fall among those positions, and whether they are one of them."""
        coarse = axis_level(self.counts[ax], 2 * h)
        i = self._coords[ax, cand]
        pos = np.searchsorted(coarse, i)
        exact = coarse[np.minimum(pos, coarse.size - 1)] == i
        return coarse, i, pos, exact

    def _corners(self, cand: np.ndarray, h: int) -> list[tuple[tuple, np.ndarray]]:
        """The parents: ``2**nd`` (index tuple, weight) pairs of the multilinear interpolation."""
        per_axis = []
        for ax in range(len(self.counts)):
            coarse, i, pos, exact = self._on_coarser(ax, cand, h)
            lo = np.where(exact, i, coarse[np.maximum(pos - 1, 0)])
            hi = np.where(exact, i, coarse[np.minimum(pos, coarse.size - 1)])
            w = np.where(exact, 0.0, (i - lo) / np.maximum(hi - lo, 1))
            per_axis.append(((lo, 1.0 - w), (hi, w)))
        out = []
        for combo in itertools.product((0, 1), repeat=len(self.counts)):
            parts = [per_axis[ax][k] for ax, k in enumerate(combo)]
            out.append((tuple(p[0] for p in parts), np.prod([p[1] for p in parts], axis=0)))
        return out

    def _window_range(self, cand: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest value of the coarser centres within ``reach`` cells."""
        r = self.reach
        per_axis = []
        for ax in range(len(self.counts)):
            coarse, _, pos, exact = self._on_coarser(ax, cand, h)
            between = pos[:, None] + np.arange(-r, r)[None, :]  # r below, r above
            around = pos[:, None] + np.arange(-(r - 1), r)[None, :]  # itself, r − 1 each way
            around = np.concatenate([around, around[:, -1:]], axis=1)
            sel = np.where(exact[:, None], around, between)
            valid = (sel >= 0) & (sel < coarse.size)
            per_axis.append((coarse[np.clip(sel, 0, coarse.size - 1)], valid))
        lo = np.full(cand.size, np.inf)
        hi = np.full(cand.size, -np.inf)
        for combo in itertools.product(range(2 * r), repeat=len(self.counts)):
            idx = tuple(per_axis[ax][0][:, k] for ax, k in enumerate(combo))
            ok = np.all([per_axis[ax][1][:, k] for ax, k in enumerate(combo)], axis=0)
            v = self.values[idx]
            lo = np.where(ok, np.minimum(lo, v), lo)
            hi = np.where(ok, np.maximum(hi, v), hi)
        return lo, hi


def _interpolate(values: np.ndarray, corners) -> np.ndarray:
    """Weighted sum of ``values`` at the corners (index tuple, weight)."""
    total = 0.0
    for idx, w in corners:
        total = total + w * values[idx]
    return np.asarray(total, float)
