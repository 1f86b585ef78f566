"""The notebook's words for the normalisation it chose and the prediction it found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..gui.inputs import NORMALIZATIONS, normalization_status, resolve_normalization
from ..gui.session import PredictionSummary
from ..gui.status import ORANGE, Status, status_html

__all__ = [
    "data_controls",
    "normalization_status",
    "prediction_status",
    "resolve_normalization",
    "show_prediction",
]


def prediction_status(summary: PredictionSummary | None) -> Status | None:
    """The prediction line, orange with the warning when the segmentation looks failed."""
    if summary is None:
        return None
    if summary.warning:
        return Status(f"{summary.line()}. Warning: {summary.warning}", ORANGE, "warning")
    return Status(summary.line())


def data_controls(mode: str, pixels: Any, *, auto: bool):
    """The *normalise* dropdown, the line saying what it does, the prediction line, and the
    row holding the first two."""
    dropdown = widgets.Dropdown(options=list(NORMALIZATIONS), value=mode, description="normalise")
    label = widgets.Label(normalization_status(mode, pixels, auto=auto))
    dropdown.observe(
        lambda change: setattr(label, "value", normalization_status(change["new"], pixels, False)),
        names="value",
    )
    return dropdown, label, widgets.HTML(value=""), widgets.HBox([dropdown, label])


def show_prediction(label: Any, check: Callable[[], PredictionSummary | None]):
    """Run the prediction check (:attr:`maskscope.gui.Session.check`), show it in ``label``;
    returns its summary."""
    summary = check()
    status = prediction_status(summary)
    label.value = "" if status is None else status_html(status)
    return summary
