"""The dock's "evaluate" section: deletion / insertion curves of the last map, as a plot."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..evaluate.frontend import start_evaluation, summary_html
from ..evaluate.result import FaithfulnessResult
from ..evaluate.substrates import SUBSTRATES
from ..gui import error_line
from ._worker import RunFailure, start_worker

if TYPE_CHECKING:
    from ._widget import ExplainWidget

__all__ = ["EvaluatePanel"]

#: Seconds between redraws of the plot while the curves fill.
REDRAW_EVERY = 0.25


class EvaluatePanel(QWidget):
    """Deletion and insertion curves of the widget's last map, with the random baseline.

    Parameters
    ----------
    owner
        The explain widget whose last snapshot and model are evaluated.

    Attributes
    ----------
    worker
        The running evaluation, or None.
    result
        The latest snapshot of the current or last evaluation.
    """

    #: Emitted when an evaluation ends (done, cancelled or failed), with its last result.
    evaluation_finished = Signal(object)

    def __init__(self, owner: ExplainWidget) -> None:
        super().__init__()
        self.owner = owner
        self.worker: GeneratorWorker | None = None
        self.result: FaithfulnessResult | None = None
        self._failure: RunFailure | None = None
        self._drawn_at = 0.0

        self.substrate = QComboBox()
        self.substrate.setObjectName("eval_substrate")
        self.substrate.addItems(list(SUBSTRATES))
        self.substrate.setToolTip("What removed voxels become: zeros, a blurred copy, the minimum")
        self.steps = _spin("eval_steps", 1, 1000, 50, "Steps per curve (model calls: steps + 1)")
        self.n_random = _spin("eval_random", 0, 50, 1, "Random orders averaged in the baseline")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setObjectName("evaluate")
        self.evaluate_button.setToolTip("Deletion and insertion curves of the last map")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setObjectName("eval_cancel")
        self.cancel_button.setEnabled(False)
        self.plot = QLabel()
        self.plot.setObjectName("eval_plot")
        self.plot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary = QLabel("")
        self.summary.setObjectName("eval_summary")
        self.summary.setWordWrap(True)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("substrate", self.substrate)
        form.addRow("steps", self.steps)
        form.addRow("random orders", self.n_random)
        buttons = QHBoxLayout()
        buttons.addWidget(self.evaluate_button)
        buttons.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addLayout(buttons)
        column.addWidget(self.plot)
        column.addWidget(self.summary)
        self.evaluate_button.clicked.connect(self.evaluate)
        self.cancel_button.clicked.connect(self.cancel)

    def evaluate(self) -> GeneratorWorker | None:
        """Start evaluating the last map; None (and a notification) when it cannot start."""
        if self.worker is not None:
            return None
        try:
            results = self._prepare()
        except Exception as exc:  # shown to the user; the panel stays usable
            self._report(exc)
            return None
        self.result, self._failure, self._drawn_at = None, None, 0.0
        self.summary.setText("evaluating…")
        self._set_running(True)
        self.worker = start_worker(
            results,
            on_snapshot=self._on_result,
            on_returned=self._on_returned,
            on_finished=self._on_finished,
        )
        return self.worker

    def cancel(self) -> None:
        """Stop after the model call in progress; the curves so far stay on screen."""
        if self.worker is not None:
            self.worker.quit()

    def _prepare(self) -> Any:
        owner = self.owner
        if owner.worker is not None:
            raise ValueError("an explanation is running: wait for it (or cancel it) first")
        loaded = owner.last_model
        if loaded is None or owner.last_snapshot is None:
            raise ValueError("there is no map to evaluate yet: run an explanation first")
        batch = owner.form.values().get("batch_size") or 16
        return start_evaluation(
            owner.last_snapshot,
            loaded.model,
            slice_index=owner.inputs.current_slice(),
            substrate=self.substrate.currentText(),
            steps=self.steps.value(),
            n_random=self.n_random.value(),
            batch_size=int(batch),
            spatial_dims=loaded.spatial_dims,
            **loaded.method_kwargs(),  # outputs, output key and padding, as the run had them
        )

    def _on_result(self, result: FaithfulnessResult) -> None:
        self.result = result
        now = time.monotonic()
        if now - self._drawn_at >= REDRAW_EVERY:
            self._draw(result)
            self._drawn_at = now

    def _on_returned(self, value: RunFailure | None) -> None:
        if isinstance(value, RunFailure):
            self._failure = value

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)
        if self.result is not None:
            self._draw(self.result)
        if self._failure is not None:
            self._report(self._failure.error)
        elif self.result is None:
            self.summary.setText("stopped before the first curve point")
        self.evaluation_finished.emit(self.result)

    def _draw(self, result: FaithfulnessResult) -> None:
        width = max(self.owner.width() - 40, 300)
        pixmap = QPixmap()
        pixmap.loadFromData(result.to_png(width=width), "PNG")
        self.plot.setPixmap(pixmap)
        self.summary.setText(summary_html(result))

    def _report(self, exc: BaseException) -> None:
        line = error_line(exc)
        self.summary.setText(f"evaluation failed: {line}")
        show_error(f"maskscope: {line}")

    def _set_running(self, running: bool) -> None:
        self.evaluate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)


def _spin(name: str, low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setObjectName(name)
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    return box
