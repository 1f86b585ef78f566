"""Bring a map, an image and a model into one checked evaluation problem."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._engine.inputs import model_device_dtype, model_layout, prepare_image, prepare_reference
from .._engine.loop import ModelRunner, RunOptions, batch_limit
from .._engine.model_call import ModelCall
from .._engine.scores import (
    OUTPUT_KINDS,
    PreparedReference,
    check_probabilities,
    dice,
    pixel_probabilities,
    probabilities,
    segmentation,
)
from ..explanation import Explanation
from ..roi import as_roi, bounding_box, box_text, restrict_reference, restricted_score
from .substrates import Substrate, get_substrate

__all__ = ["SCORES", "Problem", "as_map", "prepare_problem"]

#: The step scores of a deletion or insertion curve.
SCORES = ("dice", "probability")


def as_map(values: Any, name: str = "map") -> np.ndarray:
    """A saliency map (numpy or torch) as a finite float64 array."""
    if isinstance(values, Explanation):
        values = values.map
    if torch.is_tensor(values):
        values = values.detach().to("cpu").numpy()
    if not isinstance(values, np.ndarray):
        raise TypeError(
            f"{name} must be an Explanation, a numpy array or a torch tensor, "
            f"got {type(values).__name__}"
        )
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


@dataclass
class Problem:
    """Everything the curves need, checked and on the device.

    Attributes
    ----------
    x, substrate
        The input and its substrate, ``(1, C, *spatial)`` on the device.
    saliency
        The map, float64 ``(*spatial)``.
    runner
        Calls and counts the model (the engine's :class:`ModelRunner`).
    score
        ``outputs (B, K, *spatial) -> {"dice": (B,), "probability": (B,)}`` float64.
    batch_size
        Perturbed inputs per model call.
    target
        The explained class, or None for all foreground classes.
    method
        The method that made the map, when known.
    voxels
        Flat indices (ascending) of the voxels that the curves order, remove and insert:
        every voxel, or those of the window.
    window
        The window's box, one ``[start, stop]`` per spatial axis (None: the whole image).
    """

    x: torch.Tensor
    substrate: torch.Tensor
    saliency: np.ndarray
    runner: ModelRunner
    score: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    batch_size: int
    target: int | None
    method: str | None
    voxels: np.ndarray
    window: list[list[int]] | None = None

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape."""
        return tuple(self.x.shape[2:])

    @property
    def n_voxels(self) -> int:
        """Voxels that the curves remove or insert (the window's, or the image's)."""
        return int(self.voxels.size)


def _check_target(target: Any, k: int) -> int | None:
    if target is None:
        return None
    hi = max(k, 2) - 1
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"target must be an int class index or None, got {target!r}")
    if not 0 <= int(target) <= hi:
        raise ValueError(
            f"target must be a class index in [0, {hi}] for a model with {k} output "
            f"channel(s), got {target}"
        )
    return int(target)


def _make_score(reference: torch.Tensor, target: int | None, k: int, kind: str):
    """The two step scores against the reference, for one class or all foreground ones."""
    classes = [target] if target is not None else list(range(1, max(k, 2)))
    region = reference == target if target is not None else reference > 0
    if not bool(region.any()):
        what = f"class {target}" if target is not None else "any foreground class (labels > 0)"
        raise ValueError(
            f"the reference segmentation has no voxel of {what}: expected at least one voxel "
            "to score the curves on (give another target, or a reference that contains it)"
        )
    prepared = PreparedReference(reference, classes)
    index = region.flatten().nonzero().squeeze(1)
    labels = reference.flatten().index_select(0, index)

    def score(out: torch.Tensor) -> dict[str, torch.Tensor]:
        d = dice(segmentation(out, kind), prepared, classes)
        if target is not None or k <= 2:
            p = pixel_probabilities(out, index, target if target is not None else 1, kind)
        else:  # each voxel's own reference class
            b = out.shape[0]
            gathered = out.reshape(b, k, -1).index_select(2, index)
            probs = probabilities(gathered, kind)
            p = probs.gather(1, labels.view(1, 1, -1).expand(b, 1, -1))[:, 0]
        return {"dice": d.double(), "probability": p.double().mean(dim=1)}

    return score


def slice_fields(expl: Explanation, slice_index: Any) -> dict[str, Any]:
    """Map, image, reference, target, ROI and window of one slice of an explanation made
    slice by slice (a 2D model on a volume): what the curves of that slice need."""
    if slice_index is None or slice_index not in expl.slices:
        shown = ", ".join(map(str, expl.slices[:8])) + (" …" if len(expl.slices) > 8 else "")
        given = "" if slice_index is None else f"; slice {slice_index} was not explained"
        raise ValueError(
            "this explanation was made slice by slice (a 2D model on a volume): evaluate one "
            f"slice at a time, with slice_index= one of the explained slices ({shown}){given}"
        )
    if expl.image is None:
        raise ValueError("the explanation holds no image: evaluate its slice with image=")
    z = int(slice_index)
    out: dict[str, Any] = {
        "map": np.asarray(expl.map[z]),
        "image": np.asarray(expl.image)[:, z],
        "reference": None if expl.reference is None else expl.reference[z],
        "target": expl.target,
        "roi": None,
        "window": None,
    }
    if expl.roi is not None and expl.roi[z].any():  # the ROI's part of this slice
        out["roi"] = np.asarray(expl.roi[z])
    crop = expl.params.get("crop_window")
    if crop is not None and len(crop) == 3:  # the slice's part of the crop window
        out["window"] = tuple(slice(int(a), int(b)) for a, b in crop[1:])
    return out


def _source_fields(
    source: Any, image: Any, reference: Any, target: Any, roi: Any, slice_index: Any, window: Any
):
    """Map, image, reference, target, ROI, method name and window from an Explanation (one
    slice of it when it was made slice by slice) or a raw map."""
    if isinstance(source, Explanation) and source.slices is not None:
        got = slice_fields(source, slice_index)
        got["window"] = got["window"] if isinstance(window, str) and window == "auto" else window
        z, depth = int(slice_index), source.map.shape[0]
        # a reference or ROI given for the whole volume: its slice (a slice's own is 2D)
        if reference is not None and np.ndim(reference) == 3 and np.shape(reference)[0] == depth:
            reference = np.asarray(reference)[z]
        if isinstance(roi, np.ndarray) and roi.ndim == 3 and roi.shape[0] == depth:
            roi = roi[z]
        for name, given in (("image", image), ("reference", reference), ("target", target)):
            got[name] = got[name] if given is None else given
        roi = got["roi"] if roi is None else roi
        fields = (got["image"], got["reference"], got["target"], roi, source.method)
        return (as_map(got["map"]), *fields, got["window"])
    if slice_index is not None:
        raise ValueError(
            "slice_index picks a slice of an explanation made slice by slice (a 2D model on "
            "a volume); this one was not: leave slice_index out"
            if isinstance(source, Explanation)
            else "slice_index picks a slice of an explanation made slice by slice; with a raw "
            "map give that slice's map and image (map[z], image[:, z])"
        )
    if isinstance(source, Explanation):
        image = source.image if image is None else image
        reference = source.reference if reference is None else reference
        target = source.target if target is None else target
        if image is None:
            raise ValueError("the explanation holds no image: pass image=")
        if roi is None and isinstance(source.params.get("roi"), list):
            raise ValueError(
                f"this explanation explained {len(source.params['roi'])} ROIs: evaluate one "
                "at a time, with its map (expl.extras['target_<i>']) and roi=<that ROI>"
            )
        roi = source.roi if roi is None and source.roi is not None else roi
        return as_map(source.map), image, reference, target, roi, source.method, window
    if image is None:
        raise ValueError("a raw saliency map needs the image it explains: pass image=")
    return as_map(source), image, reference, target, roi, None, window


def _roi_region(roi: Any, spatial: tuple[int, ...], labels: torch.Tensor, target: Any):
    """``roi`` as a boolean tensor of ``spatial`` shape (a point picks a component of
    ``labels``), refusing the background as the class to score."""
    if target == 0:
        raise ValueError(
            "roi scores a foreground class: outside the ROI every voxel counts as "
            "background, so target=0 (the background) cannot be scored inside an ROI"
        )
    region = as_roi(roi).resolve(spatial, labels.to("cpu").numpy())
    return torch.from_numpy(np.ascontiguousarray(region)).to(labels.device)


def _window(window: Any, source: Any, spatial: tuple[int, ...], labels: torch.Tensor):
    """Voxels the curves order (flat indices) and the window's box, from ``window``.

    ``"auto"``: the crop window of an explanation made in crop mode (outside it the map
    holds no saliency, only a fill), else the whole image; None or ``"full"``: the whole
    image; a box
    (``"z0:z1,y0:y1,x0:x1"`` or one slice or ``(start, stop)`` per axis), a boolean mask
    or an :class:`~maskscope.ROI` (a point picks a component of ``labels``) otherwise.
    """
    if isinstance(window, str) and window in ("auto", "full"):
        crop = source.params.get("crop_window") if isinstance(source, Explanation) else None
        if window == "full" or crop is None:
            window = None
        else:
            window = tuple(slice(int(a), int(b)) for a, b in crop)
    if isinstance(window, list):  # as results and params hold it: one [start, stop] per axis
        window = tuple(tuple(w) if isinstance(w, list) else w for w in window)
    if window is None:
        return np.arange(int(np.prod(spatial)), dtype=np.int64), None
    if (isinstance(window, np.ndarray) or torch.is_tensor(window)) and not window.any():
        raise ValueError("window holds no voxel: expected a region of the image to order")
    try:
        mask = as_roi(window).resolve(spatial, labels.to("cpu").numpy())
    except (TypeError, ValueError) as exc:
        text = str(exc).replace("the ROI", "the window").replace("roi must", "window must")
        raise type(exc)(f"window: {text}") from None
    box = [[s.start, s.stop] for s in bounding_box(mask)]
    return np.flatnonzero(mask.ravel()).astype(np.int64), box


def _check_window_holds_segment(ref, target, voxels, box, in_roi: bool) -> None:
    """Warn when the window holds no voxel of the segment scored (a window of another run)."""
    scored = (ref == target) if target is not None else (ref > 0)
    flat = scored.flatten().to("cpu").numpy()
    if flat[voxels].any():
        return
    where = " inside the ROI" if in_roi else ""
    text = box_text(box)
    warnings.warn(
        f"the window {text} holds none of the {int(flat.sum())} voxels scored (the "
        f"reference's segment{where}): its curves move only what surrounds the segment; is "
        "it the window the map was made in?",
        UserWarning,
        stacklevel=4,
    )


def _inputs(model, image, map_shape, sub_fn, spatial_dims) -> tuple[torch.Tensor, torch.Tensor]:
    """The image and its substrate as ``(1, C, *spatial)`` in the model's device and dtype."""
    dims, in_ch = model_layout(model)
    layout = prepare_image(image, spatial_dims or dims, in_ch)
    if layout.slice_by_slice:
        raise ValueError(
            f"a 2D model on a volume of shape {layout.spatial}: evaluate one slice at a time "
            "(image[:, z] and map[z])"
        )
    if map_shape != layout.spatial:
        raise ValueError(
            f"map must have the image's spatial shape {layout.spatial}, got {map_shape}"
        )
    device, dtype = model_device_dtype(model)
    device, dtype = device or torch.device("cpu"), dtype or torch.float32
    img = layout.image.double().numpy()
    sub = np.asarray(sub_fn(img), dtype=np.float64)
    if sub.shape != img.shape:
        raise ValueError(f"the substrate must have the image's shape {img.shape}, got {sub.shape}")
    x = layout.image.to(dtype).unsqueeze(0).to(device)
    return x, torch.from_numpy(sub).to(dtype).unsqueeze(0).to(device)


def prepare_problem(
    source: Any,
    *,
    model: Callable,
    image: Any = None,
    reference: Any = None,
    target: int | None = None,
    roi: Any = None,
    substrate: str | Substrate = "zero",
    blur_sigma: float = 5.0,
    batch_size: int = 16,
    outputs: str = "logits",
    spatial_dims: int | None = None,
    output_key: str | int | None = None,
    output: Callable | None = None,
    pad_multiple: int | tuple[int, ...] | None = None,
    pad_mode: str = "zeros",
    window: Any = "auto",
    slice_index: int | None = None,
) -> Problem:
    """Check the inputs, run the model once on the image, and build the scores.

    ``window`` limits the voxels that the curves order (see :func:`_window`). The model
    is called as the methods call it (:class:`~maskscope._engine.model_call.
    ModelCall`: output adapter and padding); its layout, device and dtype are read from
    the model itself.
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    call = ModelCall(
        model, output_key=output_key, output=output, pad_multiple=pad_multiple, pad_mode=pad_mode
    )
    if outputs not in OUTPUT_KINDS:
        raise ValueError(f"outputs must be one of {OUTPUT_KINDS}, got {outputs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    sub_fn = get_substrate(substrate, blur_sigma=blur_sigma)
    saliency, image, reference, target, roi, method, window = _source_fields(
        source, image, reference, target, roi, slice_index, window
    )
    if slice_index is not None:
        spatial_dims = 2  # one slice of a 2D model's run
    if getattr(model, "training", False):
        warnings.warn(
            "the model is in training mode (dropout / batch-norm statistics change its "
            "outputs); call model.eval() before evaluating a map of it",
            UserWarning,
            stacklevel=3,
        )
    x, sub_t = _inputs(model, image, saliency.shape, sub_fn, spatial_dims)
    spatial = tuple(x.shape[2:])
    runner = ModelRunner(call, spatial)
    out = runner(x)
    if out.ndim <= 2:
        raise ValueError(
            "deletion and insertion curves score segmentations: the model must return "
            f"(B, K, *spatial), got {tuple(out.shape)}"
        )
    k = int(out.shape[1])
    check_probabilities(out, outputs)
    target = _check_target(target, k)
    prediction = segmentation(out, outputs)[0].long()
    voxels, box = _window(window, source, spatial, prediction)
    if reference is None:
        ref = prediction
    else:
        ref = prepare_reference(reference, spatial, n_classes=k).to(x.device)
    region = None if roi is None else _roi_region(roi, spatial, prediction, target)
    if region is not None:
        ref = restrict_reference(ref, region)
    score = _make_score(ref, target, k, outputs)
    if region is not None:
        score = restricted_score(score, region, outputs)
    if box is not None:
        _check_window_holds_segment(ref, target, voxels, box, region is not None)
    ordered = saliency.ravel()[voxels]
    if ordered.size and ordered.min() == ordered.max():
        where = "" if slice_index is None else f" (slice {slice_index})"
        warnings.warn(
            f"the map{where} is flat over the voxels the curves order (every value "
            f"{ordered[0]:g}): its curves follow the voxels' index order, not saliency; was "
            "this slice or region explained?",
            UserWarning,
            stacklevel=3,
        )
    limit = batch_limit(RunOptions(batch_size=int(batch_size)), x)
    return Problem(
        x=x,
        substrate=sub_t,
        saliency=saliency,
        runner=runner,
        score=score,
        batch_size=min(int(batch_size), limit),
        target=target,
        method=method,
        voxels=voxels,
        window=box,
    )
