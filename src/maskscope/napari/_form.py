"""A Qt form of a method's fields (:func:`maskscope.gui.form`): one Qt entry per field kind."""

from __future__ import annotations

import math
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from ..gui import FormField, form, format_value

__all__ = ["ParamForm"]

#: The largest value a Qt spin box holds (a C int).
_INT_MAX = 2**31 - 1


def _decimals(step: float) -> int:
    return max(2, min(6, math.ceil(-math.log10(step)) + 1)) if step < 1 else 2


class _Entry:
    """One form entry: the Qt widget and how to read and write its value."""

    def __init__(self, field: FormField) -> None:
        self.field = field
        spec = field.spec
        kind = field.kind
        if kind == "bool":
            self.widget: QWidget = QCheckBox()
        elif kind == "int":
            box = QSpinBox()
            lo = -_INT_MAX if spec.min is None else math.ceil(spec.min)
            if spec.min is not None and spec.min_exclusive and lo == spec.min:
                lo += 1
            if field.optional:
                lo -= 1
                box.setSpecialValueText("none")
            box.setRange(lo, _INT_MAX if spec.max is None else int(spec.max))
            box.setSingleStep(int(spec.step or 1))
            self.widget = box
        elif kind == "float":
            box = QDoubleSpinBox()
            step = float(spec.step or 0.1)
            box.setDecimals(_decimals(step))
            tiny = 10.0 ** -box.decimals()
            lo = -1e12 if spec.min is None else float(spec.min)
            if spec.min is not None and spec.min_exclusive and not field.optional:
                lo += tiny
            if field.optional:
                if spec.min is None or not spec.min_exclusive:
                    lo -= step
                box.setSpecialValueText("none")
            hi = 1e12 if spec.max is None else float(spec.max)
            box.setRange(lo, hi - tiny if spec.max_exclusive else hi)
            box.setSingleStep(step)
            self.widget = box
        elif kind in ("choice", "choice-or-number"):
            combo = QComboBox()
            items = [format_value(c) for c in spec.choices or ()]
            if kind == "choice-or-number":
                combo.setEditable(True)
                if format_value(spec.default) not in items:
                    items.insert(0, format_value(spec.default))
            combo.addItems(items)
            self.widget = combo
        else:
            self.widget = QLineEdit()
        self.widget.setObjectName(spec.name)
        self.widget.setToolTip(spec.help)
        self.set(spec.default)

    def get(self) -> Any:
        """The entry's value, as the parameter dataclass takes it."""
        w, kind, optional = self.widget, self.field.kind, self.field.optional
        if kind == "bool":
            return w.isChecked()
        if kind in ("int", "float"):
            if optional and w.value() == w.minimum():
                return None
            return int(w.value()) if kind == "int" else float(w.value())
        if kind == "choice":
            return w.currentText()
        return self.field.read(w.currentText() if kind == "choice-or-number" else w.text())

    def number(self, value: Any) -> int | float:
        """``value`` as this spin box holds it exactly, or ``ValueError`` naming the field
        (a spin box would clamp it, round it to its decimals, or show "none")."""
        w, label = self.widget, self.field.spec.label
        if self.field.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f'"{label}" takes a whole number, got {value!r}')
            number: int | float = int(value)
        else:
            number = float(value)
        self.field.check_bounds(number)
        if self.field.kind == "float" and round(number, w.decimals()) != number:
            raise ValueError(f'"{label}" takes at most {w.decimals()} decimals here, got {value!r}')
        if not w.minimum() <= number <= w.maximum() or (
            self.field.optional and number == w.minimum()
        ):
            raise ValueError(
                f'"{label}" takes values from {w.minimum():g} to {w.maximum():g} here, got '
                f"{value!r}"
            )
        return number

    def check(self, value: Any) -> None:
        """Raise as :meth:`set` would, and change nothing."""
        if self.field.kind in ("int", "float") and value is not None:
            self.number(value)

    def set(self, value: Any) -> None:
        """Show ``value`` in the entry."""
        w, kind = self.widget, self.field.kind
        if kind == "bool":
            w.setChecked(bool(value))
        elif kind in ("int", "float"):
            if value is None:
                w.setValue(w.minimum())
            else:
                w.setValue(self.number(value))
        elif kind == "choice":
            i = w.findText(format_value(value))
            if i >= 0:
                w.setCurrentIndex(i)
        elif kind == "choice-or-number":
            w.setCurrentText(format_value(value))
        else:
            w.setText(format_value(value))


class ParamForm(QWidget):
    """The parameters of one method, then the run options (seed, batch size, tolerance).

    Parameters
    ----------
    method
        A name in :data:`maskscope.methods.METHODS`.
    parent
        The parent widget.
    """

    def __init__(self, method: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = method
        self.entries: dict[str, _Entry] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        group = None
        for field in form(method):
            if group is not None and field.group != group:
                layout.addRow(QLabel("<b>run</b>"))
            group = field.group
            entry = _Entry(field)
            label = QLabel(field.spec.label)
            label.setToolTip(field.spec.help)
            layout.addRow(label, entry.widget)
            self.entries[field.name] = entry

    def values(self) -> dict[str, Any]:
        """Every entry's value by parameter name."""
        return {name: entry.get() for name, entry in self.entries.items()}

    def set_values(self, values: dict[str, Any], *, strict: bool = True) -> None:
        """Show these values; unknown names raise ``KeyError`` unless ``strict`` is False."""
        unknown = sorted(set(values) - set(self.entries))
        if unknown and strict:
            raise KeyError(
                f"{self.method} has no field(s) {', '.join(unknown)}; fields are "
                f"{', '.join(self.entries)}"
            )
        known = {k: v for k, v in values.items() if k in self.entries}
        for name, value in known.items():  # all checked before any is shown
            self.entries[name].check(value)
        for name, value in known.items():
            self.entries[name].set(value)

    def widget(self, name: str) -> QWidget:
        """The Qt widget of one entry."""
        return self.entries[name].widget
