"""From the loop's steps to :class:`~maskscope.explanation.Explanation` snapshots.

A method runs its tasks one after another through :func:`~maskscope._engine.loop.run_task`;
:class:`Snapshots` keeps what the run's snapshots share (counts, the canvas of finished
slices, the trust figures, the progress bar, the pace of streaming) and builds each one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._engine.accumulate import Partial
from .._engine.batch_tuner import BatchTuner
from .._engine.loop import ModelRunner, Step, Task, relative_error
from ..explanation import Explanation

__all__ = ["Canvas", "RunRecord", "Snapshots", "attach_partial"]


@dataclass(frozen=True)
class RunRecord:
    """What every snapshot of one run carries unchanged."""

    method: str
    params: dict[str, Any]
    spatial: tuple[int, ...]
    sliced: bool
    image: np.ndarray
    voxel_spacing: tuple[float, ...]


def _np(t: torch.Tensor | None, dtype: Any = None) -> np.ndarray | None:
    if t is None:
        return None
    arr = t.detach().to("cpu").numpy()
    return arr.astype(dtype) if dtype is not None else arr.copy()


class Canvas:
    """Assembles per-task results into full-size arrays for a snapshot."""

    def __init__(self, spatial: tuple[int, ...], sliced: bool) -> None:
        self.spatial = spatial
        self.sliced = sliced
        self.done: dict[int | None, dict[str, np.ndarray]] = {}

    @staticmethod
    def collect(task: Task, partial: Partial) -> dict[str, np.ndarray]:
        """A task's estimate and label images as numpy arrays."""
        out = {"map": _np(partial.map, np.float64)}
        if partial.stderr is not None:
            out["stderr"] = _np(partial.stderr, np.float64)
        for k, v in partial.extras.items():
            out[f"extra__{k}"] = _np(v, np.float64)
        for k, v in task.info.items():
            out[f"extra__{k}"] = np.asarray(v, dtype=np.float64)
        if task.reference is not None:
            out["reference"] = _np(task.reference, np.int32)
        if task.prediction is not None:
            out["prediction"] = _np(task.prediction, np.int32)
        if task.region is not None:
            out["roi"] = _np(task.region, bool)
        return out

    def assemble(self, current: tuple[int | None, dict[str, np.ndarray]] | None):
        """The finished tasks' arrays plus ``current = (index, arrays)``, full size."""
        items = dict(self.done)
        if current is not None:
            items[current[0]] = current[1]
        if not self.sliced:
            return items.get(None, {})
        merged: dict[str, np.ndarray] = {}
        depth = self.spatial[0]
        for z, arrays in items.items():
            for name, arr in arrays.items():
                if name not in merged:
                    merged[name] = np.zeros((depth, *arr.shape), dtype=arr.dtype)
                merged[name][z] = arr
        return merged


class Snapshots:
    """The state of one run's snapshots, advanced step by step.

    Parameters
    ----------
    record
        What every snapshot carries.
    runner
        The model runner (its count of forward passes goes in every snapshot).
    n_total
        Perturbed inputs planned over all tasks.
    batch_size
        The largest batch asked for (the steps report the one used).
    yield_every
        Seconds between streamed snapshots (0: after every chunk), and at least
        :attr:`PACE` times what the last one took to make; None: no intermediate
        snapshots at all (only the last).
    progress
        True for a tqdm bar, or a callable receiving every snapshot.
    tuner
        The :class:`~maskscope._engine.batch_tuner.BatchTuner` measuring the batch size,
        when there is one (its choice and timings go in every snapshot's ``params``).
    """

    #: Snapshots wait this many times their own cost: they take at most 1/(PACE + 1) of a run.
    PACE = 9

    def __init__(
        self,
        record: RunRecord,
        runner: ModelRunner,
        n_total: int,
        batch_size: int | None,
        yield_every: float | None,
        progress: bool | Callable[[Explanation], None] = False,
        tuner: BatchTuner | None = None,
    ) -> None:
        self.record, self.runner = record, runner
        self.t0 = time.perf_counter()
        self.n_total, self.n_done, self.batch_size = n_total, 0, batch_size
        self.tuner = tuner
        self.canvas = Canvas(record.spatial, record.sliced)
        self.skipped: list[int] = []
        self.stopped_early = False
        self.rel_error: float | None = None
        self.reliability: float | None = None
        self.target: int | None = None
        self.yield_every = yield_every
        self.last_yield, self.n_yields = -math.inf, 0
        self.cost = 0.0  # seconds the last streamed snapshot took to make
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_total, desc=record.method, unit="mask", leave=True)
        self.task: Task | None = None
        self.index: int | None = None
        self.task_done = 0
        self.task_stopped = False

    # ------------------------------------------------------------------ tasks
    def skip(self, index: int, n_total: int) -> None:
        """A slice with nothing to explain: left at 0 and listed as skipped."""
        self.skipped.append(index)
        self.n_total -= n_total

    def begin(self, index: int | None, task: Task) -> None:
        """The next task starts."""
        self.task, self.index, self.task_done = task, index, 0
        self.task_stopped = False
        self.target = task.target

    def step(self, step: Step, *, last_task: bool) -> Explanation | None:
        """Take a step of the current task; the snapshot to stream, if one is due."""
        task = self.task
        assert task is not None
        self.batch_size = step.batch_size
        if self.bar is not None and step.n_done > self.task_done:
            self.bar.update(step.n_done - self.task_done)
        self.n_done += step.n_done - self.task_done
        self.task_done = step.n_done
        if step.stopped_early and not self.task_stopped:
            self.stopped_early = self.task_stopped = True
            self.n_total -= task.n_total - step.n_done
            if self.bar is not None:
                self.bar.total = self.n_total
        elif step.final and step.n_done < task.n_total and not step.stopped_early:
            self.n_total -= task.n_total - step.n_done  # an adaptive sweep needed fewer
            if self.bar is not None:
                self.bar.total = self.n_total
        if step.cancelled:
            return self.snapshot(self.live(), cancelled=True)
        if step.partial is not None:
            self._trust(step.partial)
        if step.final:
            self.canvas.done[self.index] = self.canvas.collect(task, step.partial)
            self.task = None
            return None if last_task or not self.due() else self.streamed(None)
        if not self.due():
            return None
        since = time.perf_counter()
        partial = step.partial
        if partial is None:
            partial = task.accumulator.partial()
            if step.n_done < task.n_total:  # the final pass's steps keep the last figures
                self._trust(partial)
        return self.streamed((self.index, self.canvas.collect(task, partial)), since)

    def _trust(self, partial: Partial) -> None:
        assert self.task is not None
        self.rel_error = relative_error(partial) if self.task.has_stderr else None
        self.reliability = partial.reliability

    # ------------------------------------------------------------------ snapshots
    def due(self) -> bool:
        """Whether a streamed snapshot is due now.

        With ``yield_every > 0`` the snapshots also wait :attr:`PACE` times what the last
        one took to make (its maps, assembled), so that they take at most a tenth of the
        run: a 3D snapshot can cost more than a chunk's model call.
        """
        if self.yield_every is None:
            return False
        wait = max(self.yield_every, self.PACE * self.cost) if self.yield_every > 0 else 0.0
        return self.n_yields == 0 or time.perf_counter() - self.last_yield >= wait

    def streamed(self, current, since: float | None = None) -> Explanation:
        """An intermediate snapshot, counted for the pace of streaming (``since``: when
        making it began, for its cost)."""
        snap = self.snapshot(current)
        self.last_yield, self.n_yields = time.perf_counter(), self.n_yields + 1
        if since is not None:
            self.cost = self.last_yield - since
        return snap

    def live(self) -> tuple[int | None, dict[str, np.ndarray]] | None:
        """The current task's arrays, when it has done any work."""
        if self.task is None or self.task_done == 0:
            return None
        return (self.index, self.canvas.collect(self.task, self.task.accumulator.partial()))

    def finished_work(self) -> Explanation | None:
        """The snapshot of everything finished so far (None when nothing was)."""
        current = self.live()
        if current is None and not self.canvas.done:
            return None
        return self.snapshot(current, notify=False)

    def snapshot(self, current=None, *, done=False, cancelled=False, notify=True) -> Explanation:
        """Build the snapshot of the finished tasks plus ``current = (index, arrays)``."""
        rec = self.record
        arrays = self.canvas.assemble(current)
        extras = {k[len("extra__") :]: v for k, v in arrays.items() if k.startswith("extra__")}
        params = dict(rec.params)
        params["batch_size_used"] = self.batch_size  # after the voxel limit and back-off
        if self.tuner is not None:
            params.update(self.tuner.record())
        if self.skipped:
            params["skipped_slices"] = list(self.skipped)
        computed = {z for z in self.canvas.done if z is not None}
        if current is not None and current[0] is not None:
            computed.add(current[0])
        snap = Explanation(
            method=rec.method,
            map=arrays.get("map", np.zeros(rec.spatial)),
            params=params,
            n_done=self.n_done,
            n_total=self.n_total,
            elapsed=time.perf_counter() - self.t0,
            stderr=arrays.get("stderr"),
            extras=extras,
            reference=arrays.get("reference"),
            prediction=arrays.get("prediction"),
            roi=arrays.get("roi"),
            image=rec.image,
            voxel_spacing=rec.voxel_spacing,
            slices=tuple(sorted(computed)) if rec.sliced else None,
            n_forward=self.runner.n_forward,
            done=done,
            cancelled=cancelled,
            stopped_early=self.stopped_early,
            rel_error=self.rel_error,
            reliability=self.reliability,
            target=self.target,
        )
        if self.callback is not None and notify:
            self.callback(snap)
        return snap

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


def attach_partial(exc: BaseException, build: Callable[[], Explanation | None]) -> None:
    """Set ``exc.partial`` to the snapshot of the finished work (None if it cannot be built)."""
    if getattr(exc, "partial", None) is not None:
        return
    try:
        snap = build()
    except Exception:  # the state the failure left cannot be assembled: report none
        snap = None
    try:
        exc.partial = snap  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type without a __dict__
        pass
