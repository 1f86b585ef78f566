"""What a run with a region of interest does: restrict the scores, crop, paste back.

The methods call three functions:

* :func:`restrict_task`: the task's scores see the outputs restricted to the ROI (a sure
  background outside it, :func:`maskscope.roi.restrict_outputs`), its reference and
  prediction are cut to the ROI. Every method's score (Dice, probabilities, Hausdorff,
  a user's ``score_fn``) then sees the ROI only.
* :func:`plan_crop`: the window of a crop-mode run (the ROI's box plus the margin,
  estimated from the model's receptive field when not given, aligned to ``pad_multiple``).
* :func:`paste`: a snapshot of the window's run as a snapshot of the full image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..explanation import Explanation
from ..roi import ROI, restrict_outputs, restricted_score
from .crop import ReceptiveFieldError, crop_window, receptive_field

__all__ = ["CropPlan", "check_crop", "paste", "paste_all", "plan_crop", "restrict_task"]


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
    zero = torch.zeros((), dtype=torch.int64, device=region.device)
    for name in ("reference", "prediction"):
        labels = getattr(task, name)
        if labels is not None:
            setattr(task, name, torch.where(region, labels, zero.to(labels.dtype)))
    return task


def restrict_outputs_of(out: torch.Tensor, region: torch.Tensor, kind: str) -> torch.Tensor:
    """The unperturbed output restricted to ``region`` (for the reference of a run)."""
    return restrict_outputs(out, ~region.to(out.device), kind)


@dataclasses.dataclass(frozen=True)
class CropPlan:
    """Where a crop-mode run works.

    Attributes
    ----------
    window
        One slice per spatial axis of the full image.
    margin
        The margin used per axis (voxels).
    estimated
        Whether the margin was estimated from the model's receptive field.
    """

    window: tuple[slice, ...]
    margin: tuple[int, ...]
    estimated: bool

    def record(self) -> dict[str, Any]:
        """JSON-ready description for the explanation's params."""
        return {
            "crop_window": [[s.start, s.stop] for s in self.window],
            "crop_margin": list(self.margin),
            "crop_margin_estimated": self.estimated,
        }


def check_crop(crop: Any) -> bool | tuple[int, ...] | int:
    """Check ``crop=``: False, True (estimate the margin), or a margin (int or per axis)."""
    if isinstance(crop, bool):
        return crop
    items = (crop,) if np.isscalar(crop) else tuple(crop)
    if not items or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in items
    ):
        raise ValueError(
            "crop must be False, True (margin from the model's receptive field) or a margin "
            f"in voxels (an int >= 0, or one per spatial axis), got {crop!r}"
        )
    return int(items[0]) if np.isscalar(crop) else tuple(int(v) for v in items)


def plan_crop(
    region: np.ndarray,
    crop: bool | int | Sequence[int],
    *,
    model: Callable,
    in_channels: int,
    model_dims: int,
    align: int | Sequence[int] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> CropPlan:
    """The window of a crop-mode run around ``region`` (full-image boolean mask).

    For a 2D model on a volume the margin applies in-plane; the window spans the ROI's
    slices only.
    """
    nd = region.ndim
    estimated = crop is True
    if estimated:
        probe = tuple(min(96, n) for n in region.shape[nd - model_dims :])
        try:
            radius = receptive_field(
                model, in_channels, model_dims, probe=probe, device=device, dtype=dtype
            )
        except ReceptiveFieldError as exc:
            raise ReceptiveFieldError(f"{exc} (crop=<margin in voxels>)") from None
        margin = tuple(radius)
    else:
        margin = (crop,) * model_dims if isinstance(crop, int) else tuple(crop)
        if len(margin) != model_dims:
            raise ValueError(
                f"crop needs one margin or {model_dims} (one per axis of the model), got {crop!r}"
            )
    margins = (0,) * (nd - model_dims) + tuple(margin)
    aligns: Any = 1 if align is None else align
    if not np.isscalar(aligns):
        aligns = tuple(aligns)
    if np.isscalar(aligns):
        aligns = (int(aligns),) * model_dims
    aligns = (1,) * (nd - model_dims) + tuple(aligns)
    window = crop_window(region, margins, align=aligns)
    return CropPlan(window=window, margin=tuple(margin), estimated=estimated)


def _paste_array(arr: np.ndarray, window: tuple[slice, ...], spatial: tuple[int, ...]):
    if arr is None or tuple(arr.shape) != tuple(s.stop - s.start for s in window):
        return arr
    out = np.zeros(spatial, dtype=arr.dtype)
    out[window] = arr
    return out


def paste(
    snap: Explanation,
    window: tuple[slice, ...],
    spatial: tuple[int, ...],
    image: np.ndarray,
    record: dict[str, Any],
) -> Explanation:
    """A window's snapshot as one of the full image: maps are 0 outside the window."""
    extras = {k: _paste_array(v, window, spatial) for k, v in snap.extras.items()}
    slices = None
    if snap.slices is not None:
        slices = tuple(int(z) + int(window[0].start) for z in snap.slices)
    return dataclasses.replace(
        snap,
        map=_paste_array(snap.map, window, spatial),
        stderr=_paste_array(snap.stderr, window, spatial),
        reference=_paste_array(snap.reference, window, spatial),
        prediction=_paste_array(snap.prediction, window, spatial),
        extras=extras,
        image=image,
        slices=slices,
        params={**snap.params, **record},
    )


def paste_all(
    run: Iterator[Explanation],
    window: tuple[slice, ...],
    spatial: tuple[int, ...],
    image: np.ndarray,
    record: dict[str, Any],
    extra_forward: int = 0,
) -> Iterator[Explanation]:
    """Paste every snapshot of ``run``; ``extra_forward`` model calls made before it."""
    try:
        for snap in run:
            pasted = paste(snap, window, spatial, image, record)
            if extra_forward:
                pasted = dataclasses.replace(pasted, n_forward=pasted.n_forward + extra_forward)
            yield pasted
    except Exception as exc:
        partial = getattr(exc, "partial", None)
        if isinstance(partial, Explanation):
            exc.partial = paste(partial, window, spatial, image, record)
        raise
    finally:
        run.close()


def full_prediction(method: Any, img: torch.Tensor, sliced: bool) -> tuple[np.ndarray, int]:
    """The model's segmentation of the whole image ``(C, *spatial)``, and the forwards made."""
    from .scores import segmentation

    def predict(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            out = method.model_call(x.unsqueeze(0).to(method.device, method.dtype))
        return segmentation(out, method.outputs)[0].to("cpu").numpy()

    if not sliced:
        return predict(img), 1
    return np.stack([predict(img[:, z]) for z in range(img.shape[1])]), int(img.shape[1])


def iter_crop(
    method: Any,
    image: Any,
    *,
    roi: ROI,
    crop: bool | int | Sequence[int],
    reference: Any = None,
    slices: Any = "all",
    normalize: Any = "none",
    stream: bool = True,
    **kwargs: Any,
) -> Iterator[Explanation]:
    """Explain ``roi`` of ``image`` on its crop window and paste the snapshots back.

    The method runs on the window with the ROI as a mask and the full image's masks seen
    through the window (``_frame``); everything else is as given. ``stream=False``: no
    intermediate snapshots (what ``explain`` asks for).
    """
    from ..intensity import apply_normalization
    from .inputs import prepare_image, prepare_reference

    declared = getattr(method.model, "in_channels", None)
    if isinstance(declared, bool) or not isinstance(declared, int):
        declared = None
    layout = prepare_image(
        image, method.spatial_dims, method.in_channels, declared_channels=declared
    )
    img = layout.image
    if callable(normalize) or normalize != "none":
        img = torch.from_numpy(apply_normalization(normalize, img))
    spatial = tuple(layout.spatial)
    ref = None if reference is None else prepare_reference(reference, spatial, n_classes=None)
    prediction, extra = None, 0
    if roi.kind == "point" and roi.labels is None:
        prediction, extra = full_prediction(method, img, layout.slice_by_slice)
    region = roi.resolve(spatial, prediction)
    model_dims = len(spatial) - (1 if layout.slice_by_slice else 0)
    plan = plan_crop(
        region,
        crop,
        model=method.model_call,
        in_channels=int(img.shape[0]),
        model_dims=model_dims,
        align=method.model_call.pad_multiple,
        device=method.device,
        dtype=method.dtype,
    )
    window = plan.window
    if layout.slice_by_slice and not (isinstance(slices, str) and slices == "all"):
        z0, z1 = window[0].start, window[0].stop
        picked = [slices] if np.isscalar(slices) else list(slices)
        slices = [int(z) - z0 for z in picked if z0 <= int(z) < z1]
        if not slices:
            raise ValueError(
                f"none of the slices {picked} meets the ROI's window (slices {z0}..{z1 - 1})"
            )
    sub_ref = None if ref is None else ref[window].numpy()
    run = method._prepare(
        img[(slice(None), *window)].numpy(),
        roi=ROI.from_mask(region[window]),
        reference=sub_ref,
        slices=slices,
        _frame=(spatial[len(spatial) - model_dims :], window[len(spatial) - model_dims :]),
        **kwargs,
    )
    if not stream:
        run = dataclasses.replace(run, yield_every=None)
    record = {"roi": roi.describe(), **plan.record()}
    return paste_all(method._snapshots(run), window, spatial, img.numpy(), record, extra)


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
    from .targets import combine_tasks

    if regions is not None and ctx.prediction is None:
        raise ValueError("an ROI needs a segmentation model (outputs of shape (B, K, *spatial))")
    if regions is not None and all(not bool(r.any()) for r in regions):
        return None
    jobs: list[tuple[str, Any, torch.Tensor | None]] = []
    if targets is not None:
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
            return task, ctx.target
        here = None
        if self.regions is not None:
            here = [r(ctx.prediction) if index is None else r(index) for r in self.regions]
        built = build_tasks(
            method, ctx, make, regions=here, targets=self.targets, target_given=self.target_given
        )
        return (None, ctx.target) if built is None else built


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
    if rois is None and targets is None and not per_channel and frame is None:
        return None, {}
    regions = resolve_rois(method, rois, inp.image, inp.sliced, targets, per_channel)
    focus = Focus(
        regions=regions,
        targets=None if targets is None else [int(t) for t in targets],
        per_channel=bool(per_channel),
        frame=frame,
        target_given=target is not None,
    )
    return focus, roi_record(rois, targets, per_channel)


def crop_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``explain``'s keyword arguments for :func:`iter_crop`, checked: one ROI, a crop."""
    args = dict(kwargs)
    crop = check_crop(args.pop("crop"))
    rois = roi_list(args.pop("roi", None))
    if rois is None or len(rois) != 1:
        raise ValueError("crop needs one roi (the region whose box is cropped)")
    return {**args, "roi": rois[0], "crop": crop}
