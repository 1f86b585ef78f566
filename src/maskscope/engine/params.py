"""Typed parameter dataclasses: one source of truth for the API and both GUIs.

Every parameter of a method is a dataclass field created with :func:`param`, which records
its help text, bounds and choices in the field's metadata. :func:`validate_params` checks
an instance against them, and the napari and notebook frontends build their forms from
:func:`describe_params`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["ParamSpec", "describe_params", "param", "replace_params", "validate_params"]


def param(
    default: Any,
    *,
    help: str,
    label: str | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    choices: Sequence[Any] | None = None,
    step: float | None = None,
    gui: bool = True,
) -> Any:
    """Declare a parameter field with help text, bounds and choices.

    Parameters
    ----------
    default
        The default value (immutable: a number, string, tuple or None).
    help
        One sentence shown as tooltip / description in the GUIs.
    label
        Short label for forms; derived from the field name when omitted.
    min, max
        Inclusive bounds for numbers (for tuples, for each element).
    min_exclusive
        Make ``min`` an exclusive bound.
    choices
        The allowed values of a string parameter.
    step
        Step for GUI spin boxes and sliders.
    gui
        Whether the GUIs show this parameter in their forms.
    """
    meta = {
        "help": help,
        "label": label,
        "min": min,
        "max": max,
        "min_exclusive": min_exclusive,
        "choices": tuple(choices) if choices is not None else None,
        "step": step,
        "gui": gui,
    }
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """What a GUI needs to know to build a form entry for one parameter."""

    name: str
    label: str
    default: Any
    help: str
    min: float | None
    max: float | None
    min_exclusive: bool
    choices: tuple[Any, ...] | None
    step: float | None
    gui: bool


def describe_params(cls_or_obj: Any) -> list[ParamSpec]:
    """List the parameters of a parameter dataclass (class or instance) in order."""
    out = []
    for f in dataclasses.fields(cls_or_obj):
        meta = f.metadata
        default = getattr(cls_or_obj, f.name) if not isinstance(cls_or_obj, type) else f.default
        out.append(
            ParamSpec(
                name=f.name,
                label=meta.get("label") or f.name.replace("_", " "),
                default=default,
                help=meta.get("help", ""),
                min=meta.get("min"),
                max=meta.get("max"),
                min_exclusive=bool(meta.get("min_exclusive", False)),
                choices=meta.get("choices"),
                step=meta.get("step"),
                gui=bool(meta.get("gui", True)),
            )
        )
    return out


def _check_number(owner: str, name: str, value: Any, spec: dict) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")
    lo, hi = spec.get("min"), spec.get("max")
    excl = spec.get("min_exclusive", False)
    too_low = lo is not None and (value <= lo if excl else value < lo)
    if too_low or (hi is not None and value > hi):
        left = "(" if excl else "["
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{owner}.{name} must be in {left}{lo_s}, {hi_s}], got {value!r}")


def validate_params(obj: Any) -> None:
    """Check every field of a parameter dataclass against its declared bounds and choices.

    Raises
    ------
    ValueError, TypeError
        Naming the parameter, what was expected and what was given.
    """
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        spec = f.metadata
        if value is None:
            continue
        declared = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if declared.split("|")[0].strip() == "int" and isinstance(value, float):
            raise TypeError(f"{owner}.{f.name} must be an int, got {value!r}")
        if spec.get("choices") is not None and isinstance(value, str):
            if value not in spec["choices"]:
                valid = ", ".join(repr(c) for c in spec["choices"])
                raise ValueError(f"{owner}.{f.name} must be one of {valid}, got {value!r}")
            continue
        if spec.get("min") is None and spec.get("max") is None:
            continue
        if isinstance(value, (tuple, list)):
            for v in value:
                _check_number(owner, f.name, v, spec)
        else:
            _check_number(owner, f.name, value, spec)


def replace_params(obj: Any, **changes: Any) -> Any:
    """Return a copy of a parameter dataclass with ``changes``, rejecting unknown names."""
    names = [f.name for f in dataclasses.fields(obj)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise TypeError(
            f"unknown parameter(s) {', '.join(unknown)} for {type(obj).__name__}; "
            f"valid names are: {', '.join(names)}"
        )
    return dataclasses.replace(obj, **changes)
