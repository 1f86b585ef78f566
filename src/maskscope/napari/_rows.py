"""Small Qt building blocks of the dock widget."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QWidget

__all__ = ["combo", "label", "row", "section"]


def combo(name: str, items: list[str], tip: str) -> QComboBox:
    """A combo box with an object name, items and a tooltip."""
    combo = QComboBox()
    combo.setObjectName(name)
    combo.addItems(items)
    combo.setToolTip(tip)
    return combo


def label(name: str, text: str) -> QLabel:
    """A word-wrapping label with an object name."""
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    return label


def row(label: str, widget: QWidget) -> QFormLayout:
    """A one-row form layout without margins."""
    row = QFormLayout()
    row.setContentsMargins(0, 0, 0, 0)
    row.addRow(label, widget)
    return row


def section(title: str) -> QLabel:
    """A bold section title."""
    label = QLabel(f"<b>{title}</b>")
    label.setContentsMargins(0, 6, 0, 0)
    return label
