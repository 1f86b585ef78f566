"""The one loop: masks → perturb → model → score → accumulate → snapshot, chunk by chunk.

Every method and both GUIs go through :func:`run_parts`, a generator of
:class:`~maskscope.explanation.Explanation` snapshots. A :class:`~.cancel.CancelToken`
stops the run from any thread after the chunk in progress (the last snapshot is then marked
``cancelled``); closing the generator cancels it from the thread that advances it. Nothing
already yielded changes afterwards. An exception leaving the loop carries the snapshot of
the finished chunks as ``exc.partial`` (None when nothing was finished).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..explanation import Explanation
from .accumulate import Partial
from .cancel import CancelToken
from .inputs import check_output
from .params import param, validate_params
from .perturb import Perturbation

__all__ = [
    "ModelRunner",
    "Part",
    "RunOptions",
    "Task",
    "is_out_of_memory",
    "relative_error",
    "run_parts",
]


@dataclass
class RunOptions:
    """How a run is executed (shared by every method; not part of the method's maths)."""

    seed: int = param(0, help="Seed of the random masks: same seed, same map.", min=0)
    batch_size: int = param(
        16,
        help="Perturbed inputs per model call (same masks for any value; the map changes "
        "by float rounding at most).",
        min=1,
    )
    max_chunk_voxels: int | None = param(
        None,
        help="Input voxels per model call at most: large images go in smaller batches "
        "(None = automatic: 2**19 on a CPU, where the model's activations then stay in "
        "the caches, at least 2 inputs; 2**23 elsewhere, which bounds memory).",
        min=1,
        gui=False,
    )
    tol: float | None = param(
        None,
        help="Stop early once the map's predicted disagreement with another seed's map, "
        "1 − reliability, falls below this value (RISE family; None = never).",
        label="early-stop tolerance",
        min=0.0,
        min_exclusive=True,
        max=1.0,
        step=0.01,
    )
    min_masks: int = param(
        100, help="Masks evaluated before early stopping may stop the run.", min=2
    )
    yield_every: float = param(
        0.0,
        help="Seconds between streamed snapshots (0 = after every chunk).",
        min=0.0,
        gui=False,
    )

    def __post_init__(self) -> None:
        validate_params(self)


class Accumulator(Protocol):
    """What the loop needs of an accumulator."""

    def update(self, start: int, masks: torch.Tensor, scores: torch.Tensor) -> None: ...

    def partial(self) -> Partial: ...


@dataclass
class Task:
    """One image (or one slice of a volume) to explain.

    Attributes
    ----------
    x
        The input ``(1, C, *spatial)`` on the device.
    n_total
        Number of perturbed inputs.
    masks
        ``(start, stop) -> (b, 1, *spatial)`` masks on the device.
    perturb
        ``(x, masks) -> (b, C, *spatial)``.
    score
        ``outputs -> (b,)`` or ``(b, P)`` scores.
    accumulator
        Receives ``(start, masks, scores)``; gives :class:`Partial` maps.
    reference, prediction
        Label images ``(*spatial)`` (reference used by the scores, model's own prediction).
    info
        Scalars or arrays to report in the snapshot's extras (e.g. a baseline distance).
    has_stderr
        Whether the accumulator gives a standard error (early stopping needs one).
    """

    x: torch.Tensor
    n_total: int
    masks: Callable[[int, int], torch.Tensor]
    perturb: Perturbation
    score: Callable[[torch.Tensor], torch.Tensor]
    accumulator: Accumulator
    reference: torch.Tensor | None = None
    prediction: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    has_stderr: bool = True


@dataclass
class Part:
    """Where a task goes in the output, and how to build it (lazily, inside the loop).

    ``prepare`` runs the unperturbed forward pass and returns the :class:`Task`, or None
    when this slice has nothing to explain (it is then left at 0 and listed as skipped).
    """

    index: int | None
    n_total: int
    prepare: Callable[[], Task | None]


class ModelRunner:
    """Calls the model under ``inference_mode``, checks and counts what it returns."""

    def __init__(self, model: Callable, spatial: tuple[int, ...]) -> None:
        self.model = model
        self.spatial = tuple(spatial)
        self.n_forward = 0
        self.n_classes: int | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(batch)
        out = check_output(out, batch.shape[0], batch.shape[2:], expect_k=self.n_classes)
        if self.n_classes is None:
            self.n_classes = int(out.shape[1])
        self.n_forward += batch.shape[0]
        return out


#: Input voxels per model call when ``max_chunk_voxels`` is None, by device type. On one
#: CPU thread the bundled 2D U-Net runs 3.3 ms per 240² image in calls of 4–8 and 4.4 ms
#: in calls of 16, and the 3D U-Net 26 ms per 64×96×96 volume in calls of 2–4 but 82 ms
#: one at a time (hence at least 2 by default).
AUTO_CHUNK_VOXELS = {"cpu": 2**19}
AUTO_CHUNK_VOXELS_OTHER = 2**23


def chunk_limit(options: RunOptions, x: torch.Tensor) -> int:
    """Largest batch for inputs like ``x (1, C, *spatial)`` under ``max_chunk_voxels``."""
    if options.max_chunk_voxels is not None:
        return max(1, options.max_chunk_voxels // x.numel())
    limit = AUTO_CHUNK_VOXELS.get(x.device.type, AUTO_CHUNK_VOXELS_OTHER)
    return max(2, limit // x.numel())


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is a device running out of memory (CUDA, MPS, XPU, CPU)."""
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _back_off(size: int, exc: BaseException) -> int:
    """Halve the batch after an out-of-memory error; the same masks are recomputed."""
    new = max(1, size // 2)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    warnings.warn(
        f"out of memory with a batch of {size} ({str(exc).splitlines()[0][:120]}); "
        f"continuing with batches of {new}: the same masks, so the map changes by float "
        "rounding at most",
        RuntimeWarning,
        stacklevel=4,
    )
    return new


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


def _trust(task: Task, partial: Partial) -> tuple[float | None, float | None]:
    """The relative error (with a standard error) and the reliability of a partial map."""
    return (relative_error(partial) if task.has_stderr else None), partial.reliability


def _np(t: torch.Tensor | None, dtype: Any = None) -> np.ndarray | None:
    if t is None:
        return None
    arr = t.detach().to("cpu").numpy()
    return arr.astype(dtype) if dtype is not None else arr.copy()


class _Canvas:
    """Assembles per-part results into full-size arrays for a snapshot."""

    def __init__(self, spatial: tuple[int, ...], sliced: bool) -> None:
        self.spatial = spatial
        self.sliced = sliced
        self.done: dict[int | None, dict[str, np.ndarray]] = {}

    @staticmethod
    def collect(task: Task, partial: Partial) -> dict[str, np.ndarray]:
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
        return out

    def assemble(self, current: tuple[int | None, dict[str, np.ndarray]] | None):
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


def run_parts(
    parts: list[Part],
    runner: ModelRunner,
    options: RunOptions,
    *,
    method: str,
    params: dict[str, Any],
    spatial: tuple[int, ...],
    sliced: bool,
    image: np.ndarray,
    voxel_spacing: tuple[float, ...],
    target_of: Callable[[], int | None],
    progress: bool | Callable[[Explanation], None] = False,
    cancel: CancelToken | None = None,
) -> Iterator[Explanation]:
    """Run the parts chunk by chunk and yield snapshots.

    A snapshot is yielded after the first chunk, then after each chunk (or at most every
    ``options.yield_every`` seconds), and once more at the end with ``done=True``. When
    ``cancel`` is set (checked before each part and each chunk), the last snapshot has
    ``cancelled=True`` instead. An exception is re-raised with ``exc.partial``, the
    snapshot of the chunks finished before it (or None).
    """
    t0 = time.perf_counter()
    n_total = sum(p.n_total for p in parts)
    n_done = 0
    canvas = _Canvas(spatial, sliced)
    skipped: list[int] = []
    stopped_early = False
    rel_err: float | None = None
    reliability: float | None = None
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, desc=method, unit="mask", leave=True)
    callback = progress if callable(progress) else None
    last_yield = -math.inf
    n_yields = 0
    batch_size = options.batch_size

    def snapshot(current, *, done: bool = False, cancelled: bool = False, notify: bool = True):
        arrays = canvas.assemble(current)
        extras = {k[len("extra__") :]: v for k, v in arrays.items() if k.startswith("extra__")}
        run_params = dict(params)
        run_params["chunk_size"] = batch_size  # the batch size used (after limits, back-off)
        if skipped:
            run_params["skipped_slices"] = list(skipped)
        computed = tuple(sorted(z for z in canvas.done if z is not None))
        if current is not None and current[0] is not None:
            computed = tuple(sorted({*computed, current[0]}))
        snap = Explanation(
            method=method,
            map=arrays.get("map", np.zeros(spatial)),
            params=run_params,
            n_done=n_done,
            n_total=n_total,
            elapsed=time.perf_counter() - t0,
            stderr=arrays.get("stderr"),
            extras=extras,
            reference=arrays.get("reference"),
            prediction=arrays.get("prediction"),
            image=image,
            voxel_spacing=voxel_spacing,
            slices=computed if sliced else None,
            n_forward=runner.n_forward,
            done=done,
            cancelled=cancelled,
            stopped_early=stopped_early,
            rel_error=rel_err,
            reliability=reliability,
            target=target_of(),
        )
        if callback is not None and notify:
            callback(snap)
        return snap

    def live_part() -> tuple[int | None, dict[str, np.ndarray]] | None:
        if task is None or part_done == 0:
            return None
        return (part.index, canvas.collect(task, task.accumulator.partial()))

    def finished_work() -> Explanation | None:
        cur = live_part()
        return None if cur is None and not canvas.done else snapshot(cur, notify=False)

    def stop_requested() -> bool:
        return cancel is not None and cancel.cancelled

    def due() -> bool:
        return n_yields == 0 or time.perf_counter() - last_yield >= options.yield_every

    task: Task | None = None
    part_done = 0
    try:
        for part in parts:
            task, part_done = None, 0
            if stop_requested():
                yield snapshot(None, cancelled=True)
                return
            task = part.prepare()
            if task is None:
                skipped.append(part.index)
                n_total -= part.n_total
                continue
            part_done = 0
            start = 0
            batch_size = min(batch_size, chunk_limit(options, task.x))
            while start < task.n_total:
                if stop_requested():
                    yield snapshot(live_part(), cancelled=True)
                    return
                stop = min(start + batch_size, task.n_total)
                masks = task.masks(start, stop)
                try:
                    outputs = runner(task.perturb(task.x, masks))
                except Exception as exc:
                    if not is_out_of_memory(exc) or stop - start == 1:
                        raise
                    del masks
                    batch_size = _back_off(stop - start, exc)
                    continue
                task.accumulator.update(start, masks, task.score(outputs))
                n_done += stop - start
                part_done = stop
                if bar is not None:
                    bar.update(stop - start)
                partial = None
                if options.tol is not None and part_done >= options.min_masks:
                    partial = task.accumulator.partial()
                    rel_err, reliability = _trust(task, partial)
                    if reliability is not None and 1.0 - reliability <= options.tol:
                        stopped_early = True
                        n_total -= task.n_total - part_done
                        if bar is not None:
                            bar.total = n_total
                        break
                if stop < task.n_total and due():
                    partial = partial or task.accumulator.partial()
                    rel_err, reliability = _trust(task, partial)
                    yield snapshot((part.index, canvas.collect(task, partial)))
                    last_yield, n_yields = time.perf_counter(), n_yields + 1
                start = stop
            finish = getattr(task.accumulator, "finish", None)
            if finish is not None:
                for _ in finish():
                    if stop_requested():
                        yield snapshot(live_part(), cancelled=True)
                        return
                    if due():
                        current = canvas.collect(task, task.accumulator.partial())
                        yield snapshot((part.index, current))
                        last_yield, n_yields = time.perf_counter(), n_yields + 1
            final = task.accumulator.partial()
            rel_err, reliability = _trust(task, final)
            canvas.done[part.index] = canvas.collect(task, final)
            if part is not parts[-1] and due():
                yield snapshot(None)
                last_yield, n_yields = time.perf_counter(), n_yields + 1
        if not canvas.done:
            raise ValueError(
                "nothing to explain: the reference segmentation is empty for the target "
                f"in every slice ({len(skipped)} slices)"
            )
        yield snapshot(None, done=True)
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            _attach_partial(exc, lambda: finished_work())
        raise
    finally:
        if bar is not None:
            bar.close()


def _attach_partial(exc: BaseException, build: Callable[[], Explanation | None]) -> None:
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
