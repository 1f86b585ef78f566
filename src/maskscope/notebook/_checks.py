"""The notebook's words for the normalisation it chose and the prediction it found."""

from __future__ import annotations

from typing import Any

from ..intensity import NORMALIZATIONS, describe_normalization, suggest_normalization
from ..prediction import PredictionSummary
from ._status import ORANGE, Status

__all__ = ["normalization_status", "prediction_status", "resolve_normalization"]


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
