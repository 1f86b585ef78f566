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

import numpy as np

__all__ = [
    "ParamSpec",
    "annotation_kinds",
    "describe_params",
    "param",
    "replace_params",
    "validate_params",
]


def param(
    default: Any,
    *,
    help: str,
    label: str | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    max_exclusive: bool = False,
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
    min_exclusive, max_exclusive
        Make ``min`` / ``max`` an exclusive bound.
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
        "max_exclusive": max_exclusive,
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
    max_exclusive: bool = False


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
                max_exclusive=bool(meta.get("max_exclusive", False)),
            )
        )
    return out


#: Fields whose value may also be a function (a custom score or distance).
CALLABLE_FIELDS = frozenset({"score", "distance"})
#: Fields whose value may also be an array (a baseline or fill per channel, or an image).
ARRAY_FIELDS = frozenset({"baseline", "fill"})


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__name__ == "Tensor"


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (``np.int64(5)`` → 5); lists as tuples."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def annotation_kinds(annotation: Any) -> tuple[str, ...]:
    """The kinds a dataclass field accepts, read from its annotation.

    The one parser of parameter annotations (the validation here, both GUI forms and the
    command line's flag types all read it). Works on postponed (string) annotations and
    on type objects alike: ``"int | tuple[int, ...]"`` → ``("int", "tuple[int, ...]")``,
    ``Optional[float]`` → ``("float", "None")``, ``bool`` → ``("bool",)``.
    """
    if isinstance(annotation, type):
        text = "None" if annotation is type(None) else annotation.__name__
    else:
        text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1] + " | None"
    kinds, depth, start = [], 0, 0
    for i, char in enumerate(text + "|"):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and depth == 0:
            kinds.append(text[start:i].strip())
            start = i + 1
    return tuple(k for k in kinds if k)


def _kinds(annotation: Any) -> list[str]:
    return list(annotation_kinds(annotation))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _expected(kinds: list[str], choices: tuple | None, name: str) -> str:
    words = {
        "int": "an int",
        "float": "a number",
        "tuple[int, ...]": "a tuple of ints",
        "tuple[float, ...]": "a tuple of numbers",
        "None": "None",
    }
    out = []
    for k in kinds:
        if k == "str":
            out.append("one of " + ", ".join(map(repr, choices)) if choices else "a string")
        else:
            out.append(words.get(k, k))
    if name in CALLABLE_FIELDS:
        out.append("a function")
    if name in ARRAY_FIELDS:
        out.append("an array")
    return " or ".join(out)


def _type_ok(value: Any, kinds: list[str], name: str) -> bool:
    for k in kinds:
        if k == "None" and value is None:
            return True
        if k == "int" and _is_int(value):
            return True
        if k == "float" and _is_number(value):
            return True
        if k == "str" and isinstance(value, str):
            return True
        if k.startswith("tuple[") and isinstance(value, tuple) and value:
            item = _is_int if k == "tuple[int, ...]" else _is_number
            if all(item(v) for v in value):
                return True
    if name in ARRAY_FIELDS and (
        _is_array(value) or (isinstance(value, tuple) and all(map(_is_number, value)))
    ):
        return True
    return name in CALLABLE_FIELDS and callable(value)


def _check_number(owner: str, name: str, value: Any, spec: dict) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")
    lo, hi = spec.get("min"), spec.get("max")
    excl, hi_excl = spec.get("min_exclusive", False), spec.get("max_exclusive", False)
    if not within(value, lo, hi, excl, hi_excl):
        raise ValueError(
            f"{owner}.{name} must be in {interval(lo, hi, excl, hi_excl)}, got {value!r}"
        )


def within(value: float, lo: float | None, hi: float | None, lo_excl: bool, hi_excl: bool) -> bool:
    """Whether ``value`` lies within the bounds (None: unbounded on that side)."""
    if lo is not None and (value <= lo if lo_excl else value < lo):
        return False
    return hi is None or (value < hi if hi_excl else value <= hi)


def interval(lo: float | None, hi: float | None, lo_excl: bool, hi_excl: bool) -> str:
    """``"(0, 1]"``: the bounds of a number, as the error messages write them."""
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{'(' if lo_excl else '['}{lo_s}, {hi_s}{')' if hi_excl else ']'}"


def _check_field(owner: str, f: dataclasses.Field, value: Any) -> None:
    spec = f.metadata
    kinds = _kinds(f.type)
    choices = spec.get("choices")
    if kinds and not _type_ok(value, kinds, f.name):
        plain = isinstance(value, (int, float, str, tuple, type(None)))
        shown = repr(value) if plain else f"{type(value).__name__} {value!r}"
        raise TypeError(
            f"{owner}.{f.name} must be {_expected(kinds, choices, f.name)}, got {shown}"
        )
    if _is_array(value):
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
            raise ValueError(f"{owner}.{f.name} must be an array of finite numbers, got {arr!r}")
        return
    if isinstance(value, str):
        if choices is not None and value not in choices:
            valid = ", ".join(repr(c) for c in choices)
            number = "a number or " if "float" in kinds else ""  # HDM's fill: 0.0 or 'min'
            raise ValueError(f"{owner}.{f.name} must be {number}one of {valid}, got {value!r}")
        return
    numbers = value if isinstance(value, tuple) else (value,)
    for v in numbers:
        if _is_number(v):
            _check_number(owner, f.name, v, spec)


def validate_params(obj: Any) -> None:
    """Check every field of a parameter dataclass: type, None, bounds and choices.

    numpy scalars are accepted and stored as Python numbers (``np.int64(5)`` → ``5``), and
    lists as tuples. An int field refuses floats (``grid=(4.5, 4)``), a field that is not
    optional refuses None, and every number must be finite.

    Raises
    ------
    ValueError, TypeError
        Naming the parameter, what was expected and what was given.
    """
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        plain = _plain(value)
        if plain is not value:
            object.__setattr__(obj, f.name, plain)
        _check_field(owner, f, plain)


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
