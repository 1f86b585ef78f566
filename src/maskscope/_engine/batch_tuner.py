"""A measured batch size: time the first chunks at a few sizes, keep the fastest.

The map is the same for any batch size (within float rounding), so the batch size is
only a matter of speed, and the fastest one depends on the processor, the model and the
input size (on one CPU thread a small 2D U-Net at 240² runs fastest one image at a time,
the bundled one at 8; a GPU wants far more). :class:`BatchTuner` measures it on the run
itself: the first chunks of a run are run at candidate sizes 1, 2, 4, ... up to a limit,
each twice (the first call at a new shape allocates and picks kernels), the whole chunk
(masks, perturbation, model, scores, sums) per input, the faster of the two kept: other
jobs on a shared machine only ever make a chunk slower. Sizes are
tried in increasing order until one is clearly slower per input than the best so far
(``slower`` times); then every size within ``confirm_within`` times the best runs one more
chunk, smallest first, and its fastest chunk counts (a burst of other work that slowed
both chunks of the best size is unlikely to slow that one too). The fastest size is kept
for the rest of the run. Every timed chunk is a real chunk of the run: no mask is
evaluated twice. A short run on a CPU tries only the sizes it can afford: the sweep's
chunks stay within a quarter of the task's inputs (``budget_share``), sizes 1 and 2 always
tried. On a GPU, where the best sizes are the large ones (a small batch leaves most of it
idle and pays the launch of every kernel per few inputs), the sizes are tried from the
largest down (``descending``), with the same stopping rule: the sweep ends at the first
size clearly slower than the best, usually after two or three sizes, and its chunks are
already large ones.

After an out-of-memory error the loop halves the batch; the tuner then drops the sizes
that failed and measures again among the smaller ones. A new input shape (another image
size) is measured afresh.

A measurement is remembered for the model, method and input shape in this process
(:func:`measurement_memo`): a later run replays it, with the same chunks in the same
order and the same size kept, without reading the clock. Two runs of one seed in a
session then give the same map bit for bit, as with a fixed batch size; a new process
measures again, and its map may differ from this one's by float rounding.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Collection
from typing import Any

import torch

__all__ = ["BatchTuner", "candidate_sizes", "measurement_memo"]

#: model -> {(what else decides the speed, input shape, limit): (limit kept, timings)}
_MEMOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def measurement_memo(model: Any, *key: Any) -> dict | None:
    """The measurements remembered for ``model`` and ``key`` in this process.

    ``key`` holds what else decides the speed (the method, precision, compilation,
    padding, device). None when ``model`` cannot be weakly referenced (nothing is then
    remembered).
    """
    try:
        per_model = _MEMOS.setdefault(model, {})
    except TypeError:
        return None
    return per_model.setdefault(tuple(key), {})


def candidate_sizes(limit: int, budget: float | None = None) -> list[int]:
    """Powers of two up to ``limit``, and ``limit`` itself.

    With ``budget``, only the sizes whose two chunks keep the inputs of the sweep so far
    (two chunks per size) within ``budget`` inputs, and always the first two.
    """
    limit = max(1, int(limit))
    sizes = [1]
    while sizes[-1] * 2 <= limit:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != limit:
        sizes.append(limit)
    if budget is None:
        return sizes
    kept, spent = [], 0
    for size in sizes:
        if len(kept) >= 2 and spent + 2 * size > budget:
            break
        kept.append(size)
        spent += 2 * size
    return kept


def device_clock(device: torch.device) -> Callable[[], float]:
    """``time.perf_counter`` after the device's queued work is done."""
    if device.type == "cuda":

        def clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return clock
    return time.perf_counter


class BatchTuner:
    """Chooses the batch size of a run by timing its first chunks.

    Parameters
    ----------
    clock
        Seconds, monotonic; called before and after each chunk while measuring (the loop
        passes :func:`device_clock` of the task's device).
    warmup
        Untimed chunks per candidate before the timed one.
    slower
        Stop trying larger sizes once one takes this many times the best time per input.
    confirm_within
        Sizes within this many times the best run one more chunk before the choice.
    budget_share
        The sweep tries only the sizes whose two chunks each keep it within this share of
        the task's inputs (``total`` of :meth:`begin`; at least sizes 1 and 2): a short run
        is not spent measuring sizes it has too few inputs to profit from.

    Attributes
    ----------
    chosen
        The batch size kept, once measured (None while measuring).
    timings
        Seconds per input of each measured size (the latest measurement).
    n_measures
        How many times a measurement started (1, plus one per out-of-memory back-off or
        new input shape).
    reused
        Whether the latest measurement was replayed from ``memo``.
    memo
        A dict shared by runs of one model (:func:`measurement_memo`), or None: finished
        measurements go in, and a run of a shape found there replays it.
    """

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        warmup: int = 1,
        slower: float = 1.15,
        confirm_within: float = 1.5,
        budget_share: float = 0.25,
        memo: dict | None = None,
    ) -> None:
        self.clock = clock
        self.memo = memo
        self.reused = False
        self._key: tuple | None = None
        self._replay: dict[int, float] | None = None
        self.warmup = int(warmup)
        self.slower = float(slower)
        self.confirm_within = float(confirm_within)
        self.budget_share = float(budget_share)
        self.chosen: int | None = None
        self.timings: dict[int, float] = {}
        self.n_measures = 0
        self._shape: tuple[int, ...] | None = None
        self._limit = 1
        self._budget: float | None = None
        self._todo: list[int] = []
        self._descending = False
        self._confirming = False
        self._confirmed: set[int] = set()  # the sizes that run (or ran) one more chunk
        self._seen = 0
        self._t0: float | None = None
        self._fastest = math.inf
        self._warm: frozenset[int] = frozenset()

    # ------------------------------------------------------------------ set-up
    def begin(
        self,
        shape: tuple[int, ...],
        limit: int,
        where: tuple = (),
        total: int | None = None,
        warm: Collection[int] = (),
        descending: bool = False,
    ) -> None:
        """A task with inputs of ``shape`` and a largest batch of ``limit`` starts.

        ``warm`` holds the batch sizes the model has already run at this shape: they are
        timed without a warm-up chunk. ``descending`` tries the sizes from the largest down
        (on a GPU).

        A task of the shape measured before (the next slice of a volume) keeps what was
        measured, an out-of-memory bound included; a new shape is measured afresh, or
        replayed from ``memo`` when a run of this shape, limit, ``where`` (the device and
        dtype) and largest size within the budget of ``total`` inputs measured it before.
        """
        shape = tuple(shape)
        if shape == self._shape:
            return
        self._shape = shape
        self._descending = bool(descending)
        limit = max(1, int(limit))
        self._budget = None if total is None else self.budget_share * int(total)
        largest = candidate_sizes(limit, self._budget)[-1]
        self._key = (tuple(where), shape, limit, largest)
        known = self.memo.get(self._key) if self.memo is not None else None
        if known is not None:
            kept_limit, timings, confirmed, warm_then = known
            self._warm = frozenset(warm_then)  # a replay runs the chunks the measurement ran
            self._restart(kept_limit, replay=dict(timings))
            self._confirmed = set(confirmed)
        else:
            self._warm = frozenset(int(b) for b in warm)
            self._restart(limit)

    def _restart(self, limit: int, replay: dict[int, float] | None = None) -> None:
        self._replay = replay
        self.reused = replay is not None
        self._limit = limit
        # a replay goes through the sizes that were measured, in the same order
        todo = sorted(replay) if replay is not None else candidate_sizes(limit, self._budget)
        self._todo = todo[::-1] if self._descending else todo
        self._confirming = False
        self._confirmed = set()
        self.timings = {}
        self.chosen = None
        self._seen = 0
        self._fastest = math.inf
        self.n_measures += 1

    @property
    def measuring(self) -> bool:
        """Whether the next chunk is part of the measurement."""
        return self.chosen is None

    def size(self) -> int:
        """The batch size of the next chunk."""
        return self.chosen if self.chosen is not None else self._todo[0]

    # ------------------------------------------------------------------ chunks
    def start(self) -> None:
        """A chunk starts (call before its masks are made)."""
        if self.measuring and self._replay is None:
            self._t0 = self._now()

    def done(self, n: int) -> None:
        """The chunk of ``n`` inputs started last is done (its sums are updated).

        A size's time is the fastest of its chunks, warm-up included: a warm-up chunk is
        slower when it allocates or picks kernels, and any chunk is slower when another
        job takes the processor, never faster.
        """
        if not self.measuring:
            return
        size = self._todo[0]
        took = math.inf if self._t0 is None else (self._now() - self._t0) / max(n, 1)
        self._t0 = None
        if n != size:  # a task's last, shorter chunk tells nothing about this size
            return
        if self._confirming:
            self._todo.pop(0)
            if self._replay is None:
                self.timings[size] = min(self.timings[size], took)
            if not self._todo:
                self._choose()
            return
        self._fastest = min(self._fastest, took)
        if self._seen < (0 if size in self._warm else self.warmup):
            self._seen += 1
            return
        if self._replay is not None and size in self._replay:
            self.timings[size] = self._replay[size]
        else:
            self.timings[size] = self._fastest
        self._fastest = math.inf
        self._seen = 0
        self._todo.pop(0)
        best = min(self.timings.values())
        slower = self._replay is None and self.timings[size] > self.slower * best
        if not self._todo or slower:
            self._confirm()

    def _confirm(self) -> None:
        """The contenders get one more chunk each, smallest first (their time: the fastest).

        A contender is a size within ``confirm_within`` times the best: a burst of other
        work that slowed both chunks of one size is unlikely to slow its third chunk too, a
        moment later. Sizes far slower (one input at a time on a large 3D model) are not run
        again, and with one contender there is nothing to compare.
        """
        if self._replay is None:  # a replay runs the same chunks as the measurement did
            best = min(self.timings.values())
            within = {k for k, t in self.timings.items() if t <= self.confirm_within * best}
            self._confirmed = within if len(within) > 1 else set()
        contenders = sorted(self._confirmed)
        if len(contenders) < 2:
            self._choose()
            return
        self._confirming = True
        self._todo = contenders

    def _choose(self) -> None:
        self._confirming = False
        self.chosen = min(self.timings, key=self.timings.__getitem__)
        if self.memo is not None and self._key is not None and not self.reused:
            entry = (self._limit, dict(self.timings), set(self._confirmed), self._warm)
            self.memo[self._key] = entry

    def out_of_memory(self, size: int) -> int:
        """A chunk of ``size`` ran out of memory: measure again below it; the next size."""
        self._t0 = None
        self._restart(max(1, size // 2))
        return self.size()

    def record(self) -> dict[str, object]:
        """What a run records in its ``params``: the size kept, the sizes timed, ms/input."""
        sizes = sorted(self.timings)
        return {
            "batch_size_measured": self.chosen,
            "batch_sizes_timed": sizes,
            "batch_ms_per_input": [round(self.timings[k] * 1000, 4) for k in sizes],
            "batch_measurement_reused": self.reused,
        }

    def _now(self) -> float:
        return (self.clock or time.perf_counter)()
