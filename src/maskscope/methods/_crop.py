"""Crop mode: explain an ROI on its box plus a margin, and paste the result back.

:func:`iter_crop` resolves the ROI on the whole image (a point's component needs the
whole prediction: one forward pass), plans the window (:func:`plan_crop`: the ROI's box
grown by the margin, estimated from the model's receptive field when not given, aligned
to ``pad_multiple``, else to the powers of two that divide the image's sizes), runs the
method on the window with the full image's masks seen through it, and pastes every
snapshot into the full image (:func:`paste`). What holds and what differs is in
:mod:`maskscope._engine.crop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .._engine.crop import ReceptiveFieldError, crop_window, receptive_field
from .._engine.failures import ModelError
from ..explanation import Explanation
from ..roi import ROI
from ._crop_check import margin_difference, warn_if_margin_too_small
from ._focus import full_prediction, roi_list, whole_output

__all__ = [
    "SPLIT_RUNS_DO_NOT_CROP",
    "CropPlan",
    "check_crop",
    "crop_arguments",
    "image_alignment",
    "iter_crop",
    "paste",
    "plan_crop",
    "wants_crop",
    "why_not_cropped",
]


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
    align: tuple[int, ...] = ()

    def record(self) -> dict[str, Any]:
        """JSON-ready description for the explanation's params."""
        return {
            "crop_window": [[s.start, s.stop] for s in self.window],
            "crop_margin": list(self.margin),
            "crop_margin_estimated": self.estimated,
            "crop_align": list(self.align),
        }


#: The largest alignment taken from the image's own sizes (a 5-level U-Net's stride).
MAX_IMAGE_ALIGN = 32


def image_alignment(sizes: Sequence[int]) -> tuple[int, ...]:
    """Per axis, the largest power of two (up to :data:`MAX_IMAGE_ALIGN`) dividing its size.

    The model runs on the whole image, so its down-sampling factor divides the image's
    sizes (or the image is padded to one, ``pad_multiple``). A window whose origin and size
    are multiples of the same powers of two meets the model's pooling grid where the whole
    image does, and its size is one the model takes.
    """
    return tuple(min(MAX_IMAGE_ALIGN, int(n) & -int(n)) for n in sizes)


def check_crop(crop: Any) -> bool | str | tuple[int, ...] | int:
    """Check ``crop=``: ``"auto"``, False, True (estimate the margin), or a margin."""
    if isinstance(crop, bool) or (isinstance(crop, str) and crop == "auto"):
        return crop
    items = (crop,) if np.isscalar(crop) else tuple(crop)
    if not items or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in items
    ):
        raise ValueError(
            "crop must be 'auto', False, True (margin from the model's receptive field) or a "
            f"margin in voxels (an int >= 0, or one per spatial axis), got {crop!r}"
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
    slices only. ``crop="auto"`` estimates the margin as ``True`` does. ``align``: the
    model's padding multiple (``pad_multiple``); None: :func:`image_alignment`.
    """
    nd = region.ndim
    estimated = crop is True or crop == "auto"
    if estimated:
        sizes = region.shape[nd - model_dims :]
        probe = tuple(min(96, n) for n in sizes)
        try:
            radius = receptive_field(
                model,
                in_channels,
                model_dims,
                probe=probe,
                device=device,
                dtype=dtype,
                whole_axes=[p == n for p, n in zip(probe, sizes, strict=True)],
            )
        except ReceptiveFieldError as exc:
            raise ReceptiveFieldError(f"{exc} (crop=<margin in voxels>)") from exc
        margin = tuple(radius)
    else:
        margin = (crop,) * model_dims if isinstance(crop, int) else tuple(crop)
        if len(margin) != model_dims:
            raise ValueError(
                f"crop needs one margin or {model_dims} (one per axis of the model), got {crop!r}"
            )
    margins = (0,) * (nd - model_dims) + tuple(margin)
    aligns: Any = image_alignment(region.shape[nd - model_dims :]) if align is None else align
    if not np.isscalar(aligns):
        aligns = tuple(aligns)
    if np.isscalar(aligns):
        aligns = (int(aligns),) * model_dims
    aligns = (1,) * (nd - model_dims) + tuple(aligns)
    window = crop_window(region, margins, align=aligns)
    return CropPlan(
        window=window,
        margin=tuple(margin),
        estimated=estimated,
        align=tuple(aligns)[nd - model_dims :],
    )


def _paste_array(
    arr: np.ndarray, window: tuple[slice, ...], spatial: tuple[int, ...], fill: float = 0.0
):
    if arr is None or tuple(arr.shape) != tuple(s.stop - s.start for s in window):
        return arr
    out = np.full(spatial, fill, dtype=arr.dtype)
    out[window] = arr
    return out


def paste(
    snap: Explanation,
    window: tuple[slice, ...],
    spatial: tuple[int, ...],
    image: np.ndarray,
    record: dict[str, Any],
) -> Explanation:
    """A window's snapshot as one of the full image.

    Outside the window the map is ``extras["outside_value"]`` (a RISE map's mean weight,
    where hiding changes nothing) when the run gives one, else 0; other arrays are 0.
    """
    extras = {k: _paste_array(v, window, spatial) for k, v in snap.extras.items()}
    value = np.asarray(snap.extras.get("outside_value", 0.0), dtype=np.float64)
    fill = float(value) if value.ndim == 0 else 0.0
    slices = None
    if snap.slices is not None:
        slices = tuple(int(z) + int(window[0].start) for z in snap.slices)
    full_map = _paste_array(snap.map, window, spatial, fill)
    if value.ndim == 1 and full_map is not snap.map:  # a 2D model by slices: one per slice
        inside = full_map[window].copy()
        full_map[window[0]] = value[:, None, None]  # the window's slices; the others are 0
        full_map[window] = inside
    return dataclasses.replace(
        snap,
        map=full_map,
        stderr=_paste_array(snap.stderr, window, spatial),
        reference=_paste_array(snap.reference, window, spatial),
        prediction=_paste_array(snap.prediction, window, spatial),
        roi=_paste_array(snap.roi, window, spatial),
        extras=extras,
        image=image,
        slices=slices,
        params={**snap.params, **record},
    )


def each_snapshot(
    run: Iterator[Explanation], fn: Callable[[Explanation], Explanation]
) -> Iterator[Explanation]:
    """``fn`` of every snapshot of ``run``, and of a failure's ``exc.partial``."""
    try:
        for snap in run:
            yield fn(snap)
    except Exception as exc:
        partial = getattr(exc, "partial", None)
        if isinstance(partial, Explanation):
            exc.partial = fn(partial)
        raise
    finally:
        run.close()


def paste_all(
    run: Iterator[Explanation],
    window: tuple[slice, ...],
    spatial: tuple[int, ...],
    image: np.ndarray,
    record: dict[str, Any],
    extra_forward: int = 0,
) -> Iterator[Explanation]:
    """Paste every snapshot of ``run``; ``extra_forward`` model calls made before it."""

    def pasted(snap: Explanation) -> Explanation:
        out = paste(snap, window, spatial, image, record)
        return dataclasses.replace(out, n_forward=out.n_forward + extra_forward)

    return each_snapshot(run, pasted)


def _window_slices(slices: Any, depth: slice) -> Any:
    """Slices of a 2D model on a volume, as indices into the window's slices."""
    if isinstance(slices, str) and slices == "all":
        return slices
    picked = [slices] if np.isscalar(slices) else list(slices)
    inside = [int(z) - depth.start for z in picked if depth.start <= int(z) < depth.stop]
    if not inside:
        raise ValueError(
            f"none of the slices {picked} meets the ROI's window "
            f"(slices {depth.start}..{depth.stop - 1})"
        )
    return inside


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
    from .._engine.inputs import (
        declared_channels,
        prepare_image,
        prepare_reference,
        spacing_from_image,
    )
    from .._engine.scores import segmentation
    from ..intensity import apply_normalization

    layout = prepare_image(
        image,
        method.spatial_dims,
        method.in_channels,
        declared_channels=declared_channels(method.model),
    )
    img = layout.image
    if callable(normalize) or normalize != "none":
        img = torch.from_numpy(apply_normalization(normalize, img))
    spatial = tuple(layout.spatial)
    if kwargs.get("voxel_spacing") is None:  # a MetaTensor's own, before the crop drops it
        carried = spacing_from_image(image, len(spatial))
        if carried is not None:
            kwargs = {**kwargs, "voxel_spacing": carried}
    ref = None if reference is None else prepare_reference(reference, spatial, n_classes=None)
    prediction, extra, whole = None, 0, None
    # a margin given is checked against the whole image's outputs (not for a 2D model on
    # a volume: its margin is in-plane, slice by slice)
    check = crop is not True and crop != "auto" and not layout.slice_by_slice
    if roi.kind == "point" and roi.labels is None:
        if check:  # the whole image's outputs serve both
            whole = whole_output(method, img)
            prediction, extra = segmentation(whole, method.outputs)[0].to("cpu").numpy(), 1
        else:
            prediction, extra = full_prediction(method, img, layout.slice_by_slice)
    region = roi.resolve(spatial, prediction)
    model_dims = len(spatial) - (1 if layout.slice_by_slice else 0)
    try:
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
    except ReceptiveFieldError as exc:
        if crop != "auto":
            raise
        why = f"the receptive field could not be estimated: {exc.__cause__ or exc}"
        return _whole(
            method, image, roi, reference, slices, normalize, stream, kwargs, why, crop, extra
        )
    window = plan.window
    if all((s.start, s.stop) == (0, n) for s, n in zip(window, spatial, strict=True)):
        why = "the ROI's box plus the receptive field covers the whole image"
        if not plan.estimated:
            why = "the ROI's box plus the margin covers the whole image"
        return _whole(
            method, image, roi, reference, slices, normalize, stream, kwargs, why, crop, extra
        )
    checked = {}
    if check:  # a margin given: is it wide enough?
        difference, calls = margin_difference(method, img, window, region, whole)
        warn_if_margin_too_small(difference, plan.margin, stacklevel=4)
        checked, extra = {"crop_margin_difference": difference}, extra + calls
    if layout.slice_by_slice:
        slices = _window_slices(slices, window[0])
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
    given = list(crop) if isinstance(crop, tuple) else crop  # "auto", True or a margin
    record = {"roi": roi.describe(), "crop": given, **plan.record(), **checked}
    if callable(normalize) or normalize != "none":  # applied here, before the window is cut
        record["normalize"] = str(normalize)  # as a whole-image run records it
    pasted = paste_all(method._snapshots(run), window, spatial, img.numpy(), record, extra)
    return _window_failures(pasted, plan)


def _window_failures(run: Iterator[Explanation], plan: CropPlan) -> Iterator[Explanation]:
    """``run``, with a size failure of the model blamed on the crop window it ran on."""
    try:
        yield from run
    except ModelError as exc:
        if not exc.hint or "divisible" not in exc.hint:
            raise
        size = "×".join(str(s.stop - s.start) for s in plan.window[-len(plan.align) :])
        align = ",".join(map(str, plan.align))
        hint = (
            f"the model ran on the ROI's crop window of {size} voxels, aligned to {align}: "
            "set pad_multiple to the network's down-sampling factor (e.g. pad_multiple=64) to "
            "pad the window to a size the network takes, or crop=False to run on the whole image"
        )
        new = ModelError(exc.cause, hint, context=exc.context)
        new.partial = getattr(exc, "partial", None)  # type: ignore[attr-defined]
        raise new from exc


def _whole(
    method, image, roi, reference, slices, normalize, stream, kwargs, why: str, crop, extra: int
):
    """A crop that gains nothing (its window would be the whole image, or ``"auto"`` could
    not estimate the margin): the whole-image run, saying why."""
    run = method._prepare(
        image, roi=roi, reference=reference, slices=slices, normalize=normalize, **kwargs
    )
    if not stream:
        run = dataclasses.replace(run, yield_every=None)
    given = list(crop) if isinstance(crop, tuple) else crop
    record = {"crop": given, "crop_skipped": why}

    def noted(snap: Explanation) -> Explanation:  # the forwards made before it, counted
        params = {**snap.params, **record}
        return dataclasses.replace(snap, params=params, n_forward=snap.n_forward + extra)

    return each_snapshot(method._snapshots(run), noted)


def wants_crop(method: Any, kwargs: dict[str, Any]) -> bool:
    """Whether ``explain``'s arguments ask ``method`` for a crop-mode run.

    ``crop="auto"`` (the default) crops when one ``roi`` is given to a method whose crop
    gives the whole-image map in the window (the RISE family: ``method.exact_crop``),
    without ``targets`` or ``per_channel``.
    """
    crop = kwargs.get("crop", "auto")
    if not (isinstance(crop, str) and crop == "auto"):
        return crop is not False
    roi = kwargs.get("roi")
    if roi is None:
        return False
    targets, per_channel = kwargs.get("targets"), bool(kwargs.get("per_channel", False))
    return not why_not_cropped(method, roi, targets, per_channel)


#: ``params["crop_skipped"]`` of a split run (over mask ranges or Dask workers) given a ROI:
#: its ranges are summed over the whole image (the crop ``"auto"`` would take, when the
#: crop is known, is not taken either). ``crop_skipped`` of a crop-mode ``"auto"`` run on
#: the whole image replaces it.
SPLIT_RUNS_DO_NOT_CROP = "a split run explains the whole image"


def why_not_cropped(method: Any, roi: Any, targets: Any, per_channel: bool) -> str:
    """Why ``crop="auto"`` runs ``method`` on the whole image (see :func:`wants_crop`)."""
    if not getattr(method, "exact_crop", False):
        return f"{method.name}'s map in a crop window is not its whole-image map"
    if isinstance(roi, list):
        return "several ROIs (crop crops around one)"
    if targets is not None:
        return "targets= (crop crops around one ROI of one target)"
    if per_channel:
        return "per_channel=True"
    return ""


def crop_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``explain``'s keyword arguments for :func:`iter_crop`, checked: one ROI, a crop."""
    args = dict(kwargs)
    crop = check_crop(args.pop("crop", "auto"))
    rois = roi_list(args.pop("roi", None))
    if rois is None or len(rois) != 1:
        raise ValueError("crop needs one roi (the region whose box is cropped)")
    return {**args, "roi": rois[0], "crop": crop}
