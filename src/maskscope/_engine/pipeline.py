"""The model of one chunk runs while the loop sums the last one and makes the next one.

A chunk's engine work (masks, perturbation, scores, sums) and its model call are
independent of the next chunk's model call. :func:`pipelined_chunks` runs the model calls
in one worker thread, in order, while the calling thread scores and sums the chunk before
and makes the masks and the perturbed inputs of the chunk after. The accumulator is only
ever touched by the calling thread, the model only by the worker, so the chunks, their
order and the sums are those of the plain loop: the map is the same bit for bit.

On a CPU this uses a core that the model's own threads leave free (``torch`` ops release
the interpreter lock): the engine's work can then run while the model does, instead of
after it (docs/speed.md gives what it saved where it was measured).
:func:`spare_core` says whether there is one; ``RunOptions.pipeline`` decides.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor

import torch

from .blocks import block_end
from .out_of_memory import is_out_of_memory

__all__ = [
    "PIPELINE_MAX_BYTES",
    "PIPELINE_MODES",
    "chunk_bytes",
    "pipelined_chunks",
    "set_cores",
    "settle_before_last",
    "should_pipeline",
    "spare_core",
]

#: ``RunOptions.pipeline``'s choices.
PIPELINE_MODES = ("auto", "on", "off")

#: ``"auto"`` pipelines only chunks whose perturbed inputs take at most this many bytes: the
#: next chunk's inputs and masks are held while the model runs on this one.
PIPELINE_MAX_BYTES = 2**26


#: Cores this process may use when it shares the machine (:func:`set_cores`); None: all.
_CORES: int | None = None


def set_cores(n: int | None) -> None:
    """The cores this process may use when other processes share the machine's cores (Dask
    workers, each with its share as torch threads): the pipeline's worker counts against
    them. None: every core the process may run on."""
    global _CORES
    _CORES = None if n is None else max(1, int(n))


def usable_cores() -> int:
    """Cores this process may use: :func:`set_cores`' share, else all it may run on."""
    if _CORES is not None:
        return _CORES
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def spare_core() -> bool:
    """Whether torch's CPU threads leave a core free for the engine's work."""
    return torch.get_num_threads() < usable_cores()


def should_pipeline(mode: str, device: torch.device, chunk_bytes: int) -> bool:
    """Whether a task's chunks are pipelined: ``"on"``, or ``"auto"`` on a CPU with a spare core
    and chunks of at most :data:`PIPELINE_MAX_BYTES`.

    On a GPU the model's kernels already run while the host goes on, and the engine's own
    kernels queue behind them on the same stream: ``"auto"`` leaves it alone.
    """
    if mode == "on":
        return True
    if mode == "off":
        return False
    return device.type == "cpu" and chunk_bytes <= PIPELINE_MAX_BYTES and spare_core()


def pipelined_chunks(
    task,
    runner,
    batch_size: int,
    start: int,
    known: Callable[[], int],
    cancelled: Callable[[], bool],
    chunk_end: Callable[[int], int] = block_end,
) -> Generator[int, None, tuple[int, tuple[BaseException, int] | None]]:
    """Run a task's chunks from ``start`` with the model of each in a worker thread.

    ``runner`` is the loop's :class:`~.loop.ModelRunner`: the worker calls its ``evaluate``,
    and a chunk's forwards are counted when its sums are updated. The task's ``reused``
    arrays get a second slot. A chunk from mask ``i`` ends at ``chunk_end(i)`` at the latest
    (the loop's sum blocks and checks of ``tol``).

    Yields the masks done after each chunk's sums are updated (the caller may read the
    accumulator then: no sum is in progress, though the next chunk's model call is). The
    next chunk's model call starts once this chunk's has returned and ``cancelled()`` is
    false; when it is true the generator returns after summing the chunk in progress, as
    the plain loop does. Returns ``(done, failed)``: ``failed`` is ``(out-of-memory error,
    size)`` of the chunk starting at ``done``, which is not summed (the caller backs off
    and goes on), or None. Any other error of the model propagates, with every chunk before it
    summed. Closing the generator waits for the model call in flight, and does not sum
    it: one chunk more than the plain loop evaluates.
    """
    for array in task.reused:
        array.slots = max(array.slots, 2)
    pool = ThreadPoolExecutor(1, thread_name_prefix="maskscope-model")

    def prepare(first: int):
        stop = min(first + batch_size, known(), chunk_end(first))
        batch = task.masks(first, stop)
        return batch, task.perturb(batch)

    try:
        done = start
        batch, inputs = prepare(done)
        call = pool.submit(runner.evaluate, inputs)
        while True:
            # the next chunk's masks and inputs are made while the model runs on this one
            following = prepare(batch.stop) if batch.stop < known() else None
            if following is None and batch.stop >= task.known():
                settle_before_last(task.accumulator)  # while the last model call runs
            try:
                outputs = call.result()
            except Exception as exc:
                if not is_out_of_memory(exc) or len(batch) == 1:
                    raise
                return done, (exc, len(batch))
            if following is not None and not cancelled():
                call = pool.submit(runner.evaluate, following[1])  # runs while we sum
            else:
                following = None
            runner.n_forward += len(batch)
            task.accumulator.update(batch, task.score(outputs))
            del outputs
            done = batch.stop
            yield done
            if following is None:
                return done, None
            batch = following[0]
    finally:
        pool.shutdown(wait=True)


def settle_before_last(accumulator) -> None:
    """Before the sums of a task's last chunk: the accumulator's ``before_last_chunk``.

    Both loops call it at that point (the pipelined one while the last model call runs), so
    the sums are added in the same order whether the chunks are pipelined or not. The end
    of a ``mask_range`` that is not the task's end is no such point: a split run adds its
    sums in the whole run's order. Where the last chunk starts follows the batch size, so
    where the accumulator adds its held sums here (large images only), the maps of two
    batch sizes differ by float32 rounding (they did anyway through the model's batched
    forward pass).
    """
    hook = getattr(accumulator, "before_last_chunk", None)
    if hook is not None:
        hook()


def chunk_bytes(x: torch.Tensor, batch_size: int) -> int:
    """Bytes of a chunk of ``batch_size`` perturbed inputs like ``x (1, C, *spatial)``."""
    return int(batch_size * math.prod(x.shape) * x.element_size())
