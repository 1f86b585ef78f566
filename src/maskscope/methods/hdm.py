"""HDM: Hausdorff Distance Masks — how far the segmentation moves when a disk is occluded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch

from .._engine.accumulate import DistanceGrid
from .._engine.adaptive_sweep import (
    AdaptiveSweep,
    default_first_step,
    hidden_content,
    hiding_centres,
    structures_and_content,
)
from .._engine.custom import checked_fill, function_name
from .._engine.distances import DISTANCES, SkipUnchanged, make_distance
from .._engine.loop import RunOptions, Task
from .._engine.mask_batch import MaskBatch
from .._engine.occlusion import CentreGrid
from .._engine.params import param
from .._engine.perturb import Perturbation, bind, make_perturbation
from .._engine.scores import segmentation
from .base import Method
from .context import Context
from .hdm_circles import circle_map

__all__ = ["HDM", "HDMParams", "circle_map"]


@dataclass
class HDMParams:
    """Parameters of a Hausdorff Distance Masks sweep.

    ``diameter`` and ``stride`` are in the units of ``voxel_spacing`` (voxels when no
    spacing is given): with spacing, the occluder is a true ball in physical space.
    """

    diameter: float = param(
        25.0,
        help="Diameter of the occluding disk (2D) or ball (3D), in spacing units.",
        min=0.0,
        min_exclusive=True,
    )
    stride: float | tuple[float, ...] = param(
        5.0,
        help="Distance between disk centres (one number or one per axis).",
        min=0.0,
        min_exclusive=True,
    )
    fill: float | str = param(
        0.0,
        help="Value inside the disk: a number (0: the mean of a z-scored image, the background "
        "of a [0, 1] one), or the image's per-channel 'min' or 'mean'.",
        choices=("min", "mean"),
    )
    channel: int | None = param(
        None, help="Occlude this input channel only (None = all channels).", min=0
    )
    distance: str = param(
        "hausdorff",
        help="Distance between perturbed and reference segmentation: Hausdorff, its 95th "
        "percentile, or 1 − Dice.",
        choices=DISTANCES,
    )
    sweep: str = param(
        "adaptive",
        help="'adaptive': a coarse pass, then only the centres whose neighbours differ or "
        "where what the occluder hides calls for it (content_rule); the others take their "
        "neighbours' interpolation. 'full': every centre, the model's distance everywhere.",
        choices=("full", "adaptive"),
    )
    refine_tol: float = param(
        0.0,
        help="Adaptive sweep: neighbouring distances within this of each other count as equal "
        "(a centre between equal neighbours takes their value). Not a bound on the map's "
        "error against the full sweep, which can be several times larger: 0 keeps it "
        "smallest.",
        min=0.0,
    )
    content_rule: str = param(
        "structures",
        help="Adaptive sweep: 'structures' evaluates every centre whose occluder hides at "
        "least 2 % of a structure (a shape on a background) and, elsewhere, those where "
        "what it hides is not what its neighbours' occluders hide, interpolated (inside a "
        "body much larger than the occluder); 'hidden' every centre whose occluder hides "
        "anything; 'change' only the second part of 'structures'.",
        choices=("structures", "hidden", "change"),
    )
    content_tol: float = param(
        0.2,
        help="Adaptive sweep, as a fraction of the image's range: the fill differs from the "
        "image by more than this in a structure ('structures') or somewhere in the disk "
        "('hidden').",
        min=0.0,
        max=1.0,
    )
    change_tol: float = param(
        0.1,
        help="Adaptive sweep ('structures', 'change'), as a fraction of the image's range: "
        "the mean difference in the disk deviates from its neighbours' interpolation by "
        "more than this.",
        min=0.0,
        max=1.0,
    )


class HDM(Method):
    """Hausdorff Distance Masks.

    A disk (ball in 3D) is occluded at every centre of a regular grid; the model segments
    each occluded input and the result is scored by its distance to the reference
    segmentation: by default the true geometric Hausdorff distance between the foreground
    voxel sets, in physical units (see :mod:`maskscope._engine.distances`). The map shows the
    distance obtained by occluding around each voxel (linear interpolation between centres);
    ``extras`` holds the ``better_only`` and ``worse_only`` views relative to the baseline
    distance of the unperturbed output, the per-centre grids (``grid_raw``, ...), and the
    ``baseline``. Centres are visited coarse to fine, so early snapshots cover the image.

    Parameters
    ----------
    model
        See :class:`~maskscope.methods.base.Method`.
    distance_fn
        Optional ``(pred (B, *sp) bool, ref (*sp) bool) -> (B,)`` replacing ``distance``.
    fill_fn
        Optional perturbation ``(x (1, C, *sp), keep (B, 1, *sp)) -> (B, C, *sp)`` replacing
        the fill (``keep`` is 0 inside the disk).
    **kwargs
        ``outputs``, ``spatial_dims``, ``device``.
    """

    name = "HDM"
    Params = HDMParams
    target_none_means_all = True
    stochastic = False
    #: A split run divides a fixed list of centres into ranges (see methods/_ranges.py)
    split_defaults: ClassVar[dict[str, Any]] = {"sweep": "full"}

    def __init__(
        self,
        model: Callable,
        *,
        distance_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        fill_fn: Perturbation | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        for name, fn in (("distance_fn", distance_fn), ("fill_fn", fill_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self.distance_fn = distance_fn
        self.fill_fn = fill_fn

    @classmethod
    def check_params(cls, params: HDMParams, options: RunOptions) -> None:
        """A sweep is deterministic: early stopping does not apply."""
        if options.tol is not None:
            raise ValueError("HDM visits every centre once: early stopping (tol) does not apply")

    def record_extra(self, params: HDMParams, inp: Any) -> dict[str, Any]:
        """The grid as it is laid: the centres' step per spatial axis, in voxels and in the
        spacing's units (``stride`` rounded to whole voxels on each axis), and the spacing
        of the grid's axes, in which ``diameter`` and ``stride`` are measured (in-plane for
        a 2D model on a volume)."""
        spacing = tuple(inp.part_spacing)
        grid = CentreGrid(inp.part_spatial, params.diameter, params.stride, spacing)
        return {
            "stride_voxels": list(grid.steps),
            "stride_used": [round(st * sp, 6) for st, sp in zip(grid.steps, spacing, strict=True)],
            "grid_spacing": list(spacing),
        }

    def n_perturbations(self, params: HDMParams, spatial, spacing) -> int:
        """One perturbed input per centre."""
        return CentreGrid(spatial, params.diameter, params.stride, spacing).n_centres

    def make_task(self, ctx: Context, params: HDMParams) -> Task:
        """Disks on a grid, distances to the reference, interpolated views."""
        grid = CentreGrid(
            ctx.spatial, params.diameter, params.stride, ctx.voxel_spacing, device=ctx.device
        )
        perturb = self.fill_fn or make_perturbation(ctx.x, params.fill, channel=params.channel)
        target, kind = ctx.target, ctx.kind
        distance = make_distance(
            self.distance_fn or params.distance, ctx.region(), ctx.voxel_spacing
        )

        def foreground(labels: torch.Tensor) -> torch.Tensor:
            return labels > 0 if target is None else labels == target

        def score(out: torch.Tensor) -> torch.Tensor:
            labels = segmentation(out, kind)
            if out.shape[1] <= 2 and labels.dtype == torch.uint8 and target in (None, 1):
                # labels of at most two classes are 0 / 1: they are the foreground already
                return distance(labels.view(torch.bool))
            return distance(foreground(labels))

        unperturbed = foreground(ctx.prediction)
        if self.distance_fn is None:
            # a built-in distance scores each prediction on its own: copies of the
            # unperturbed prediction (most occlusions change nothing) reuse its distance
            distance = SkipUnchanged(distance, unperturbed)
            baseline = float(distance.value)
        else:
            baseline = float(distance(unperturbed[None])[0])
        # a built-in fill is pointwise: stamping the disks gives its result (a user's fill
        # gets the masks, and is wrapped with its checks by the base class)
        acc = DistanceGrid(grid, baseline)
        source, planned = grid, None
        if params.sweep == "adaptive":  # its plan sees what a user's fill hides, checked
            label = f"the fill_fn {function_name(self.fill_fn)}" if self.fill_fn else ""
            plan_fill = checked_fill(perturb, label) if self.fill_fn else perturb
            acc = adaptive_sweep(grid, ctx.x, plan_fill, baseline, params)
            source, planned = acc, acc.planned
        return Task(
            x=ctx.x,
            n_total=grid.n_centres,
            planned=planned,
            masks=partial(source.batch, dtype=ctx.x.dtype),
            perturb=bind(ctx.x, perturb) if self.fill_fn else StampedFill(ctx.x, perturb),
            score=score,
            accumulator=acc,
            target=ctx.target,
            reference=ctx.reference,
            prediction=ctx.prediction,
            info={"baseline": baseline},
        )


def adaptive_sweep(grid, x: torch.Tensor, perturb, baseline: float, params) -> AdaptiveSweep:
    """The adaptive sweep's plan, with the content rule ``params.content_rule`` asks for."""
    hidden = perturb(x, torch.zeros_like(x[:, :1]))
    must = content = None
    if params.content_rule == "hidden":
        must = hiding_centres(grid, x, hidden, params.content_tol)
    if params.content_rule == "structures":
        must, content = structures_and_content(grid, x, hidden, params.content_tol)
    if params.content_rule == "change":
        content = hidden_content(grid, x, hidden)
    return AdaptiveSweep(
        grid,
        baseline,
        tol=params.refine_tol,
        first_step=default_first_step(grid, params.diameter),
        must=must,
        content=content,
        content_tol=params.change_tol,
    )


class StampedFill:
    """A pointwise fill applied to a sweep's masks by stamping the disks.

    Where a mask is 1, a pointwise fill gives the same value as with a mask of ones; where
    it is 0, the same as with zeros. So the perturbed batch is the image filled with ones
    (copied) with the disk voxels of the image filled with zeros written over it: bit for
    bit the fill's own result, without a pass of arithmetic over the whole batch. The
    disks' voxels come with the batch (``MaskBatch.holes``); a batch without them goes to
    the fill itself.
    """

    def __init__(self, x: torch.Tensor, fill: Perturbation) -> None:
        self.x, self.fill = x, fill
        ones = x.new_ones((1, 1, *x.shape[2:]))
        self.kept = fill(x, ones)
        self.hidden = fill(x, torch.zeros_like(ones)).reshape(x.shape[1], -1)

    def __call__(self, batch: MaskBatch) -> torch.Tensor:
        """The fill of the task's input under the batch's masks."""
        if batch.holes is None:
            return self.fill(self.x, batch.masks)
        rows, voxels = batch.holes
        b, c = len(batch), self.kept.shape[1]
        out = self.kept.expand(b, *self.kept.shape[1:]).clone()
        flat = out.view(b, c, -1)
        flat[rows, :, voxels] = self.hidden[:, voxels].T
        return out
