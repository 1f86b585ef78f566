"""Helpers shared by the napari and notebook widgets (no GUI package is imported here).

:mod:`maskscope.frontend` says *what* a run needs; this module holds the small pieces both
widgets need to present it: which kind of entry each parameter gets, how text typed in a
form becomes a value, how a layer's array becomes the engine's ``(C, *spatial)`` input,
which slices a "scope" choice means, and how progress and errors read in one line.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._engine.loop import RunOptions
from ._engine.params import ParamSpec
from .explanation import Explanation
from .frontend import form_fields, method_class

__all__ = [
    "KINDS",
    "SCOPES",
    "FormField",
    "InputArray",
    "error_line",
    "field_kind",
    "form",
    "format_duration",
    "format_value",
    "input_array",
    "parse_text",
    "progress_text",
    "scope_slices",
]

#: What a 2D model explains in a volume: the slice on screen, every slice, or a range.
SCOPES = ("current slice", "all slices", "range")

#: Kinds of form entries: a check box, integer and float spin boxes, a fixed choice, a
#: choice that also accepts a typed number, and free text (numbers, tuples, strings).
KINDS = ("bool", "int", "float", "choice", "choice-or-number", "text")


@dataclass(frozen=True)
class FormField:
    """One entry of a method's form.

    Attributes
    ----------
    spec
        The parameter's name, label, default, help text, bounds and choices.
    kind
        One of ``"bool"``, ``"int"``, ``"float"``, ``"choice"``, ``"choice-or-number"``,
        ``"text"``.
    optional
        Whether the parameter accepts None (a spin box then shows "none" at its lowest
        value).
    group
        ``"params"`` for the method's parameters, ``"options"`` for the run options.
    types
        Base type names the parameter accepts (``{"int", "tuple"}``, ...).
    """

    spec: ParamSpec
    kind: str
    optional: bool
    group: str
    types: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The parameter's name."""
        return self.spec.name

    def check(self, value: Any) -> Any:
        """Reject text where the parameter takes numbers; return the value otherwise.

        Bounds and choices are checked later by the parameter dataclass.

        Raises
        ------
        ValueError
            Naming the parameter, what it takes and what was typed.
        """
        numbers = self.types & {"int", "float", "tuple", "list", "Sequence"}
        if value is None and not self.optional:
            many = " or numbers separated by commas" if self.types & {"tuple", "list"} else ""
            takes = "a number" + many if numbers else "a value"
            raise ValueError(f"{self.spec.label} is empty: it takes {takes}")
        if "str" in self.types or not numbers:
            return value
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, str) or isinstance(v, bool) for v in items):
            many = " or numbers separated by commas" if self.types & {"tuple", "list"} else ""
            raise ValueError(f"{self.spec.label} takes a number{many}, got {format_value(value)!r}")
        return value


def _type_names(annotation: Any) -> set[str]:
    """Base type names in an annotation: ``"int | tuple[int, ...]"`` → {"int", "tuple"}."""
    if isinstance(annotation, type):
        return {annotation.__name__}
    text = str(annotation).replace("typing.", "").replace("Optional[", "None | ")
    names = set()
    for part in text.split("|"):
        part = part.strip().rstrip("]").strip()
        names.add(part.split("[")[0].strip())
    return {"None" if n == "NoneType" else n for n in names if n}


def field_kind(spec: ParamSpec, annotation: Any) -> tuple[str, bool]:
    """The form entry kind for a parameter and whether it accepts None.

    Parameters
    ----------
    spec
        The parameter's description.
    annotation
        Its dataclass field type (a type or, with postponed annotations, a string).

    Returns
    -------
    tuple of (str, bool)
        The kind (see :class:`FormField`) and whether None is allowed.
    """
    names = _type_names(annotation)
    optional = "None" in names or spec.default is None
    names.discard("None")
    if names & {"tuple", "list", "Sequence"}:
        return "text", optional
    if names == {"bool"}:
        return "bool", optional
    if spec.choices is not None:
        if names - {"str"}:
            return "choice-or-number", optional
        return "choice", optional
    if names == {"int"}:
        return "int", optional
    if names <= {"int", "float"} and names:
        return "float", optional
    return "text", optional


def form(method: str) -> list[FormField]:
    """The form of a method: its parameters, then the run options (seed, batch size, ...).

    Parameters
    ----------
    method
        A name in :data:`maskscope.methods.METHODS`.
    """
    param_specs, option_specs = form_fields(method)
    out = []
    for group, cls, specs in (
        ("params", method_class(method).Params, param_specs),
        ("options", RunOptions, option_specs),
    ):
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for spec in specs:
            annotation = types.get(spec.name, type(spec.default))
            kind, optional = field_kind(spec, annotation)
            names = frozenset(_type_names(annotation))
            out.append(FormField(spec, kind, optional, group, names))
    return out


def parse_text(text: str, *, optional: bool = False) -> Any:
    """Turn text typed in a form into a value.

    ``"8"`` → 8, ``"0.5"`` → 0.5, ``"4, 8, 8"`` → (4, 8, 8), ``"none"`` or an empty
    entry → None (when ``optional``), anything else stays a string.
    """
    s = text.strip()
    if s.lower() in ("", "none") and (optional or not s):
        return None
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError):
        if "," in s:
            parts = [p.strip() for p in s.strip("()[]").split(",") if p.strip()]
            try:
                return tuple(ast.literal_eval(p) for p in parts)
            except (ValueError, SyntaxError):
                return s
        return s
    if isinstance(value, list):
        return tuple(value)
    return value


def format_value(value: Any) -> str:
    """The text shown in a form entry for a value (inverse of :func:`parse_text`)."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class InputArray:
    """A layer's array arranged for the engine.

    Attributes
    ----------
    image
        ``(C, *spatial)`` float32.
    spatial_axes
        The axes of the layer's array that are spatial, in order.
    channel_axis
        The layer's channel axis, or None.
    """

    image: np.ndarray
    spatial_axes: tuple[int, ...]
    channel_axis: int | None

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape."""
        return tuple(self.image.shape[1:])


def input_array(data: Any, channel_axis: int | None = None) -> InputArray:
    """Arrange a layer's array as ``(C, *spatial)`` with 2 or 3 spatial axes.

    Parameters
    ----------
    data
        The array (numpy, dask, ... anything ``np.asarray`` accepts).
    channel_axis
        The axis holding channels, or None for one channel.

    Raises
    ------
    ValueError
        When the array does not have 2 or 3 axes besides the channel axis.
    """
    arr = np.asarray(data)
    if channel_axis is not None:
        if not -arr.ndim <= channel_axis < arr.ndim:
            raise ValueError(
                f"channel axis {channel_axis} is out of range for an array of shape {arr.shape}"
            )
        channel_axis %= arr.ndim
    spatial_axes = tuple(a for a in range(arr.ndim) if a != channel_axis)
    if len(spatial_axes) not in (2, 3):
        where = "no channel axis" if channel_axis is None else f"channel axis {channel_axis}"
        raise ValueError(
            f"the image must have 2 or 3 spatial axes, got shape {arr.shape} with {where}: "
            "choose the channel axis, or a 2D or 3D image"
        )
    if channel_axis is None:
        image = arr[None]
    else:
        image = np.moveaxis(arr, channel_axis, 0)
    return InputArray(np.ascontiguousarray(image, dtype=np.float32), spatial_axes, channel_axis)


def scope_slices(scope: str, *, current: int, start: int, stop: int, depth: int) -> Any:
    """The engine's ``slices`` for a scope choice of a 2D model on a volume.

    Parameters
    ----------
    scope
        One of :data:`SCOPES`.
    current
        The slice on screen.
    start, stop
        First and last slice of ``"range"`` (inclusive, in any order).
    depth
        Number of slices.
    """
    if scope == "current slice":
        return int(min(max(current, 0), depth - 1))
    if scope == "all slices":
        return "all"
    if scope == "range":
        lo, hi = sorted((int(start), int(stop)))
        if hi < 0 or lo >= depth:
            raise ValueError(f"slice range {lo}–{hi} is outside the volume's 0–{depth - 1}")
        return list(range(max(lo, 0), min(hi, depth - 1) + 1))
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")


def format_duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(snap: Explanation, *, cancelled: bool = False) -> str:
    """One line on a run's progress: done / total, elapsed, and time left or the outcome."""
    count = f"{snap.n_done}/{snap.n_total}"
    took = format_duration(snap.elapsed)
    trust = "" if snap.reliability is None else f" · {snap.reliability_text()}"
    if snap.done:
        if snap.stopped_early:
            return f"stopped early (reliability target reached) after {count} in {took}{trust}"
        return f"done: {count} in {took}{trust}"
    if cancelled:
        return f"cancelled at {count} after {took}: partial map kept{trust}"
    rel = "" if snap.reliability is None else f" · reliability {snap.reliability:.2f}"
    if snap.n_done <= 0:
        return f"{count} · {took}"
    left = snap.elapsed * (snap.n_total - snap.n_done) / snap.n_done
    return f"{count} · {took}{rel} · about {format_duration(left)} left"


def error_line(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason for a failure, fit for a notification.

    The same text as the command line prints (:func:`maskscope.wording.failure_line`),
    with form field labels instead of flags.
    """
    from .wording import failure_line

    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    name = type(exc).__name__
    if "OutOfMemoryError" in name or isinstance(exc, MemoryError):
        return (
            f"out of memory ({first or name}): lower the batch size, the number of slices "
            "or the image size, or use another device"
        )
    line = failure_line(exc, frontend="gui")
    return line if len(line) <= limit else line[: limit - 1] + "…"
