"""The sliding-window fields both GUIs show: patch size, overlap, blending, patches per call.

A patch-based model (nnU-Net, MONAI) runs on a volume by sliding window: the GUIs wrap it
in :class:`maskscope.SlidingWindow` when the *patch size* field is filled, with the same
settings as the command line's ``--patch-size``, ``--patch-overlap``, ``--patch-blend``
and ``--patch-batch``. The fields are one parameter dataclass (:class:`PatchFields`), so
that both forms build their entries from :func:`patch_form` like the methods' fields;
:func:`read_patches` checks what was typed, with messages that name the field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import SlidingWindow
from .._engine.params import describe_params, param
from .._engine.sliding import BLEND_MODES
from .fields import FormField, field_kind, field_types, format_value
from .models import LoadedModel

__all__ = [
    "BLEND_MODES",
    "PATCH_NAMES",
    "PatchFields",
    "SlidingSettings",
    "check_patch_dims",
    "patch_form",
    "read_patches",
    "split_patch_values",
    "windowed",
]


@dataclass(frozen=True)
class PatchFields:
    """The sliding-window fields, with the defaults of the command line's flags."""

    patch_size: int | tuple[int, ...] | None = param(
        None,
        label="patch size",
        help=(
            "Run the model by sliding window on patches of this many voxels per axis "
            "(64, or 64, 64, 32): for models trained on patches. Empty: the whole input"
        ),
    )
    patch_overlap: float = param(
        0.25,
        label="patch overlap",
        min=0.0,
        max=1.0,
        max_exclusive=True,
        step=0.05,
        help="Fraction of a patch shared with its neighbour along each axis, in [0, 1)",
    )
    patch_blend: str = param(
        "constant",
        label="patch blending",
        choices=BLEND_MODES,
        help="How overlapping patches are merged: a plain mean, or a Gaussian weight",
    )
    patch_batch: int = param(
        4,
        label="patches per call",
        min=1,
        help="Patches sent to the model in one call, from all the perturbed volumes of a batch",
    )


#: The fields' names, which are also the keys the explanation's params record them under.
PATCH_NAMES = tuple(f.name for f in dataclasses.fields(PatchFields))


def patch_form() -> list[FormField]:
    """The sliding-window fields as form entries (kinds, bounds, choices, parsers)."""
    return list(_patch_form())


@functools.cache
def _patch_form() -> tuple[FormField, ...]:
    types = field_types(PatchFields)
    out = []
    for spec in describe_params(PatchFields):
        kind, optional = field_kind(spec, types[spec.name])
        out.append(FormField(spec, kind, optional, "patches", types[spec.name]))
    return tuple(out)


def split_patch_values(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(sliding-window values, the others)`` of keyword values given to a widget."""
    patch = {k: v for k, v in values.items() if k in PATCH_NAMES}
    return patch, {k: v for k, v in values.items() if k not in PATCH_NAMES}


@dataclass(frozen=True)
class SlidingSettings:
    """Checked sliding-window settings (the keywords of :class:`maskscope.SlidingWindow`)."""

    patch_size: int | tuple[int, ...]
    overlap: float = 0.25
    blend: str = "constant"
    patch_batch: int = 4

    def wrap(self, model: Callable) -> SlidingWindow:
        """``model`` run by sliding window with these settings."""
        return SlidingWindow(
            model,
            self.patch_size,
            overlap=self.overlap,
            blend=self.blend,
            patch_batch=self.patch_batch,
        )


def _label(name: str) -> str:
    return next(f.spec.label for f in _patch_form() if f.name == name)


def _shown(value: Any) -> str:
    """A value as a message quotes it: text in quotes, numbers as typed."""
    return repr(value) if isinstance(value, str) else format_value(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _size(value: Any) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(_is_int(v) and v >= 1 for v in items):
        raise ValueError(
            f"{_label('patch_size')} takes a positive int, or one per axis separated by "
            f"commas (64, or 64, 64, 32), got {_shown(value)}"
        )
    return value


def read_patches(values: dict[str, Any]) -> SlidingSettings | None:
    """The settings the fields' values ask for; None when the patch size is empty.

    Parameters
    ----------
    values
        Values by field name (:data:`PATCH_NAMES`), as the form entries read them; missing
        names take the defaults.

    Raises
    ------
    ValueError
        Naming the field, what it takes and what was given.
    """
    unknown = sorted(set(values) - set(PATCH_NAMES))
    if unknown:
        raise ValueError(f"unknown sliding-window field(s) {', '.join(unknown)}: {PATCH_NAMES}")
    given = {**{f.name: f.spec.default for f in _patch_form()}, **values}
    size = _size(given["patch_size"])
    overlap = given["patch_overlap"]
    number = isinstance(overlap, int | float) and not isinstance(overlap, bool)
    if not number or not math.isfinite(overlap) or not 0.0 <= overlap < 1.0:
        raise ValueError(
            f"{_label('patch_overlap')} takes a number in [0, 1), got {_shown(overlap)}"
        )
    blend = given["patch_blend"]
    if blend not in BLEND_MODES:
        raise ValueError(
            f"{_label('patch_blend')} must be one of {' / '.join(BLEND_MODES)}, got {blend!r}"
        )
    batch = given["patch_batch"]
    if not _is_int(batch) or batch < 1:
        raise ValueError(f"{_label('patch_batch')} takes an int ≥ 1, got {_shown(batch)}")
    if size is None:
        return None
    return SlidingSettings(size, float(overlap), blend, int(batch))


def windowed(loaded: LoadedModel, settings: SlidingSettings | None) -> LoadedModel:
    """The model run by sliding window with ``settings`` (as it is when None).

    The wrapped model is what every later step sees: the prediction check, the run and
    the evaluation of its map.
    """
    if settings is None:
        return loaded
    return dataclasses.replace(loaded, model=settings.wrap(loaded.model))


def check_patch_dims(model: Any, spatial_dims: int | None) -> None:
    """Refuse a patch size with a value per axis for another number of axes.

    Parameters
    ----------
    model
        The model as the method runs it (checked when it is a :class:`SlidingWindow`).
    spatial_dims
        The spatial axes of the model's inputs (2 for a 2D model on a volume), or None
        when not known before the run.
    """
    if not isinstance(model, SlidingWindow) or spatial_dims is None:
        return
    size = model.patch_size
    if isinstance(size, tuple) and len(size) != spatial_dims:
        raise ValueError(
            f"{_label('patch_size')} has {len(size)} values ({format_value(size)}), but the "
            f"model runs on {spatial_dims} spatial axes: give one value, or {spatial_dims}"
        )
