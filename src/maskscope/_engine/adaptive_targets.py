"""Several targets' adaptive HDM sweeps from one run's forwards.

Each target's plan decides from its own distances which centres it needs, so two targets
need different centres. The run evaluates the union: its visits are every plan's visits,
each added once, as the plans grow. A target records the distances of its own visits: as
they are scored, or at once when its plan asks for a centre that another target's plan had
scored already. Each target's map is then the one its own run gives, and a centre two
targets need costs one forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .adaptive_sweep import AdaptiveSweep
from .mask_batch import MaskBatch
from .targets import PerTarget

__all__ = ["SharedSweeps"]


class SharedSweeps(PerTarget):
    """The adaptive sweeps of several targets on one grid, fed the union of their visits.

    The task's mask source (:meth:`batch`), its ``planned`` count and its accumulator:
    ``update`` receives one score per target and gives each sweep the scores of the
    centres its own plan is waiting for.
    """

    #: like one target's adaptive sweep, the run cannot be split into ranges of centres
    splittable = False

    def __init__(self, sweeps: Sequence[AdaptiveSweep], names: Sequence[str]) -> None:
        super().__init__(sweeps, names)
        counts = {tuple(s.grid.counts) for s in sweeps}
        if len(counts) != 1:
            raise ValueError(f"the targets' sweeps have different centre grids: {counts}")
        self.first = sweeps[0]
        self.visits: list[int] = []  # flat centre indices, in the run's order
        n = sweeps[0].grid.n_centres
        self._seen = np.zeros(n, bool)  # in visits
        self._done = np.zeros(n, bool)  # scored
        self._scores = np.zeros((len(sweeps), n))  # every target's distance, once scored
        self._taken = [0] * len(sweeps)
        self._grow()

    def _grow(self) -> None:
        """Take the visits the plans have made since the last call.

        A centre not yet in the run's visits is added once; one already scored (another
        target needed it first) is recorded at once from its stored distance, which may
        complete a level and plan more.
        """
        grew = True
        while grew:
            grew = False
            for k, sweep in enumerate(self.accumulators):
                new = np.asarray(sweep.plan.visits[self._taken[k] :], np.int64)
                self._taken[k] = len(sweep.plan.visits)
                if new.size == 0:
                    continue
                fresh = new[~self._seen[new]]
                self._seen[fresh] = True
                self.visits.extend(int(i) for i in fresh)
                scored = new[self._done[new]]
                if scored.size:
                    sweep.record(scored, self._scores[k, scored])
                    grew = True

    def planned(self) -> int:
        """Visits known so far: the union of the plans' (grows as their levels complete)."""
        return len(self.visits)

    def batch(self, start: int, stop: int, dtype: torch.dtype) -> MaskBatch:
        """Occlusion masks of the run's visits ``start .. stop-1``."""
        return self.first.masks_of(self.visits[start:stop], start, dtype)

    def update(self, batch: MaskBatch, scores: Sequence[torch.Tensor]) -> None:
        """Each target records the distances of the centres its plan waits for."""
        flat = np.asarray(self.visits[batch.start : batch.stop], np.int64)
        for k, (sweep, s) in enumerate(zip(self.accumulators, scores, strict=True)):
            values = s.double().cpu().numpy()
            self._scores[k, flat] = values
            wanted = sweep.plan.waiting(flat)
            if wanted.any():
                sweep.record(flat[wanted], values[wanted])
        self._done[flat] = True
        self._grow()
