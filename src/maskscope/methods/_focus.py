"""What a run explains beyond one class of a whole image: ROIs, several targets, channels.

:func:`make_focus` checks ``roi=``, ``targets=`` and ``per_channel=`` at the door; the
resulting :class:`Focus` builds each image's (or slice's) task: the method's own task for
every target or ROI, each restricted to its ROI (:func:`restrict_task`: the reference and
prediction cut to it, the scores seeing a sure background outside it), combined into one
task that shares the forward passes
(:func:`~maskscope._engine.targets.combine_tasks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..roi import ROI, restricted_score

__all__ = ["Focus", "build_tasks", "make_focus", "resolve_rois", "restrict_task", "roi_list"]


def restrict_task(task: Any, region: torch.Tensor, kind: str, target: int | None) -> Any:
    """Make ``task`` score inside ``region`` only (a boolean ``spatial`` tensor).

    Raises
    ------
    ValueError
        When the explained class is the background (0): outside the ROI every voxel is
        made background, so it cannot be explained inside an ROI; or when the reference
        has no voxel of the target inside the ROI.
    """
    if target == 0:
        raise ValueError(
            "an ROI explains a foreground class: outside it every voxel is made background, "
            "so target=0 (the background) cannot be explained inside an ROI"
        )
    region = region.to(task.x.device)
    task.score = restricted_score(task.score, region, kind)
    task.region = region
    zero = torch.zeros((), dtype=torch.int64, device=region.device)
    for name in ("reference", "prediction"):
        labels = getattr(task, name)
        if labels is not None:
            setattr(task, name, torch.where(region, labels, zero.to(labels.dtype)))
    return task


def restrict_context(ctx: Any, region: torch.Tensor) -> Any:
    """A method's context with its reference and prediction cut to ``region``."""
    region = region.to(ctx.x.device)

    def cut(labels: torch.Tensor | None) -> torch.Tensor | None:
        if labels is None:
            return None
        zero = torch.zeros((), dtype=labels.dtype, device=region.device)
        return torch.where(region, labels, zero)

    return dataclasses.replace(ctx, reference=cut(ctx.reference), prediction=cut(ctx.prediction))


def _largest_class(reference: torch.Tensor, k: int) -> int:
    counts = torch.bincount(reference.flatten().long(), minlength=max(k, 2))[1:]
    return int(counts.argmax()) + 1


def build_tasks(
    method: Any,
    ctx: Any,
    make: Callable[[Any], Any],
    *,
    regions: Sequence[torch.Tensor] | None,
    targets: Sequence[int] | None,
    target_given: bool,
) -> tuple[Any, int | None] | None:
    """The task of one image or slice with ROIs and several targets; None: nothing here.

    ``make(ctx)`` is the method's (checked) task of a context. One target and no ROI:
    that task. Otherwise one task per target (or per ROI) combined by
    :func:`~maskscope._engine.targets.combine_tasks`: they share the forward passes.
    Returns the task and the explained target (the largest class inside the ROI when no
    target was given and the method explains one class).
    """
    from .._engine.targets import combine_tasks

    if regions is not None and ctx.prediction is None:
        raise ValueError("an ROI needs a segmentation model (outputs of shape (B, K, *spatial))")
    if regions is not None and all(not bool(r.any()) for r in regions):
        return None
    jobs: list[tuple[str, Any, torch.Tensor | None]] = []
    if targets is not None:
        hi = max(ctx.n_classes, 2) - 1
        wrong = [int(t) for t in targets if not 0 <= int(t) <= hi]
        if wrong:
            raise ValueError(
                f"targets must be class indices in [0, {hi}] for a model with "
                f"{ctx.n_classes} output channel(s), got {', '.join(map(str, wrong))}"
            )
        region = regions[0] if regions else None
        jobs = [(str(t), dataclasses.replace(ctx, target=int(t)), region) for t in targets]
    elif regions is not None:
        jobs = [(str(i), ctx, r) for i, r in enumerate(regions)]
    tasks, explained = [], []
    for _name, c, region in jobs:
        if region is not None:
            c = restrict_context(c, region)
            if not target_given and targets is None and not method.target_none_means_all:
                c = dataclasses.replace(c, target=_largest_class(c.reference, c.n_classes))
        explained.append(c.target)
        if c.reference is not None and not c.region().any():
            what = "any foreground class" if c.target is None else f"class {c.target}"
            where = " inside the ROI" if region is not None else ""
            raise ValueError(
                f"the reference segmentation has no voxel of {what}{where}: nothing to explain"
            )
        task = make(c)
        task.target = c.target
        if region is not None:
            task = restrict_task(task, region, c.kind, c.target)
        tasks.append(task)
    if len(tasks) == 1:
        return tasks[0], explained[0]
    combined = combine_tasks(tasks, [j[0] for j in jobs])
    combined.target = explained[0]
    return combined, explained[0]


def roi_list(roi: Any) -> list[ROI] | None:
    """``roi=`` as a list of :class:`ROI` (a list gives several), or None."""
    from ..roi import as_roi

    if roi is None:
        return None
    if isinstance(roi, list):
        if not roi:
            raise ValueError("roi is an empty list: give at least one region")
        return [as_roi(r) for r in roi]
    return [as_roi(roi)]


def roi_record(
    rois: list[ROI] | None, targets: Sequence[int] | None, per_channel: bool
) -> dict[str, Any]:
    """What a run's params record of its ROIs, targets and channels."""
    out: dict[str, Any] = {}
    if rois is not None:
        out["roi"] = rois[0].describe() if len(rois) == 1 else [r.describe() for r in rois]
    if targets is not None:
        out["targets"] = [int(t) for t in targets]
    if per_channel:
        out["per_channel"] = True
    return out


def _check_targets(targets: Any) -> None:
    if targets is None:
        return
    if (
        not isinstance(targets, (list, tuple))
        or not targets
        or any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) for t in targets)
    ):
        raise TypeError(f"targets must be a non-empty list of class indices, got {targets!r}")
    twice = sorted({int(t) for t in targets if list(targets).count(t) > 1})
    if twice:
        raise ValueError(
            f"targets names class {', '.join(map(str, twice))} more than once, in {list(targets)}"
        )


def resolve_rois(
    method: Any,
    rois: list[ROI] | None,
    img: torch.Tensor,
    sliced: bool,
    targets: Sequence[int] | None,
    per_channel: bool,
) -> list[Callable[[Any], torch.Tensor]] | None:
    """Per ROI, a function giving its region for one part: ``f(prediction)`` or ``f(z)``.

    Masks, boxes and labels are resolved (and checked) at once; a point without labels
    needs the prediction: for a whole image it is found in the part's own unperturbed
    pass, for a 2D model on a volume in one pass per slice first.
    """
    _check_targets(targets)
    if per_channel and not isinstance(per_channel, bool):
        raise TypeError(f"per_channel must be True or False, got {per_channel!r}")
    if rois is None:
        return None
    if len(rois) > 1 and targets is not None:
        raise ValueError("give several ROIs or several targets, not both")
    if len(rois) > 1 and sliced:
        raise ValueError("several ROIs are explained in one run for a whole image, not by slices")
    spatial = tuple(img.shape[1:])
    device = method.device
    getters: list[Callable[[Any], torch.Tensor]] = []
    prediction = None
    for roi in rois:
        if roi.kind == "point" and roi.labels is None and not sliced:

            def lazy(pred: torch.Tensor, roi: ROI = roi) -> torch.Tensor:
                region = roi.resolve(spatial, pred.to("cpu").numpy())
                return torch.from_numpy(region).to(device)

            getters.append(lazy)
            continue
        if roi.kind == "point" and roi.labels is None and prediction is None:
            prediction = full_prediction(method, img, sliced)[0]
        region = torch.from_numpy(roi.resolve(spatial, prediction)).to(device)
        if sliced:
            getters.append(lambda z, region=region: region[z])
        else:
            getters.append(lambda pred, region=region: region)
    return getters


@dataclasses.dataclass(frozen=True)
class Focus:
    """What a run explains beyond one class of the whole image.

    Attributes
    ----------
    regions
        Per ROI, its region for one task: ``f(prediction)`` (a whole image) or ``f(z)``
        (a slice); None without an ROI.
    targets
        Several classes from one run, or None.
    per_channel
        RISE masks drawn per input channel.
    frame
        Crop mode: the full image's spatial shape and the window.
    target_given
        Whether the caller named the target (else it is the largest class in the ROI).
    """

    regions: list[Callable[[Any], torch.Tensor]] | None
    targets: list[int] | None
    per_channel: bool
    frame: Any
    target_given: bool

    def task(self, method: Any, ctx: Any, index: int | None, make: Callable[[Any], Any]):
        """The task of one image or slice, or ``(None, target)`` with nothing to explain."""
        ctx.frame, ctx.per_channel = self.frame, self.per_channel
        if self.regions is None and self.targets is None:
            task = make(ctx)
            task.target = ctx.target
            built = (task, ctx.target)
        else:
            here = None
            if self.regions is not None:
                here = [r(ctx.prediction) if index is None else r(index) for r in self.regions]
            built = build_tasks(
                method,
                ctx,
                make,
                regions=here,
                targets=self.targets,
                target_given=self.target_given,
            )
        if built is None:
            return None, ctx.target
        if self.frame is not None and hasattr(built[0].accumulator, "w_sum"):
            built[0].accumulator = _WithMeanWeight(built[0].accumulator)
        return built


def make_focus(
    method: Any,
    inp: Any,
    *,
    roi: Any,
    targets: Any,
    per_channel: Any,
    frame: Any,
    target: Any,
) -> tuple[Focus | None, dict[str, Any]]:
    """Check ``roi``, ``targets`` and ``per_channel``; the run's focus and its record."""
    rois = roi_list(roi)
    if targets is not None and target is not None:
        raise ValueError(
            f"give target= (one class) or targets= (several), not both: got target={target} "
            f"and targets={list(targets) if isinstance(targets, (list, tuple)) else targets}"
        )
    if rois is None and targets is None and not per_channel and frame is None:
        return None, {}
    if per_channel and not method.stochastic:
        raise ValueError(
            f"per_channel draws random masks per channel (RISE family); {method.name} "
            "occludes one channel per run with channel=c: maskscope.explain_channels runs "
            "it for every channel"
        )
    regions = resolve_rois(method, rois, inp.image, inp.sliced, targets, per_channel)
    focus = Focus(
        regions=regions,
        targets=None if targets is None else [int(t) for t in targets],
        per_channel=bool(per_channel),
        frame=frame,
        target_given=target is not None,
    )
    return focus, roi_record(rois, targets, per_channel)


def whole_output(method: Any, img: torch.Tensor) -> torch.Tensor:
    """The model's output ``(1, K, *spatial)`` on the intact image ``(C, *spatial)``."""
    with torch.inference_mode():
        return method.model_call(img.unsqueeze(0).to(method.device, method.dtype))


def full_prediction(method: Any, img: torch.Tensor, sliced: bool) -> tuple[np.ndarray, int]:
    """The model's segmentation of the whole image ``(C, *spatial)``, and the forwards made."""
    from .._engine.scores import segmentation

    def predict(x: torch.Tensor) -> np.ndarray:
        return segmentation(whole_output(method, x), method.outputs)[0].to("cpu").numpy()

    if not sliced:
        return predict(img), 1
    return np.stack([predict(img[:, z]) for z in range(img.shape[1])]), int(img.shape[1])


class _WithMeanWeight:
    """A weighted sum whose partial also carries its mean weight (crop mode's outside value).

    Far from what the model sees, a RISE map converges to the mean weight w̄ (the weights
    do not depend on the masks there): the pasted map takes that value outside the window.
    """

    def __init__(self, acc: Any) -> None:
        self.acc = acc
        self.has_stderr = acc.has_stderr

    def update(self, batch: Any, scores: torch.Tensor) -> None:
        self.acc.update(batch, scores)

    def partial(self) -> Any:
        part = self.acc.partial()
        w_bar = torch.tensor(self.acc.w_sum / max(self.acc.n, 1), dtype=torch.float64)
        return dataclasses.replace(part, extras={**part.extras, "outside_value": w_bar})
