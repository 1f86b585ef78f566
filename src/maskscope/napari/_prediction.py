"""The prediction first, in napari: a line under the Run button and a warning notification."""

from __future__ import annotations

from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QLabel

from ..gui.session import PredictionSummary

__all__ = ["PredictionLabel"]


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
