"""A parameter form built from a method's parameter dataclass (via ``frontend.form_fields``)."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

import ipywidgets as widgets
from traitlets import TraitError

from .._engine.loop import RunOptions
from .._engine.params import ParamSpec
from ..frontend import form_fields, method_class

__all__ = ["FIELD_STYLE", "FIELD_WIDTH", "Field", "ParamForm"]

#: Label width and row width of the form entries (the display controls use them too).
FIELD_STYLE = {"description_width": "135px"}
FIELD_WIDTH = "275px"


def _type_names(cls: type) -> dict[str, set[str]]:
    """Declared type of each dataclass field, as a set of names (``{"int", "None"}``)."""
    out = {}
    for f in dataclasses.fields(cls):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        out[f.name] = {part.strip().split("[")[0] for part in t.split("|")}
    return out


def _tooltip(spec: ParamSpec) -> str:
    bounds = []
    if spec.min is not None:
        bounds.append(f"{'>' if spec.min_exclusive else '≥'} {spec.min:g}")
    if spec.max is not None:
        bounds.append(f"≤ {spec.max:g}")
    if spec.choices:
        bounds.append("or " + " / ".join(map(str, spec.choices)))
    return spec.help + (f" ({', '.join(bounds)})" if bounds else "")


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value))
    return str(value)


class Field:
    """One form entry: a widget and how to read a typed value from it.

    Parameters
    ----------
    spec
        The parameter's description (label, help, bounds, choices).
    types
        The declared type names of the field (``{"int", "tuple"}``, ``{"float", "None"}``).
    value
        The initial value.
    """

    def __init__(self, spec: ParamSpec, types: set[str], value: Any) -> None:
        self.spec = spec
        self.types = types
        common = {"description": spec.label, "tooltip": _tooltip(spec), "style": FIELD_STYLE}
        common["layout"] = widgets.Layout(width=FIELD_WIDTH)
        is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
        if spec.choices and types <= {"str"} and value in spec.choices:
            self.kind = "choice"
            self.widget = widgets.Dropdown(options=list(spec.choices), value=value, **common)
        elif types == {"bool"} and isinstance(value, bool):
            self.kind = "bool"
            self.widget = widgets.Checkbox(value=value, indent=False, **common)
        elif types == {"int"} and is_num and isinstance(value, int):
            self.kind = "int"
            self.widget = widgets.IntText(value=value, step=int(spec.step or 1), **common)
        elif types == {"float"} and is_num:
            self.kind = "float"
            step = spec.step or 0.1
            self.widget = widgets.FloatText(value=float(value), step=step, **common)
        else:  # free text: numbers, tuples, None, or a named choice (listed by a Combobox)
            self.kind = "text"
            text = {"value": _to_text(value), "continuous_update": False, **common}
            text["placeholder"] = "none" if "None" in types else ""
            if spec.choices:
                self.widget = widgets.Combobox(options=[str(c) for c in spec.choices], **text)
            else:
                self.widget = widgets.Text(**text)
        self.widget.add_class(f"maskscope-param-{spec.name}")

    def get(self) -> Any:
        """The typed value; raises ``ValueError`` naming the field for unreadable text."""
        if self.kind != "text":
            return self.widget.value
        raw = self.widget.value.strip()
        if raw.lower() in ("", "none") and "None" in self.types:
            return None
        if not raw:
            many = " or numbers separated by commas" if "tuple" in self.types else ""
            takes = "a number" + many if self.types & {"int", "float", "tuple"} else "a value"
            raise ValueError(f"{self.spec.label} is empty: it takes {takes}")
        if self.spec.choices and raw in self.spec.choices:
            return raw
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, str) and "str" not in self.types:
            expected = " | ".join(sorted(self.types - {"None"}))
            extra = (
                f" or one of {', '.join(map(repr, self.spec.choices))}" if self.spec.choices else ""
            )
            raise ValueError(f"{self.spec.label}: expected {expected}{extra}, got {raw!r}")
        return value

    def set(self, value: Any) -> None:
        """Show ``value`` in the widget (``TypeError`` when the widget cannot hold it)."""
        try:
            if self.kind == "text":
                self.widget.value = _to_text(value)
            elif self.kind == "float":
                self.widget.value = float(value)
            else:
                self.widget.value = value
        except (TraitError, TypeError, ValueError) as exc:
            raise TypeError(f"{self.spec.name}: cannot set {value!r} ({exc})") from None


class ParamForm:
    """The form of one method: its parameters, then the run options.

    Parameters
    ----------
    method
        A name listed in :data:`maskscope.methods.METHODS`.
    values
        Initial values by field name (defaults otherwise); names the method does not have
        are ignored.

    Attributes
    ----------
    fields
        The :class:`Field` of each parameter and run option, by name.
    widget
        A ``VBox`` holding the method's parameters and the run options.
    """

    def __init__(self, method: str, values: dict[str, Any] | None = None) -> None:
        values = values or {}
        self.method = method
        params, options = form_fields(method)
        types = {**_type_names(method_class(method).Params), **_type_names(RunOptions)}
        self.defaults = {s.name: s.default for s in (*params, *options)}
        self.fields: dict[str, Field] = {}
        for spec in (*params, *options):
            self.fields[spec.name] = Field(
                spec, types[spec.name], values.get(spec.name, spec.default)
            )
        title = widgets.HTML(f"<b>{method}</b> parameters")
        run = widgets.HTML("<b>run options</b>")
        self.widget = widgets.VBox(
            [
                title,
                *(self.fields[s.name].widget for s in params),
                run,
                *(self.fields[s.name].widget for s in options),
            ]
        )

    def values(self) -> dict[str, Any]:
        """All values, typed (``ValueError`` for text that cannot be read)."""
        return {name: f.get() for name, f in self.fields.items()}

    def changed(self) -> dict[str, Any]:
        """The values that differ from the defaults (unreadable ones are left out)."""
        out = {}
        for name, f in self.fields.items():
            try:
                value = f.get()
            except ValueError:
                continue
            if value != self.defaults[name]:
                out[name] = value
        return out

    def set(self, **values: Any) -> None:
        """Set fields by name; unknown names raise ``TypeError`` listing the valid ones."""
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            raise TypeError(
                f"unknown parameter(s) {', '.join(unknown)} for {self.method}; valid names are "
                f"{', '.join(self.fields)}"
            )
        for name, value in values.items():
            self.fields[name].set(value)
