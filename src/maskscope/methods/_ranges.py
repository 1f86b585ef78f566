"""One explanation split by ranges of masks: run a range anywhere, merge the ranges in order.

Every mask comes from ``(seed, index)`` and every accumulator sums fixed blocks of
:data:`~maskscope._engine.blocks.SUM_BLOCK` masks (HDM's records one distance per centre),
so a range of masks can run in another process and hand back its blocks;
:func:`iter_merged` adds them in mask order into the accumulator of a run that did the
unperturbed pass itself, and streams its snapshots. The merged explanation equals the one
of :meth:`~maskscope.Method.explain` bit for bit on the same device type.

Splittable: RISE, SegRISE, PixelRISE with ``merge="mean"`` and HDM, on a whole image or
volume (not a 2D model slice by slice), without early stopping.

Every range must chunk its blocks alike, so a split run does not measure its batch size:
with ``batch_size=None`` it uses :data:`SPLIT_BATCH` inputs per model call. HDM's adaptive
sweep picks each level's centres from the levels before, so a split HDM run sweeps every
centre (``sweep="full"``) unless asked otherwise, and refuses ``sweep="adaptive"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .._engine.blocks import SUM_BLOCK
from .._engine.loop import Step, run_task
from .._engine.targets import PerTarget
from ..explanation import Explanation
from ._snapshots import Snapshots

__all__ = ["SPLIT_BATCH", "RangeResult", "iter_merged", "plan_ranges", "run_range"]

#: Inputs per model call of a split run whose ``batch_size`` is None (measured elsewhere).
SPLIT_BATCH = 16


@dataclass
class RangeResult:
    """What a range of masks hands back (its tensors on the CPU, picklable).

    Attributes
    ----------
    start, stop
        The masks ``start .. stop - 1``.
    blocks
        The accumulator's blocks (:meth:`take_blocks`), in mask order.
    n_forward
        Images the range passed through the model (its unperturbed pass included).
    batch_size
        The batch size it used.
    """

    start: int
    stop: int
    blocks: list[Any]
    n_forward: int
    batch_size: int


def plan_ranges(
    n_total: int, n_ranges: int | None = None, range_size: int | None = None
) -> list[tuple[int, int]]:
    """Consecutive ranges covering ``0 .. n_total - 1``, each a multiple of SUM_BLOCK long.

    Give ``range_size`` (rounded up to a multiple of ``SUM_BLOCK``) or ``n_ranges`` (at
    most; fewer when there are fewer blocks).
    """
    if range_size is None:
        n_ranges = max(1, int(n_ranges or 1))
        blocks = math.ceil(n_total / SUM_BLOCK)
        range_size = math.ceil(blocks / n_ranges) * SUM_BLOCK
    elif isinstance(range_size, bool) or not isinstance(range_size, int) or range_size < 1:
        raise ValueError(f"range_size must be a positive integer, got {range_size!r}")
    size = math.ceil(range_size / SUM_BLOCK) * SUM_BLOCK
    return [(a, min(a + size, n_total)) for a in range(0, n_total, size)]


def _prepared(method: Any, image: Any, kwargs: dict[str, Any]):
    if kwargs.get("params") is None:  # what a method splits with unless told otherwise
        kwargs = {**getattr(method, "split_defaults", {}), **kwargs}
    run = method._prepare(image, **kwargs)
    if run.inp.sliced:
        raise ValueError(
            "a split explanation needs a whole image or volume; a 2D model explains this "
            "volume slice by slice (split the slices over workers instead)"
        )
    if run.options.tol is not None:
        raise ValueError("a split explanation runs every mask: set tol=None")
    return run


def _batch(run: Any) -> int:
    return run.options.batch_size or SPLIT_BATCH


def _task(method: Any, run: Any):
    task, _ = method._task(run, None, run.target)
    if not getattr(task.accumulator, "splittable", True):
        raise ValueError(
            f"{method.name}'s adaptive sweep chooses each level's centres from the levels "
            "before, so it cannot be split into ranges; use sweep='full', or explain it in "
            "one process"
        )
    if isinstance(task.accumulator, PerTarget):
        raise ValueError(
            f"{method.name} with several targets or ROIs in one run cannot be split by "
            "masks; split one run per target (targets=[k] or one roi), or explain them "
            "in one process"
        )
    if not hasattr(task.accumulator, "take_blocks"):
        raise ValueError(
            f"{method.name} with these parameters cannot be split by masks (PixelRISE "
            "merge='max' takes a final pass over all masks); use merge='mean', or explain "
            "it in one process"
        )
    return task


def _cpu(block: Any) -> Any:
    for name, value in vars(block).items():
        if torch.is_tensor(value):
            setattr(block, name, value.detach().to("cpu"))
    return block


def run_range(method: Any, image: Any, mask_range: tuple[int, int], **kwargs: Any) -> RangeResult:
    """Run masks ``mask_range`` of ``method.explain(image, **kwargs)``; return its blocks."""
    start, stop = (int(v) for v in mask_range)
    if start % SUM_BLOCK or not 0 <= start < stop:
        raise ValueError(
            f"mask_range must start at a multiple of {SUM_BLOCK} and be non-empty, got "
            f"{mask_range!r}"
        )
    run = _prepared(method, image, kwargs)
    task = _task(method, run)
    if stop > task.n_total:
        raise ValueError(f"mask_range {mask_range!r} ends past the run's {task.n_total} masks")
    task.accumulator.collect = True
    step = None
    for step in run_task(  # noqa: B007  (the last step tells the batch size used)
        task, run.runner, run.options, batch_size=_batch(run), mask_range=(start, stop)
    ):
        pass
    blocks = [_cpu(b) for b in task.accumulator.take_blocks()]
    return RangeResult(start, stop, blocks, run.runner.n_forward, step.batch_size)


def iter_merged(
    method: Any, image: Any, results: Iterable[RangeResult], **kwargs: Any
) -> Iterator[Explanation]:
    """Merge ranges' results (in any order of arrival) into the run's snapshots.

    This run does the unperturbed pass itself (one forward of ``method``'s model), then
    adds the ranges' blocks in mask order as soon as the ranges before them are in, and
    yields a snapshot after each merge (or every ``yield_every`` s) and a last one with
    ``done=True``.
    """
    run = _prepared(method, image, kwargs)
    snaps = Snapshots(
        run.record,
        run.runner,
        n_total=run.n_per_task,
        batch_size=_batch(run),
        yield_every=run.yield_every,
        progress=run.progress,
    )
    try:
        task = _task(method, run)
        snaps.begin(None, task)
        merged, waiting = 0, {}
        for result in results:
            waiting[result.start] = result
            while merged in waiting:
                part = waiting.pop(merged)
                for block in part.blocks:
                    task.accumulator.add_block(block)
                run.runner.n_forward += part.n_forward
                snaps.batch_size, merged = part.batch_size, part.stop
            if merged >= task.n_total:
                break
            snap = snaps.step(Step(merged, snaps.batch_size), last_task=True)
            if snap is not None:
                yield snap
        if merged < task.n_total:
            raise ValueError(f"the ranges cover masks 0 .. {merged - 1} of {task.n_total}")
        final = Step(merged, snaps.batch_size, task.accumulator.partial(), final=True)
        snaps.step(final, last_task=True)
        yield snaps.snapshot(done=True)
    finally:
        snaps.close()
