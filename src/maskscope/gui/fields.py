"""Form fields, resolved once from the methods' parameter dataclasses and the run options.

Both GUI forms (napari's Qt form, the notebook's ipywidgets form) and the command line's
flag types read the fields from here; the field annotations are parsed in one place
(:func:`maskscope._engine.params.annotation_kinds`). A field knows its *kind* (which entry
shows it), whether it accepts None, and how text typed into it becomes a value.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

from .. import RunOptions
from .._engine.params import (
    ParamSpec,
    annotation_kinds,
    describe_params,
    interval,
    validate_params,
    within,
)
from .methods import STDERR_OPTIONS, has_standard_error, method_class

__all__ = [
    "FormField",
    "ParamSpec",
    "field_kind",
    "field_kinds",
    "field_types",
    "form",
    "form_fields",
    "format_value",
    "parse_text",
    "split_values",
]

_NUMBERS = frozenset({"int", "float", "tuple", "list", "Sequence"})
_MANY = frozenset({"tuple", "list", "Sequence"})


def field_kinds(cls: type) -> dict[str, tuple[str, ...]]:
    """The kinds each field of a dataclass accepts: ``grid`` → ("int", "tuple[int, ...]")."""
    return {f.name: annotation_kinds(f.type) for f in dataclasses.fields(cls)}


def field_types(cls: type) -> dict[str, frozenset[str]]:
    """Base type names each field of a dataclass accepts: ``grid`` → {"int", "tuple"}."""
    return {
        name: frozenset(k.split("[")[0].strip() for k in kinds)
        for name, kinds in field_kinds(cls).items()
    }


@dataclass(frozen=True)
class FormField:
    """One entry of a method's form.

    Attributes
    ----------
    spec
        The parameter's name, label, default, help text, bounds and choices.
    kind
        ``"bool"``, ``"int"``, ``"float"``, ``"choice"``, ``"choice-or-number"`` (a
        choice that also takes a typed number) or ``"text"`` (numbers, tuples, None).
    optional
        Whether the parameter accepts None.
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

    def _takes(self) -> str:
        many = " or numbers separated by commas" if self.types & _MANY else ""
        return "a number" + many if self.types & _NUMBERS else "a value"

    def check(self, value: Any) -> Any:
        """Reject text where the parameter takes numbers; return the value otherwise.

        Bounds and choices are checked later by the parameter dataclass.

        Raises
        ------
        ValueError
            Naming the field, what it takes and what was typed.
        """
        if value is None and not self.optional:
            raise ValueError(f"{self.spec.label} is empty: it takes {self._takes()}")
        if "str" in self.types or not self.types & _NUMBERS:
            return value
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, str | bool) for v in items):
            raise ValueError(
                f"{self.spec.label} takes {self._takes()}, got {format_value(value)!r}"
            )
        return value

    def check_bounds(self, value: float) -> None:
        """Raise ``ValueError`` naming the field when a number is outside its bounds.

        For entries that cannot show such a value (a spin box would clamp it silently).
        """
        spec = self.spec
        lo, hi, excl, hi_excl = spec.min, spec.max, spec.min_exclusive, spec.max_exclusive
        if not math.isfinite(value) or not within(value, lo, hi, excl, hi_excl):
            bounds = interval(lo, hi, excl, hi_excl)
            raise ValueError(f'"{spec.label}" must be in {bounds}, got {value!r}')

    def read(self, text: str) -> Any:
        """The value of text typed into this field (a listed choice stays a string)."""
        value = parse_text(text, optional=self.optional)
        if self.spec.choices and value in self.spec.choices:
            return value
        return self.check(value)

    def tooltip(self) -> str:
        """The help text with the bounds and choices."""
        spec, bounds = self.spec, []
        if spec.min is not None:
            bounds.append(f"{'>' if spec.min_exclusive else '≥'} {spec.min:g}")
        if spec.max is not None:
            bounds.append(f"{'<' if spec.max_exclusive else '≤'} {spec.max:g}")
        if spec.choices:
            bounds.append("or " + " / ".join(map(str, spec.choices)))
        return spec.help + (f" ({', '.join(bounds)})" if bounds else "")


def field_kind(spec: ParamSpec, types: frozenset[str] | set[str]) -> tuple[str, bool]:
    """The entry kind for a parameter and whether it accepts None.

    Parameters
    ----------
    spec
        The parameter's description.
    types
        Its base type names (from :func:`field_types`).
    """
    names = set(types)
    optional = "None" in names or spec.default is None
    names.discard("None")
    if names & _MANY:
        return "text", optional
    if names == {"bool"}:
        return "bool", optional
    if spec.choices is not None:
        return ("choice-or-number" if names - {"str"} else "choice"), optional
    if names == {"int"}:
        return "int", optional
    if names and names <= {"int", "float"}:
        return "float", optional
    return "text", optional


def form_fields(method: str) -> tuple[list[ParamSpec], list[ParamSpec]]:
    """The method's parameters and the run options that a GUI form shows."""
    cls = method_class(method)
    params = [p for p in describe_params(cls.Params) if p.gui]
    skip = set() if has_standard_error(cls) else STDERR_OPTIONS
    options = [p for p in describe_params(RunOptions) if p.gui and p.name not in skip]
    return params, options


def form(method: str) -> list[FormField]:
    """The form of a method: its parameters, then the run options (seed, batch size, ...).

    Resolved once per method (the dataclasses do not change while Python runs).

    Parameters
    ----------
    method
        A name in :data:`maskscope.METHODS`.
    """
    return list(_form(method))


@functools.cache
def _form(method: str) -> tuple[FormField, ...]:
    param_specs, option_specs = form_fields(method)
    out = []
    for group, cls, specs in (
        ("params", method_class(method).Params, param_specs),
        ("options", RunOptions, option_specs),
    ):
        types = field_types(cls)
        for spec in specs:
            names = types.get(spec.name, frozenset({type(spec.default).__name__}))
            kind, optional = field_kind(spec, names)
            out.append(FormField(spec, kind, optional, group, names))
    return tuple(out)


def split_values(method: str, values: dict[str, Any]) -> tuple[Any, RunOptions]:
    """Split form values into the method's parameter dataclass and :class:`RunOptions`.

    Unknown names raise ``TypeError``; values are validated by the dataclasses and the
    method's own checks (HDM takes no ``tol``).
    """
    cls = method_class(method).Params
    p_names = {f.name for f in dataclasses.fields(cls)}
    o_names = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(values) - p_names - o_names)
    if unknown:
        raise TypeError(f"unknown field(s) {', '.join(unknown)} for {method}")
    params = cls(**{k: v for k, v in values.items() if k in p_names})
    options = RunOptions(**{k: v for k, v in values.items() if k in o_names})
    validate_params(params)
    method_class(method).check_params(params, options)
    return params, options


def parse_text(text: str, *, optional: bool = False) -> Any:
    """Turn text typed in a form into a value.

    ``"8"`` → 8, ``"0.5"`` → 0.5, ``"4, 8, 8"`` → (4, 8, 8), ``"none"`` or an empty
    entry → None (when ``optional``; an empty entry is always None), anything else stays
    a string.
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


def format_value(value: Any, *, none: str = "none") -> str:
    """The text shown in a form entry for a value (inverse of :func:`parse_text`)."""
    if value is None:
        return none
    if isinstance(value, tuple | list):
        return ", ".join(format_value(v) for v in value)
    return str(value)
