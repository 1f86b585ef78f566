"""The notebook's words for the normalisation it chose and the prediction it found."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..intensity import NORMALIZATIONS, describe_normalization, suggest_normalization
from ..prediction import PredictionSummary, check_prediction
from ._status import ORANGE, Status, status_html

__all__ = [
    "data_controls",
    "normalization_status",
    "prediction_status",
    "resolve_normalization",
    "show_prediction",
]


def resolve_normalization(normalize: Any, image: Any) -> str:
    """``"auto"`` → :func:`~maskscope.intensity.suggest_normalization`; a mode as given.

    Raises
    ------
    ValueError
        For a name that is neither ``"auto"`` nor a mode.
    """
    if normalize == "auto":
        return suggest_normalization(image)
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be 'auto' or one of {', '.join(map(repr, NORMALIZATIONS))}, "
            f"got {normalize!r}"
        )
    return str(normalize)


def normalization_status(mode: str, image: Any, auto: bool) -> str:
    """``"normalisation: percentile: clip ... (input range ...), chosen for this image"``."""
    chosen = ", chosen for this image" if auto else ""
    return f"normalisation: {describe_normalization(mode, image)}{chosen}"


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


def show_prediction(label: Any, explainer: Any, image: Any, **kwargs: Any):
    """:func:`~maskscope.prediction.check_prediction`, shown in ``label``; returns it."""
    summary = check_prediction(explainer, image, **kwargs)
    status = prediction_status(summary)
    label.value = "" if status is None else status_html(status)
    return summary
