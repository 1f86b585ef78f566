"""The prediction first, in napari: a line under the Run button and a warning notification."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QLabel

from ..prediction import PredictionSummary

__all__ = ["PredictionLabel", "PredictionReady", "prediction_first"]


@dataclass(frozen=True)
class PredictionReady:
    """What the worker yields before the first snapshot: the prediction check's result."""

    summary: PredictionSummary | None


def prediction_first(
    check: Callable[[], PredictionSummary | None], snapshots: Iterator[Any]
) -> Iterator[Any]:
    """One generator for the worker: the prediction check (in the worker's thread, so that
    the GUI stays responsive and a failing model is reported like any run failure), then
    the run's snapshots. Closing it closes ``snapshots``."""
    try:
        yield PredictionReady(check())
        yield from snapshots
    finally:
        snapshots.close()


class PredictionLabel(QLabel):
    """Shows what the model segments before the run: voxels per class, Dice, a warning."""

    def __init__(self) -> None:
        super().__init__("")
        self.setObjectName("prediction")
        self.setWordWrap(True)
        self.setToolTip(
            "The model's own segmentation of the unperturbed input, before the explanation"
        )
        self.summary: PredictionSummary | None = None

    def show_summary(self, summary: PredictionSummary | None) -> None:
        """Show a summary (None: a classifier, nothing to show); notify its warning."""
        self.summary = summary
        if summary is None:
            self.setText("")
            return
        text = summary.line()
        if summary.warning:
            text += f"<br><b>warning:</b> {summary.warning}"
            show_warning(f"maskscope: {summary.warning}")
        self.setText(text)
