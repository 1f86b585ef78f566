"""Deletion and insertion curves for segmentation (Petsiuk et al. 2018), streamed.

The voxels are ordered by saliency (highest first; ties keep the lower flat index first).
At step ``k`` of ``steps``, the first ``floor(k · V / steps)`` voxels of the order are
removed (deletion: replaced by the substrate, in every channel) or inserted (insertion: the
substrate with those voxels taken from the image). Each perturbed input is scored by the
hard Dice of its segmentation against the reference and by the mean probability of the
reference class over the reference segment. The random baseline does the same in random
voxel orders.

Every function here is, or drains, one generator that yields a snapshot after each model
call; closing the generator, or a ``cancel`` that turns true, stops it before the next call.
"""

from __future__ import annotations

import inspect
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._engine.host_memory import HOST_MEMORY
from .._engine.loop import is_out_of_memory
from ._setup import SCORES, Problem, prepare_problem
from .result import Curve, FaithfulnessResult
from .substrates import substrate_name

__all__ = [
    "deletion",
    "faithfulness",
    "insertion",
    "iter_deletion",
    "iter_faithfulness",
    "iter_insertion",
    "random_orders",
    "saliency_order",
    "step_counts",
]

Cancel = Callable[[], bool] | threading.Event | None


def saliency_order(saliency: np.ndarray) -> np.ndarray:
    """Flat voxel indices, most salient first; equal values keep the lower index first."""
    flat = np.asarray(saliency, dtype=np.float64).ravel()
    return np.argsort(-flat, kind="stable")


def random_orders(n_voxels: int, n: int, seed: int) -> list[np.ndarray]:
    """``n`` random voxel orders from one seeded generator (the same seed, the same orders)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n_voxels) for _ in range(n)]


def step_counts(n_voxels: int, steps: int) -> np.ndarray:
    """Voxels removed or inserted at each of the ``steps + 1`` points: ``k · V // steps``."""
    return np.arange(steps + 1, dtype=np.int64) * n_voxels // steps


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be a positive int, got {steps!r}")
    if steps <= 0:
        raise ValueError(f"steps must be a positive int (steps per curve), got {steps}")
    return int(steps)


def _check_n_random(n_random: Any) -> int:
    if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)):
        raise TypeError(f"n_random must be an int >= 0, got {n_random!r}")
    if n_random < 0:
        raise ValueError(f"n_random must be >= 0 (random orders in the baseline), got {n_random}")
    return int(n_random)


def _is_cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@dataclass
class _Job:
    """One curve to compute: a kind and its voxel orders, filled in place."""

    name: str
    curve_kind: str
    order_kind: str
    orders: list[np.ndarray]
    runs: dict[str, np.ndarray]

    def snapshot(self, fractions: np.ndarray) -> Curve:
        return Curve(
            self.curve_kind,
            self.order_kind,
            fractions.copy(),
            {k: v.copy() for k, v in self.runs.items()},
        )


def _perturbed(problem: Problem, rank: torch.Tensor, counts: torch.Tensor, kind: str):
    """Inputs for the steps with these voxel counts: ``(b, C, *spatial)``."""
    shape = (-1,) + (1,) * (rank.ndim + 1)
    removed = rank.unsqueeze(0).unsqueeze(0) < counts.view(shape)
    if kind == "deletion":
        return torch.where(removed, problem.substrate, problem.x)
    return torch.where(removed, problem.x, problem.substrate)


def _run_jobs(
    problem: Problem, jobs: list[_Job], counts: np.ndarray, cancel: Cancel
) -> Iterator[None]:
    """Fill every job's runs batch by batch; yield after each model call."""
    device = problem.x.device
    counts_t = torch.from_numpy(counts).to(device)
    for job in jobs:
        for i, order in enumerate(job.orders):
            # voxels outside the window rank last of all: never removed nor inserted
            rank = np.full(int(np.prod(problem.spatial)), order.size, dtype=np.int64)
            rank[order] = np.arange(order.size, dtype=np.int64)
            rank_t = torch.from_numpy(rank).to(device).view(problem.spatial)
            start = 0
            while start < len(counts):
                if _is_cancelled(cancel):
                    return
                stop = min(start + problem.batch_size, len(counts))
                scores = _score_batch(problem, rank_t, counts_t[start:stop], job.curve_kind)
                if scores is None:  # out of memory: the same steps again, in smaller batches
                    continue
                for name in SCORES:
                    job.runs[name][i, start:stop] = scores[name].cpu().numpy()
                start = stop
                yield None


def _score_batch(problem: Problem, rank: torch.Tensor, counts: torch.Tensor, kind: str):
    """Scores of one batch of steps, or None after halving ``problem.batch_size`` on OOM."""
    try:
        return problem.score(problem.runner(_perturbed(problem, rank, counts, kind)))
    except Exception as exc:
        if not is_out_of_memory(exc) or len(counts) == 1:
            raise
    problem.batch_size = max(1, len(counts) // 2)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    warnings.warn(
        f"out of memory with a batch of {len(counts)}; continuing with batches of "
        f"{problem.batch_size}: the curves do not change",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


def _make_jobs(problem: Problem, kinds: tuple[str, ...], n_random: int, seed: int, n_points: int):
    def runs(n: int) -> dict[str, np.ndarray]:
        return {name: np.full((n, n_points), np.nan) for name in SCORES}

    voxels = problem.voxels  # the window's flat indices; orders are of these
    order = voxels[saliency_order(problem.saliency.ravel()[voxels])]
    rand = [voxels[r] for r in random_orders(problem.n_voxels, n_random, seed)]
    jobs = []
    for kind in kinds:
        jobs.append(_Job(kind, kind, "saliency", [order], runs(1)))
    for kind in kinds:
        if rand:
            jobs.append(_Job(f"random_{kind}", kind, "random", rand, runs(len(rand))))
    return jobs


def _check_kinds(kinds: Any) -> tuple[str, ...]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    bad = [k for k in kinds if k not in ("deletion", "insertion")]
    if bad or not kinds:
        raise ValueError(
            f"kinds must be 'deletion', 'insertion' or both, got {bad or list(kinds)!r}"
        )
    return tuple(dict.fromkeys(kinds))


def iter_faithfulness(
    source: Any,
    *,
    model: Callable,
    image: Any = None,
    reference: Any = None,
    target: int | None = None,
    roi: Any = None,
    substrate: str | Callable = "zero",
    steps: int = 50,
    n_random: int = 1,
    seed: int = 0,
    kinds: str | tuple[str, ...] = ("deletion", "insertion"),
    batch_size: int = 16,
    blur_sigma: float = 5.0,
    outputs: str = "logits",
    spatial_dims: int | None = None,
    output_key: str | int | None = None,
    output: Callable | None = None,
    pad_multiple: int | tuple[int, ...] | None = None,
    pad_mode: str = "zeros",
    window: Any = "auto",
    slice_index: int | None = None,
    cancel: Cancel = None,
) -> Iterator[FaithfulnessResult]:
    """Deletion and insertion curves of a map and of random orders, yielded as they fill.

    Parameters
    ----------
    source
        An :class:`~maskscope.Explanation` (its map, image, reference and target are used
        unless given here) or a saliency map shaped like the image's spatial axes.
    model
        The segmentation model that made the map (``(B, C, *spatial)`` → ``(B, K, *spatial)``).
    image
        ``(H, W)``, ``(C, H, W)``, ``(D, H, W)`` or ``(C, D, H, W)``; needed with a raw map.
    reference
        Label image to score against; default: the explanation's reference, else the
        model's prediction on the image.
    target
        The class scored; None: all foreground classes (Dice averaged over them, each
        voxel's own class for the probability).
    roi
        Score inside a region of interest only, as the methods' ``roi=`` does (an
        :class:`~maskscope.ROI`, a box or a boolean mask): outside it every voxel counts
        as background, so what the model segments elsewhere is no false positive.
        Default: the explanation's ``roi`` when it explained one.
    substrate, blur_sigma
        ``"zero"``, ``"blur"`` (Gaussian of ``blur_sigma`` voxels), ``"min"`` (each
        channel's minimum) or a callable ``(C, *spatial) -> (C, *spatial)``.
    steps
        Steps per curve: ``steps + 1`` perturbed inputs per curve and order.
    n_random, seed
        Random orders averaged in the baseline (0: no baseline), and their seed.
    kinds
        ``"deletion"``, ``"insertion"`` or both.
    batch_size
        Perturbed inputs per model call (the curves change by the float rounding of the
        model's batched forward pass at most).
    outputs, spatial_dims
        ``"logits"`` or ``"probabilities"``; 2 or 3 when the model does not tell.
    output_key, output, pad_multiple, pad_mode
        How the model is called, as for the methods (:class:`~maskscope.SegRISE` and the
        others): which part of a dict or tuple output is the segmentation, and padding
        of the input to a multiple (the output cropped back). Use the explanation's.
    slice_index
        For an explanation made slice by slice (a 2D model on a volume): the slice to
        evaluate, one of ``source.slices``. Its map, its image (as the run saw it,
        normalised over the volume), its part of the reference, of the ROI and of the crop
        window are taken.
    window
        The voxels that the curves order, remove and insert (the others keep the image's
        values in deletion and the substrate's in insertion); fractions are of these.
        ``"auto"`` (the default): the crop window of an explanation made in crop mode
        (``roi=`` with ``crop``: outside the window its map holds a fill, not saliency),
        else the whole image. None or ``"full"``: the whole image. Or a box
        (``"z0:z1,y0:y1,x0:x1"``, one slice or ``(start, stop)`` per axis, or the
        ``[start, stop]`` lists that results and params hold), a boolean mask or an
        :class:`~maskscope.ROI`.
    cancel
        A callable or ``threading.Event`` checked before every model call: when it is
        true, the generator stops (the last snapshot stays partial).

    Returns
    -------
    Iterator[FaithfulnessResult]
        Snapshots after every model call, the last one with ``done=True``. The inputs are
        checked, and the model run once on the image, before the generator is returned.
    """
    return _Evaluation(source, locals()).generate()  # locals(): the arguments by name


class _Evaluation:
    """One evaluation: the checked problem, its jobs, and the snapshots of their state."""

    def __init__(self, source: Any, args: dict[str, Any]) -> None:
        self.t0 = time.perf_counter()
        self.steps = _check_steps(args["steps"])
        self.n_random = _check_n_random(args["n_random"])
        kinds = _check_kinds(args["kinds"])
        self.seed = int(args["seed"])
        self.slice_index = args["slice_index"]
        self.substrate = substrate_name(args["substrate"])
        self.cancel = args["cancel"]
        names = ("model", "image", "reference", "target", "roi", "substrate", "blur_sigma")
        names += ("batch_size", "outputs", "spatial_dims", "output_key", "output")
        names += ("pad_multiple", "pad_mode", "window", "slice_index")
        self.problem = prepare_problem(source, **{k: args[k] for k in names})
        if self.steps > self.problem.n_voxels:  # steps of no voxel: model calls for nothing
            where = " (of the window)" if self.problem.window is not None else ""
            raise ValueError(
                f"steps must be at most the {self.problem.n_voxels} voxels{where} the curve orders "
                f"(one or more voxels per step), got {self.steps}"
            )
        self.counts = step_counts(self.problem.n_voxels, self.steps)
        self.fractions = self.counts / self.problem.n_voxels
        self.jobs = _make_jobs(self.problem, kinds, self.n_random, self.seed, len(self.counts))

    def snapshot(self, done: bool) -> FaithfulnessResult:
        """The curves as they are now."""
        curves = {job.name: job.snapshot(self.fractions) for job in self.jobs}
        return FaithfulnessResult(
            deletion=curves.get("deletion"),
            insertion=curves.get("insertion"),
            random_deletion=curves.get("random_deletion"),
            random_insertion=curves.get("random_insertion"),
            substrate=self.substrate,
            steps=self.steps,
            n_random=self.n_random,
            seed=self.seed,
            target=self.problem.target,
            method=self.problem.method,
            n_forward=self.problem.runner.n_forward,
            n_voxels=self.problem.n_voxels,
            window=self.problem.window,
            slice_index=self.slice_index,
            elapsed=time.perf_counter() - self.t0,
            done=done,
        )

    def generate(self) -> Iterator[FaithfulnessResult]:
        """Snapshots after every model call; the last one done unless cancelled."""
        with HOST_MEMORY.kept_for(self.problem.x.device):  # the model's freed memory stays
            for _ in _run_jobs(self.problem, self.jobs, self.counts, self.cancel):
                yield self.snapshot(False)
        if all(job.snapshot(self.fractions).done for job in self.jobs):
            yield self.snapshot(True)


def faithfulness(source: Any, **kwargs: Any) -> FaithfulnessResult:
    """Run :func:`iter_faithfulness` to the end and return the last snapshot.

    Takes the same arguments. When ``cancel`` stops it, the last (partial) snapshot is
    returned (with empty curves when it stopped before the first model call).
    """
    bound = inspect.signature(iter_faithfulness).bind(source, **kwargs)
    bound.apply_defaults()
    evaluation = _Evaluation(source, bound.arguments)
    last = None
    for last in evaluation.generate():  # noqa: B007
        pass
    return last if last is not None else evaluation.snapshot(False)


def _iter_one(kind: str, source: Any, kwargs: dict[str, Any]) -> Iterator[Curve]:
    results = iter_faithfulness(source, **{**kwargs, "kinds": (kind,), "n_random": 0})
    return (getattr(result, kind) for result in results)


def iter_deletion(source: Any, **kwargs: Any) -> Iterator[Curve]:
    """The deletion curve of a map, yielded after every model call (no random baseline).

    Takes the arguments of :func:`iter_faithfulness` but ``kinds`` and ``n_random``.
    """
    _reject(kwargs)
    return _iter_one("deletion", source, kwargs)


def iter_insertion(source: Any, **kwargs: Any) -> Iterator[Curve]:
    """The insertion curve of a map, yielded after every model call (no random baseline).

    Takes the arguments of :func:`iter_faithfulness` but ``kinds`` and ``n_random``.
    """
    _reject(kwargs)
    return _iter_one("insertion", source, kwargs)


def deletion(source: Any, **kwargs: Any) -> Curve:
    """The complete deletion curve of a map (drains :func:`iter_deletion`)."""
    return _drain(iter_deletion(source, **kwargs))


def insertion(source: Any, **kwargs: Any) -> Curve:
    """The complete insertion curve of a map (drains :func:`iter_insertion`)."""
    return _drain(iter_insertion(source, **kwargs))


def _drain(gen: Iterator[Curve]) -> Curve:
    last = None
    for last in gen:  # noqa: B007
        pass
    if last is None:
        raise RuntimeError("the curve was cancelled before its first model call")
    return last


def _reject(kwargs: dict[str, Any]) -> None:
    for name in ("kinds", "n_random"):
        if name in kwargs:
            raise TypeError(f"{name} is set by this function; use iter_faithfulness for it")
