"""The one loop: masks → perturb → model → score → accumulate, chunk by chunk.

A method builds a complete :class:`Task` per image or slice (the unperturbed pass, the
target and the reference are resolved before); :func:`run_task` runs it and yields a
:class:`Step` after every chunk. The loop knows nothing of snapshots: the method asks the
task's accumulator for its estimate and wraps it in an
:class:`~maskscope.explanation.Explanation`. The loop stops after the chunk in progress
when a :class:`~.cancel.CancelToken` is set (its last step is then marked ``cancelled``),
or once the estimate is reliable enough (``RunOptions.tol``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .accumulate import Partial
from .batch_tuner import BatchTuner, device_clock
from .blocks import block_end
from .cancel import CancelToken
from .checks import is_check, next_check
from .fp32 import fp32_precision
from .host_memory import HOST_MEMORY
from .inputs import check_output
from .mask_batch import MaskBatch
from .out_of_memory import back_off as _back_off
from .out_of_memory import is_out_of_memory
from .perturb import BatchPerturbation
from .pipeline import chunk_bytes, pipelined_chunks, settle_before_last, should_pipeline
from .reused import ReusedArray
from .run_options import RunOptions
from .workers import final_workers

__all__ = [
    "ModelRunner",
    "RunOptions",
    "Step",
    "Task",
    "is_out_of_memory",
    "relative_error",
    "run_task",
]


class Accumulator(Protocol):
    """What the loop needs of an accumulator."""

    #: Whether :meth:`partial` gives a per-voxel standard error.
    has_stderr: bool

    def update(self, batch: MaskBatch, scores: torch.Tensor) -> None: ...

    def partial(self) -> Partial: ...


@dataclass
class Task:
    """One image (or one slice of a volume) to explain, complete before the loop runs it.

    Attributes
    ----------
    x
        The input ``(1, C, *spatial)`` on the device.
    n_total
        Number of perturbed inputs.
    masks
        ``(start, stop) -> MaskBatch`` of masks ``(b, 1, *spatial)`` on the device.
    perturb
        ``MaskBatch -> (b, C, *spatial)``: the perturbation bound to ``x``.
    score
        ``outputs -> (b,)`` or ``(b, P)`` scores.
    accumulator
        Receives ``(MaskBatch, scores)``; gives :class:`Partial` maps.
    target
        The explained class (None: all foreground classes).
    reference, prediction
        Label images ``(*spatial)`` (reference used by the scores, model's own prediction).
    info
        Scalars or arrays to report in the snapshot's extras (e.g. a baseline distance).
    region
        The region of interest the scores see (a boolean ``spatial`` tensor), if any.
    planned
        For a sweep that plans as it goes (adaptive HDM): ``() -> int``, how many of the
        ``n_total`` perturbations are known so far; the task ends when every planned one
        is done. None: all ``n_total``.
    reused
        The arrays that ``masks`` and ``perturb`` rewrite at every call: the loop gives them
        a second slot when it makes a chunk while the model runs on the one before.
    """

    x: torch.Tensor
    n_total: int
    masks: Callable[[int, int], MaskBatch]
    perturb: BatchPerturbation
    score: Callable[[torch.Tensor], torch.Tensor]
    accumulator: Accumulator
    target: int | None = None
    reference: torch.Tensor | None = None
    prediction: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    region: torch.Tensor | None = None
    planned: Callable[[], int] | None = None
    reused: tuple[ReusedArray, ...] = ()

    def known(self) -> int:
        """Perturbations known so far (``n_total`` unless the task plans as it goes)."""
        return self.n_total if self.planned is None else min(self.n_total, self.planned())

    @property
    def has_stderr(self) -> bool:
        """Whether the estimate has a standard error (the accumulator says)."""
        return bool(getattr(self.accumulator, "has_stderr", False))


@dataclass
class Step:
    """What the loop reports after a chunk of a task (or a step of its final pass).

    Attributes
    ----------
    n_done
        Masks of the task evaluated so far.
    batch_size
        Inputs per model call now (after the voxel limit and any out-of-memory back-off).
    partial
        The estimate, when the loop computed it anyway (early stopping); else None and
        the caller asks ``task.accumulator.partial()`` if it wants one.
    final
        The task is complete (all masks, or stopped early); ``partial`` is then set.
    stopped_early
        The estimate reached ``RunOptions.tol`` before all masks were used.
    cancelled
        The cancel token was set: the task stops here, with ``n_done`` masks.
    """

    n_done: int
    batch_size: int
    partial: Partial | None = None
    final: bool = False
    stopped_early: bool = False
    cancelled: bool = False


class ModelRunner:
    """Calls the model under ``inference_mode``, checks and counts what it returns.

    ``shapes`` holds the input shapes it has run (a measured batch size needs no warm-up
    chunk for a size the model has run at its shape).
    """

    def __init__(self, model: Callable, spatial: tuple[int, ...]) -> None:
        self.model = model
        self.spatial = tuple(spatial)
        self.n_forward = 0
        self.n_classes: int | None = None
        self.shapes: set[tuple[int, ...]] = set()

    def sizes_run(self, shape: tuple[int, ...]) -> set[int]:
        """The batch sizes it has run for inputs of ``shape`` ``(1, C, *spatial)``."""
        rest = tuple(shape[1:])
        return {s[0] for s in self.shapes if s[1:] == rest}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.evaluate(batch)
        self.n_forward += batch.shape[0]
        return out

    def evaluate(self, batch: torch.Tensor) -> torch.Tensor:
        """The checked outputs, not counted (the caller counts them once it uses them)."""
        with torch.inference_mode():
            out = self.model(batch)
        out = check_output(out, batch.shape[0], batch.shape[2:], expect_k=self.n_classes)
        if self.n_classes is None:
            self.n_classes = int(out.shape[1])
        self.shapes.add(tuple(batch.shape))
        return out


#: Input voxels per model call when ``max_batch_voxels`` is None, by device type. On one
#: CPU thread the bundled 2D U-Net runs 3.3 ms per 240² image in calls of 4–8 and 4.4 ms
#: in calls of 16, and the 3D U-Net 26 ms per 64×96×96 volume in calls of 2–4 but 82 ms
#: one at a time (hence at least 2 by default).
AUTO_BATCH_VOXELS = {"cpu": 2**19}
AUTO_BATCH_VOXELS_OTHER = 2**23

#: The largest batch a measured batch size tries: inputs, and input voxels (a memory
#: bound; ``max_batch_voxels`` replaces it when set).
TUNE_MAX_BATCH = 256
TUNE_BATCH_VOXELS = 2**23

#: On a CUDA device, the input voxels of one call are bounded by the free memory (read
#: once per device, see :func:`device_batch_voxels`) over this many bytes per input
#: voxel (a network's activations take some tens to hundreds: the bundled 3D U-Net 34 in
#: float32) instead of a fixed count. An out-of-memory error still halves the batch.
CUDA_BYTES_PER_VOXEL = 1024


_DEVICE_VOXELS: dict[str, int] = {}


def device_batch_voxels(device: torch.device) -> int | None:
    """Input voxels per call that the free memory of a CUDA device affords (else None).

    Read once per device in a process (what PyTorch's allocator holds unused counts as
    free) and rounded down to a power of two: the bound, and so the batch sizes a run
    measures or is capped at, stays the same from run to run, and a remembered batch
    measurement is replayed (an out-of-memory error still halves the batch).
    """
    if device.type != "cuda":
        return None
    key = str(device)
    if key not in _DEVICE_VOXELS:
        free, _ = torch.cuda.mem_get_info(device)
        held = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        voxels = max(1, (int(free) + int(held)) // CUDA_BYTES_PER_VOXEL)
        _DEVICE_VOXELS[key] = 1 << (voxels.bit_length() - 1)
    return _DEVICE_VOXELS[key]


def tune_limit(options: RunOptions, x: torch.Tensor) -> int:
    """Largest batch a measured batch size tries for inputs like ``x (1, C, *spatial)``."""
    voxels = options.max_batch_voxels or device_batch_voxels(x.device) or TUNE_BATCH_VOXELS
    return max(1, min(TUNE_MAX_BATCH, voxels // x.numel()))


def batch_limit(options: RunOptions, x: torch.Tensor) -> int:
    """Largest batch for inputs like ``x (1, C, *spatial)`` under ``max_batch_voxels``."""
    if options.max_batch_voxels is not None:
        return max(1, options.max_batch_voxels // x.numel())
    limit = AUTO_BATCH_VOXELS.get(x.device.type) or device_batch_voxels(x.device)
    return max(2, (limit or AUTO_BATCH_VOXELS_OTHER) // x.numel())


def relative_error(partial: Partial) -> float | None:
    """RMS standard error over the map's spread (its standard deviation over voxels).

    None without a standard error. ``1 − relative_error²`` estimates the map's reliability.
    """
    if partial.stderr is None:
        return None
    spread = float(partial.map.double().std()) if partial.map.numel() > 1 else 0.0
    rms = float(torch.sqrt(torch.mean(partial.stderr.double() ** 2)))
    if spread <= 0:
        return 0.0 if rms == 0 else math.inf
    return rms / spread


def run_task(
    task: Task,
    runner: ModelRunner,
    options: RunOptions,
    *,
    batch_size: int | None,
    cancel: CancelToken | None = None,
    tuner: BatchTuner | None = None,
    mask_range: tuple[int, int] | None = None,
) -> Iterator[Step]:
    """Run one task chunk by chunk, yielding a :class:`Step` after each.

    ``batch_size`` is the largest batch to use (the caller carries the last step's value
    to the next task, so a back-off lasts). With a ``tuner`` (and ``batch_size`` None)
    the batch size is measured (see :mod:`~maskscope._engine.batch_tuner`); the tuner
    carries what it measured to the next task. The last step has ``final=True``, or
    ``cancelled=True`` when ``cancel`` was set before a chunk. A model's exception
    propagates: the chunks before it are in the accumulator. ``mask_range = (start,
    stop)`` runs only those masks (``start`` a multiple of
    :data:`~.blocks.SUM_BLOCK`). No chunk straddles a multiple of
    :data:`~.blocks.SUM_BLOCK`, so every block of masks is chunked alike in any run.
    On a CPU, ``options.host_memory="keep"`` holds :data:`~.host_memory.HOST_MEMORY`
    until the task ends (or its generator is closed). On a CUDA device the task's matrix
    products (the engine's and the model's) run in IEEE float32, TensorFloat-32 off,
    until it ends (:mod:`~.fp32`), whatever the process asked for.
    """
    on_cuda = task.x.device.type == "cuda"
    with HOST_MEMORY.kept_for(task.x.device, options.host_memory):
        with fp32_precision(matmul="ieee") if on_cuda else nullcontext():
            yield from _run_chunks(task, runner, options, batch_size, cancel, tuner, mask_range)


def _run_chunks(task, runner, options, batch_size, cancel, tuner, mask_range) -> Iterator[Step]:
    """:func:`run_task`'s loop."""
    if tuner is not None:
        tuner.clock = tuner.clock or device_clock(task.x.device)
        where = (str(task.x.device), str(task.x.dtype), options.host_memory)
        # a CPU run affords the sizes a quarter of its inputs pays for, from 1 up; a GPU,
        # whose best sizes are the large ones, tries them from the largest down
        cpu = task.x.device.type == "cpu"
        total = task.n_total if cpu else None
        sizes_run = getattr(runner, "sizes_run", None)  # the unperturbed pass ran batch 1
        warm = sizes_run(tuple(task.x.shape)) if sizes_run is not None else ()
        limit = tune_limit(options, task.x)
        tuner.begin(tuple(task.x.shape), limit, where, total, warm, descending=not cpu)
        batch_size = tuner.size()
    else:
        batch_size = min(batch_size or 1, batch_limit(options, task.x))
    done, end = mask_range if mask_range is not None else (0, None)
    first_check = options.min_masks if options.tol is not None else None

    def known() -> int:  # the masks planned so far (an adaptive sweep plans as it goes)
        return task.known() if end is None else min(end, task.known())

    def chunk_end(first: int) -> int:  # no chunk straddles a sum block or a check of tol
        ends = block_end(first)
        return ends if first_check is None else min(ends, next_check(first, first_check))

    while done < known():
        if cancel is not None and cancel.cancelled:
            yield Step(done, batch_size, cancelled=True)
            return
        if (tuner is None or not tuner.measuring) and should_pipeline(
            options.pipeline, task.x.device, chunk_bytes(task.x, batch_size)
        ):
            is_cancelled = lambda: cancel is not None and cancel.cancelled  # noqa: E731
            chunks = pipelined_chunks(
                task, runner, batch_size, done, known, is_cancelled, chunk_end
            )
        else:
            chunks = _one_chunk(task, runner, batch_size, done, known, tuner, chunk_end)
        with closing(chunks):  # closing a pipeline waits for its model call in flight
            while True:
                try:
                    done = next(chunks)
                except StopIteration as over:
                    done, failed = over.value
                    break
                if tuner is not None:
                    batch_size = tuner.size()
                partial = None
                if first_check is not None and is_check(done, first_check):
                    partial = task.accumulator.partial()
                    reliability = partial.reliability
                    if reliability is not None and 1.0 - reliability <= options.tol:
                        chunks.close()  # a model call in flight is not summed
                        yield from _finish(task, done, batch_size, cancel, options, True)
                        return
                if done < known():
                    yield Step(done, batch_size, partial)
        if failed is not None:
            exc, size = failed
            batch_size = _back_off(size, exc)
            if tuner is not None:
                batch_size = tuner.out_of_memory(size)
    yield from _finish(task, done, batch_size, cancel, options)


def _one_chunk(task, runner, batch_size, done, known, tuner, chunk_end):
    """One chunk in this thread, timed by the tuner: :func:`~.pipeline.pipelined_chunks`'
    protocol (yields the masks done; returns ``(done, (out-of-memory error, size) or None)``).
    """
    stop = min(done + batch_size, known(), chunk_end(done))
    if tuner is not None:
        tuner.start()
    batch = task.masks(done, stop)
    try:
        outputs = runner(task.perturb(batch))
    except Exception as exc:
        if not is_out_of_memory(exc) or stop - done == 1:
            raise
        return done, (exc, stop - done)
    if stop >= task.known():
        settle_before_last(task.accumulator)
    task.accumulator.update(batch, task.score(outputs))
    del batch, outputs
    if tuner is not None:
        tuner.done(stop - done)
    yield stop
    return stop, None


def _finish(task: Task, done, batch_size, cancel, options, stopped_early: bool = False):
    """The accumulator's final pass (PixelRISE max over all pixels, in as many threads as
    the cores hold at torch's thread count: :func:`~.workers.final_workers`), then the final
    step."""
    finish = getattr(task.accumulator, "finish", None)
    if finish is not None:
        for _ in finish(workers=final_workers(options.pipeline, task.x.device)):
            if cancel is not None and cancel.cancelled:
                yield Step(done, batch_size, cancelled=True, stopped_early=stopped_early)
                return
            yield Step(done, batch_size, stopped_early=stopped_early)
    final = task.accumulator.partial()
    yield Step(done, batch_size, final, final=True, stopped_early=stopped_early)
