"""RISE: randomized input sampling (Petsiuk et al. 2018), for classifiers and segments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._engine.accumulate import WeightedSum
from .._engine.covariate import RegionCovariate, mask_kernels
from .._engine.crop import WindowMasks
from .._engine.loop import Task
from .._engine.masks import SAMPLINGS, RiseMasks
from .._engine.params import param
from .._engine.perturb import blend_into
from .._engine.scores import class_probability, region_index, region_mean_probability
from .._engine.targets import ChannelMasks, PerChannel
from .._engine.weighted_sum import ESTIMATORS
from .base import Method
from .context import Context

__all__ = ["RISE", "RISEParams", "rise_task"]


@dataclass
class RISEParams:
    """Parameters of RISE-style random masks (shared by RISE, PixelRISE and SegRISE)."""

    n_masks: int = param(
        2000, help="Number of random masks N (more masks, less noise).", min=1, max=1_000_000
    )
    grid: int | tuple[int, ...] = param(
        6, help="Grid cells s per axis of the random masks (larger = finer detail).", min=1
    )
    p_keep: float = param(
        0.5,
        help="Probability p that a grid cell is kept (shows the input); below 1, or no "
        "mask hides anything.",
        min=0.0,
        min_exclusive=True,
        max=1.0,
        max_exclusive=True,
        step=0.05,
    )
    baseline: float | str = param(
        0.0,
        help="What hidden voxels become: 0 (multiply), a value, or the image's 'min' / 'mean'.",
        choices=("min", "mean"),
    )
    estimator: str = param(
        "covariate",
        help="'covariate' also regresses the weights on the share of the segment each mask "
        "keeps (same expectation, 3–4× fewer masks for the same agreement); 'centred' "
        "subtracts the mean weight times each voxel's coverage; 'paper' is the published "
        "Σ w·m / (N·p).",
        choices=ESTIMATORS,
    )
    sampling: str = param(
        "iid",
        help="How mask grids are drawn: 'iid' (independent cells) or 'stratified' (each "
        "cell kept in a fixed share of every 256 masks).",
        choices=SAMPLINGS,
    )


def _region_covariate(ctx: Context, params: RISEParams, masks: RiseMasks):
    """The explained segment's :class:`RegionCovariate` for ``estimator="covariate"``.

    None for the other estimators, and where there is no segment (a classifier, or a
    reference without the explained class): the estimator is then the centred one.
    """
    if params.estimator != "covariate" or ctx.reference is None:
        return None
    region = ctx.region()
    if not bool(region.any()):
        return None
    return RegionCovariate(region, mask_kernels(masks), params.p_keep)


def rise_task(
    ctx: Context,
    params: RISEParams,
    score: Callable[[torch.Tensor], torch.Tensor],
    make_accumulator: Callable[[RiseMasks], Any] | None = None,
) -> Task:
    """The task of a RISE-family method: seeded random masks, ``params.baseline`` perturbation.

    ``make_accumulator(masks)`` builds the accumulator (a :class:`WeightedSum` by default,
    which gives a standard error and uses the segment's covariate).
    """

    # the loop uses each chunk of masks and perturbed inputs before making the next: the
    # same arrays are reused (fresh multi-megabyte arrays cost page faults on every chunk)
    def make_masks(seed: int) -> RiseMasks:
        kw = dict(device=ctx.device, dtype=ctx.x.dtype, reuse_output=True, sampling=params.sampling)
        if ctx.frame is not None:  # crop mode: the full image's masks, seen through the window
            full, window = ctx.frame
            return WindowMasks(full, window, params.grid, params.p_keep, seed, **kw)
        return RiseMasks(ctx.spatial, params.grid, params.p_keep, seed, **kw)

    def weighted_sum(masks: RiseMasks) -> WeightedSum:
        covariate = _region_covariate(ctx, params, masks)
        return WeightedSum(
            ctx.spatial, params.p_keep, ctx.device, params.estimator, covariate=covariate
        )

    if ctx.per_channel:
        if make_accumulator is not None:
            raise ValueError("per_channel applies to RISE, SegRISE and PixelRISE merge='mean'")
        masks = ChannelMasks(make_masks, ctx.x.shape[1], ctx.seed)
        region = ctx.region() if ctx.reference is not None else None
        acc = PerChannel([weighted_sum(stream) for stream in masks.streams], region)
    else:
        masks = make_masks(ctx.seed)
        acc = make_accumulator(masks) if make_accumulator is not None else weighted_sum(masks)
    perturb = blend_into(ctx.x, params.baseline)
    reused = [perturb.output, getattr(masks, "output", None)]  # channels' masks are copies
    return Task(
        x=ctx.x,
        n_total=params.n_masks,
        masks=masks.batch,
        perturb=perturb,
        score=score,
        accumulator=acc,
        target=ctx.target,
        reference=ctx.reference,
        prediction=ctx.prediction,
        reused=tuple(r for r in reused if r is not None),
    )


class RISE(Method):
    """RISE saliency: masks weighted by a scalar score of the model's output.

    For a classifier the score is the probability of the target class. For a segmentation
    model it is the mean probability of the target class over the reference segment (which
    makes RISE identical to ``PixelRISE(merge="mean")``). Any other scalar score can be
    given as ``score_fn``.

    Parameters
    ----------
    model
        See :class:`~maskscope.methods.base.Method`.
    score_fn
        Optional ``outputs (B, ...) -> (B,)`` score replacing the default.
    **kwargs
        ``outputs``, ``spatial_dims``, ``device`` (see :class:`Method`).

    Examples
    --------
    >>> expl = RISE(model).explain(image, n_masks=2000, grid=8, p_keep=0.5)  # doctest: +SKIP
    """

    name = "RISE"
    exact_crop = True
    Params = RISEParams
    needs_segmentation = False

    def __init__(
        self,
        model: Callable,
        *,
        score_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if score_fn is not None and not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        self.score_fn = score_fn

    def make_task(self, ctx: Context, params: RISEParams) -> Task:
        """Random masks, weighted sum of the scalar scores."""
        if self.score_fn is not None:
            user = self.score_fn

            def score(out: torch.Tensor) -> torch.Tensor:
                w = user(out)
                if not torch.is_tensor(w) or tuple(w.shape) != (out.shape[0],):
                    got = tuple(w.shape) if torch.is_tensor(w) else type(w).__name__
                    raise ValueError(f"score_fn must return a ({out.shape[0]},) tensor, got {got}")
                return w
        elif ctx.is_segmentation:
            region = region_index(ctx.region())
            target, kind = ctx.target, ctx.kind

            def score(out: torch.Tensor) -> torch.Tensor:
                return region_mean_probability(out, region, target, kind)
        else:
            target, kind = ctx.target, ctx.kind

            def score(out: torch.Tensor) -> torch.Tensor:
                return class_probability(out, target, kind)

        return rise_task(ctx, params, score)
