"""The notebook's parameter form: one ipywidgets entry per field of :func:`maskscope.gui.form`."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from traitlets import TraitError

from ..gui import FormField, form, format_value

__all__ = ["FIELD_STYLE", "FIELD_WIDTH", "Field", "ParamForm"]

#: Label width and row width of the form entries (the display controls use them too).
FIELD_STYLE = {"description_width": "135px"}
FIELD_WIDTH = "275px"


def _entry(field: FormField, value: Any, common: dict[str, Any]) -> tuple[str, widgets.Widget]:
    """The entry for a field: ``(how it is read, the widget)``.

    Numbers that may be None, tuples and choices that also take a number are text.
    """
    kind = field.kind
    if kind == "choice":
        return "value", widgets.Dropdown(options=list(field.spec.choices), value=value, **common)
    if kind == "bool":
        return "value", widgets.Checkbox(value=value, indent=False, **common)
    if kind == "int" and not field.optional:
        return "value", widgets.IntText(value=value, step=int(field.spec.step or 1), **common)
    if kind == "float" and not field.optional:
        step = field.spec.step or 0.1
        return "float", widgets.FloatText(value=float(value), step=step, **common)
    text = {"value": format_value(value, none=""), "continuous_update": False, **common}
    text["placeholder"] = "none" if field.optional else ""
    if kind == "choice-or-number":
        options = [str(c) for c in field.spec.choices or ()]
        return "text", widgets.Combobox(options=options, **text)
    return "text", widgets.Text(**text)


class Field:
    """One form entry: a widget and how to read a typed value from it.

    Parameters
    ----------
    field
        The field (name, label, help, bounds, choices, kind).
    value
        The initial value.
    """

    def __init__(self, field: FormField, value: Any) -> None:
        self.field = field
        self.spec = field.spec
        common = {"description": field.spec.label, "tooltip": field.tooltip()}
        common.update(style=FIELD_STYLE, layout=widgets.Layout(width=FIELD_WIDTH))
        try:
            self.kind, self.widget = _entry(field, value, common)
        except (TraitError, TypeError, ValueError) as exc:
            raise TypeError(f"{field.name}: cannot set {value!r} ({exc})") from None
        self.widget.add_class(f"maskscope-param-{field.name}")

    def get(self) -> Any:
        """The typed value; raises ``ValueError`` naming the field for unreadable text."""
        if self.kind != "text":
            return self.widget.value
        return self.field.read(self.widget.value)

    def set(self, value: Any) -> None:
        """Show ``value`` in the widget (``TypeError`` when the widget cannot hold it)."""
        try:
            if self.kind == "text":
                self.widget.value = format_value(value, none="")
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
        A name listed in :data:`maskscope.METHODS`.
    values
        Initial values by field name (defaults otherwise).
    strict
        Raise ``TypeError`` for names the method does not have (else they are ignored).

    Attributes
    ----------
    fields
        The :class:`Field` of each parameter and run option, by name.
    widget
        A ``VBox`` holding the method's parameters and the run options.
    """

    def __init__(
        self, method: str, values: dict[str, Any] | None = None, *, strict: bool = False
    ) -> None:
        values = values or {}
        self.method = method
        entries = form(method)
        if strict:
            self._check_names(values, [f.name for f in entries])
        self.defaults = {f.name: f.spec.default for f in entries}
        self.fields = {f.name: Field(f, values.get(f.name, f.spec.default)) for f in entries}
        groups = {
            group: [self.fields[f.name].widget for f in entries if f.group == group]
            for group in ("params", "options")
        }
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<b>{method}</b> parameters"),
                *groups["params"],
                widgets.HTML("<b>run options</b>"),
                *groups["options"],
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
        self._check_names(values, list(self.fields))
        for name, value in values.items():
            self.fields[name].set(value)

    def _check_names(self, values: dict[str, Any], names: list[str]) -> None:
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TypeError(
                f"unknown parameter(s) {', '.join(unknown)} for {self.method}; valid names are "
                f"{', '.join(names)}"
            )
