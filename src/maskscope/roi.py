"""Regions of interest: what part of a segmentation to explain.

An :class:`ROI` says *where* the scores look. It is one of

* a boolean mask of the image's spatial shape (:meth:`ROI.from_mask`);
* a box, one ``start:stop`` range per spatial axis (:meth:`ROI.from_box`, or a string
  such as ``"10:42,0:64,5:37"``);
* the voxels of one value of a given label image (:meth:`ROI.from_label`);
* a point, which selects its connected component of the model's prediction, or of a
  given label image (:meth:`ROI.from_point`): one lesion among several.

Any of them can be grown by a few voxels (``grow=``) to take in the segment's
surroundings. The ROI is resolved to a boolean mask once the prediction is known
(:meth:`ROI.resolve`); every method then scores only inside it: the reference segment is
cut to the ROI, and outside it every perturbed output is set to a sure background (see
:func:`restrict_outputs`), so Dice, the target probability and the Hausdorff distance are
all computed on the ROI alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ._engine.inputs import without_channel_of_one

__all__ = [
    "ROI",
    "as_roi",
    "bounding_box",
    "component_at",
    "inner_border",
    "outer_border",
    "parse_box",
    "restrict_outputs",
    "restrict_reference",
    "restricted_score",
]

#: Logit given to the background class (and taken from the others) outside the ROI:
#: ``exp(-1e4)`` is 0 in float32 and float64, so the softmax there is exactly one-hot.
_FAR = 1e4


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _range_str(s: slice) -> str:
    return f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}"


def box_text(box) -> str:
    """``"z0:z1,y0:y1,x0:x1"`` from one ``[start, stop]`` pair per axis (``parse_box``'s
    form, as ``params["crop_window"]`` and the curves' ``window`` hold a box)."""
    return ",".join(f"{a}:{b}" for a, b in box)


def parse_box(text: str) -> tuple[slice, ...]:
    """Parse a box ``"z0:z1,y0:y1,x0:x1"`` (or ``"y0:y1,x0:x1"``) into slices.

    As in a Python slice, a range may leave out its start (from 0) or its stop (to the
    end of the axis): ``"10:,:20,5:15"``.

    Raises
    ------
    ValueError
        When the text is not ``start:stop`` integer ranges separated by commas.
    """
    out = []
    for part in str(text).split(","):
        bits = part.strip().split(":")
        try:
            if len(bits) != 2:
                raise ValueError
            start, stop = (int(b) if b.strip() else None for b in bits)
            out.append(slice(start, stop))
        except ValueError:
            raise ValueError(
                f"a box is one start:stop range of integers per spatial axis, comma-separated "
                f"(e.g. '10:42,0:64,5:37'; '10:' runs to the end), got {text!r}"
            ) from None
    return tuple(out)


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (one slice per axis) holding every True voxel of ``mask``."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the mask has no True voxel: it has no bounding box")
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        hit = np.flatnonzero(mask.any(axis=other))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def _check_point(point: Sequence[int], shape: tuple[int, ...]) -> tuple[int, ...]:
    try:
        pt = tuple(round(float(p)) for p in point)
    except (TypeError, ValueError):
        raise ValueError(f"a point is one coordinate per spatial axis, got {point!r}") from None
    if len(pt) != len(shape):
        raise ValueError(
            f"the point needs {len(shape)} coordinates (one per spatial axis of shape "
            f"{_shape_str(shape)}), got {len(pt)}: {point!r}"
        )
    if not all(0 <= p < n for p, n in zip(pt, shape, strict=True)):
        raise ValueError(
            f"the point {_shape_str(pt)} lies outside the image of spatial shape "
            f"{_shape_str(shape)}"
        )
    return pt


def component_at(labels: Any, point: Sequence[int], *, connectivity: int = 1) -> np.ndarray:
    """The connected component of ``labels`` that holds ``point``, as a boolean mask.

    Voxels belong to the component when they carry the point's label and are connected to
    it (``connectivity`` 1: faces; up to ``ndim``: edges and corners too, as
    :func:`scipy.ndimage.generate_binary_structure`).

    Raises
    ------
    ValueError
        When the point lies outside the image or on the background (label 0).
    """
    labels = _as_numpy(labels)
    pt = _check_point(point, labels.shape)
    value = labels[pt]
    if value == 0:
        raise ValueError(
            f"the point {_shape_str(pt)} is on the background (label 0) of the segmentation: "
            "point inside a segment"
        )
    if not 1 <= connectivity <= labels.ndim:
        raise ValueError(f"connectivity must be in [1, {labels.ndim}], got {connectivity!r}")
    structure = ndimage.generate_binary_structure(labels.ndim, connectivity)
    components, _ = ndimage.label(labels == value, structure=structure)
    return components == components[pt]


def _grow(mask: np.ndarray, width: int) -> np.ndarray:
    if width <= 0:
        return mask
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return ndimage.binary_dilation(mask, structure=structure, iterations=int(width))


def inner_border(mask: Any, width: int = 1) -> np.ndarray:
    """The voxels of ``mask`` within ``width`` face steps of its outside (its rim).

    The image's edge counts as outside, so a segment touching it has a rim there.
    """
    mask = np.asarray(_as_numpy(mask), dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, iterations=int(width))
    return mask & ~eroded


def outer_border(mask: Any, width: int = 1) -> np.ndarray:
    """The voxels outside ``mask`` within ``width`` face steps of it (a shell around it)."""
    mask = np.asarray(_as_numpy(mask), dtype=bool)
    return _grow(mask, width) & ~mask


def _as_numpy(a: Any) -> np.ndarray:
    if torch.is_tensor(a):
        return a.detach().to("cpu").numpy()
    return np.asarray(a)


@dataclasses.dataclass(frozen=True, eq=False)
class ROI:
    """A region of interest; build one with the ``from_*`` constructors.

    Attributes
    ----------
    kind
        ``"mask"``, ``"box"``, ``"label"`` or ``"point"``.
    mask
        The boolean mask (``kind="mask"``).
    box
        One slice per spatial axis (``kind="box"``).
    labels
        A label image (``kind="label"``; optional for ``kind="point"``, which uses the
        model's prediction when it is None).
    value
        The label value (``kind="label"``).
    point
        The point (``kind="point"``), one voxel coordinate per spatial axis.
    grow
        Voxels (face steps) by which the region is grown after it is resolved.
    connectivity
        Connectivity of the component a point selects.
    """

    kind: str
    mask: np.ndarray | None = None
    box: tuple[slice, ...] | None = None
    labels: np.ndarray | None = None
    value: int | None = None
    point: tuple[int, ...] | None = None
    grow: int = 0
    connectivity: int = 1

    @classmethod
    def from_mask(cls, mask: Any, *, grow: int = 0) -> ROI:
        """The True voxels of a boolean (or 0/1) mask of the image's spatial shape."""
        arr = _as_numpy(mask)
        if arr.dtype != bool:
            if not np.isin(arr, (0, 1)).all():
                raise ValueError(
                    f"an ROI mask must be boolean (or hold only 0 and 1), got dtype {arr.dtype} "
                    f"with values in [{arr.min()}, {arr.max()}]"
                )
            arr = arr.astype(bool)
        return cls("mask", mask=arr, grow=_check_grow(grow))

    @classmethod
    def from_box(cls, box: str | Sequence[slice | tuple[int, int]], *, grow: int = 0) -> ROI:
        """A box: ``"z0:z1,y0:y1,x0:x1"``, or one ``slice`` / ``(start, stop)`` per axis.

        A start or stop left out (``"10:"``, ``slice(None, 20)``) runs from 0 or to the end.
        """
        if isinstance(box, str):
            slices = parse_box(box)
        else:
            slices = tuple(b if isinstance(b, slice) else slice(*b) for b in box)
        for s in slices:
            if s.step not in (None, 1):
                raise ValueError(f"a box range takes no step, got {s}")
        return cls("box", box=slices, grow=_check_grow(grow))

    @classmethod
    def from_label(cls, labels: Any, value: int, *, grow: int = 0) -> ROI:
        """The voxels where ``labels == value``."""
        return cls("label", labels=_as_numpy(labels), value=int(value), grow=_check_grow(grow))

    @classmethod
    def from_point(
        cls, point: Sequence[int], labels: Any = None, *, grow: int = 0, connectivity: int = 1
    ) -> ROI:
        """The connected component at ``point`` of ``labels`` (default: the prediction)."""
        return cls(
            "point",
            point=tuple(point),
            labels=None if labels is None else _as_numpy(labels),
            grow=_check_grow(grow),
            connectivity=int(connectivity),
        )

    def reversed_axes(self) -> ROI:
        """The same region with the spatial axes in reverse order (``kji`` ↔ ``ijk``)."""

        def flip(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.ascontiguousarray(np.transpose(a))

        return dataclasses.replace(
            self,
            mask=flip(self.mask),
            labels=flip(self.labels),
            box=None if self.box is None else tuple(reversed(self.box)),
            point=None if self.point is None else tuple(reversed(self.point)),
        )

    def describe(self) -> str:
        """A short text for records and messages."""
        if self.kind == "box":
            return "box " + ",".join(_range_str(s) for s in self.box or ())
        if self.kind == "label":
            return f"label {self.value}"
        if self.kind == "point":
            return f"component at {_shape_str(self.point or ())}"
        return f"mask of {int(np.count_nonzero(self.mask))} voxels"

    def resolve(self, spatial: Sequence[int], prediction: Any = None) -> np.ndarray:
        """The ROI as a boolean mask of ``spatial`` shape (``prediction``: for a point).

        Raises
        ------
        ValueError
            On a wrong shape, a box or point outside the image, a point on the
            background, or an ROI with no voxel.
        """
        spatial = tuple(int(s) for s in spatial)
        region = getattr(self, f"_resolve_{self.kind}")(spatial, prediction)
        if not region.any():
            raise ValueError(f"the ROI ({self.describe()}) has no voxel: nothing to explain")
        return _grow(region, self.grow)

    def _resolve_mask(self, spatial, prediction) -> np.ndarray:
        mask = without_channel_of_one(self.mask, spatial)
        _check_shape("ROI mask", mask.shape, spatial)
        return mask

    def _resolve_box(self, spatial, prediction) -> np.ndarray:
        box = self.box or ()
        if len(box) != len(spatial):
            raise ValueError(
                f"the ROI box needs one range per spatial axis of shape {_shape_str(spatial)} "
                f"({len(spatial)}), got {len(box)}: {self.describe()}"
            )
        box = tuple(
            slice(0 if s.start is None else s.start, n if s.stop is None else s.stop)
            for s, n in zip(box, spatial, strict=True)
        )
        for s, n in zip(box, spatial, strict=True):
            if not 0 <= s.start < s.stop <= n:
                raise ValueError(
                    f"the ROI {self.describe()} must lie inside the image of spatial shape "
                    f"{_shape_str(spatial)} (0 <= start < stop <= size on every axis)"
                )
        out = np.zeros(spatial, dtype=bool)
        out[box] = True
        return out

    def _resolve_label(self, spatial, prediction) -> np.ndarray:
        labels = without_channel_of_one(self.labels, spatial)
        _check_shape("ROI label image", labels.shape, spatial)
        region = labels == self.value
        if not region.any():
            present = ", ".join(str(v) for v in np.unique(labels)[:20])
            raise ValueError(
                f"label {self.value} does not occur in the ROI label image (values present: "
                f"{present}): nothing to explain"
            )
        return region

    def _resolve_point(self, spatial, prediction) -> np.ndarray:
        labels = self.labels if self.labels is not None else prediction
        if labels is None:
            raise ValueError("an ROI point needs a label image or the model's prediction")
        labels = without_channel_of_one(_as_numpy(labels), spatial)
        _check_shape("ROI label image", labels.shape, spatial)
        return component_at(labels, self.point or (), connectivity=self.connectivity)


def _check_grow(grow: Any) -> int:
    if isinstance(grow, bool) or not isinstance(grow, (int, np.integer)) or grow < 0:
        raise ValueError(f"grow must be an int >= 0 (voxels), got {grow!r}")
    return int(grow)


def _check_shape(what: str, shape: tuple[int, ...], spatial: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(spatial):
        raise ValueError(
            f"the {what} must have the image's spatial shape {_shape_str(spatial)}, "
            f"got {_shape_str(shape)}"
        )


def as_roi(roi: Any) -> ROI | None:
    """Turn what a user gives as ``roi=`` into an :class:`ROI` (None stays None).

    Accepted: an :class:`ROI`; a box string ``"z0:z1,y0:y1,x0:x1"``; a tuple of slices or
    of ``(start, stop)`` pairs; a boolean (or 0/1) array of the image's spatial shape.
    """
    if roi is None or isinstance(roi, ROI):
        return roi
    if isinstance(roi, str):
        return ROI.from_box(roi)
    if isinstance(roi, tuple) and all(
        isinstance(r, slice) or (isinstance(r, (tuple, list)) and len(r) == 2) for r in roi
    ):
        return ROI.from_box(roi)
    if isinstance(roi, (np.ndarray, torch.Tensor)):
        return ROI.from_mask(roi)
    raise TypeError(
        "roi must be an ROI, a box ('z0:z1,y0:y1,x0:x1' or a tuple of slices) or a boolean "
        f"mask array, got {type(roi).__name__}"
    )


def restrict_reference(reference: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """The reference label image with every voxel outside ``roi`` set to background (0)."""
    return torch.where(roi.to(reference.device), reference, torch.zeros_like(reference))


def restrict_outputs(outputs: torch.Tensor, outside: torch.Tensor, kind: str) -> torch.Tensor:
    """Model outputs ``(B, K, *spatial)`` made a sure background where ``outside`` is True.

    Logits become 0 for the background class and ``-1e4`` for the others (one-hot after a
    softmax; a sigmoid of ``-1e4`` for a one-channel model); probabilities become one-hot
    background. Inside the ROI the outputs are unchanged, so every score only sees the ROI.
    """
    out = outputs.clone()
    k = out.shape[1]
    sure = torch.full((k,), -_FAR if kind == "logits" else 0.0, dtype=out.dtype)
    if k > 1:
        sure[0] = 0.0 if kind == "logits" else 1.0
    sure = sure.to(out.device).reshape(1, k, *([1] * (out.ndim - 2)))
    where = outside.to(out.device).reshape(1, 1, *outside.shape)
    return torch.where(where, sure, out)


def restricted_score(
    score: Callable[[torch.Tensor], torch.Tensor], roi: torch.Tensor, kind: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A score that sees the outputs restricted to ``roi`` (see :func:`restrict_outputs`)."""
    outside = ~roi

    def score_in_roi(outputs: torch.Tensor) -> torch.Tensor:
        return score(restrict_outputs(outputs, outside, kind))

    return score_in_roi
