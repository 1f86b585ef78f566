"""The model section's sliding-window entries, from :func:`maskscope.gui.patch_form`."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QFormLayout, QLabel, QLineEdit, QWidget

from ..gui import SlidingSettings, patch_form, read_patches
from ._form import _Entry

__all__ = ["PatchEntries"]


class PatchEntries:
    """One entry per sliding-window field, added as rows of a form layout.

    Parameters
    ----------
    layout
        The form the rows go to (the model section's).
    """

    def __init__(self, layout: QFormLayout) -> None:
        self.entries: dict[str, _Entry] = {}
        for field in patch_form():
            entry = _Entry(field)
            label = QLabel(field.spec.label)
            label.setToolTip(field.tooltip())
            entry.widget.setToolTip(field.tooltip())
            layout.addRow(label, entry.widget)
            self.entries[field.name] = entry
        size = self.widget("patch_size")
        assert isinstance(size, QLineEdit)
        size.setText("")  # empty: no sliding window
        size.setPlaceholderText("none (the whole input at once)")

    def widget(self, name: str) -> QWidget:
        """The Qt widget of one field (``patch_size``, ``patch_overlap``, ...)."""
        return self.entries[name].widget

    def values(self) -> dict[str, Any]:
        """Every entry's value by field name (``ValueError`` for unreadable text)."""
        return {name: entry.get() for name, entry in self.entries.items()}

    def set_values(self, **values: Any) -> None:
        """Show these values (``KeyError`` for a name that is not a field)."""
        for name, value in values.items():
            self.entries[name].set(value)

    def settings(self) -> SlidingSettings | None:
        """The checked settings, or None when the patch size is empty."""
        return read_patches(self.values())
