"""The "Explain segmentation" dock widget."""

from __future__ import annotations

from functools import partial
from typing import Any

from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .. import Explanation
from ..gui import (
    LoadedModel,
    PredictionReady,
    RunRequest,
    Session,
    crop_note,
    device_choices,
    error_line,
    method_class,
    method_names,
    progress_text,
    split_patch_values,
)
from ..gui.models import model_dims
from ._evaluate import EvaluatePanel
from ._form import ParamForm
from ._inputs import InputPanel, RunInput
from ._layers import OutputLayers
from ._model_picker import ModelEntry, ModelPicker
from ._prediction import PredictionLabel
from ._roi import RoiPanel
from ._rows import combo as _combo
from ._rows import label as _label
from ._rows import row as _row
from ._rows import section as _section
from ._worker import RunFailure, start_worker

__all__ = ["ExplainWidget"]

_PROGRESS_STEPS = 1000


def _quit(session: Session, workers: list[GeneratorWorker], *_: Any) -> None:
    session.cancel()  # stops the run after its chunk, even between two snapshots
    for worker in workers:
        worker.quit()


class ExplainWidget(QWidget):
    """Explain a segmentation model on an image layer; the saliency map streams in.

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are explained.
    parent
        The parent widget.

    Attributes
    ----------
    session
        The :class:`maskscope.gui.Session`: the run's model, method, cancel token and last
        snapshot.
    worker
        The running worker, or None.
    last_snapshot
        The latest snapshot of the current or last run.
    last_model
        The model of that run (what the "evaluate" section evaluates the map with).
    evaluation
        The "evaluate" section: deletion / insertion curves of the last map.
    n_updates
        Snapshots received by the current or last run.
    yield_every
        Seconds between map updates during a run.
    """

    #: Emitted when a run ends (done, cancelled or failed), with its last snapshot or None.
    run_finished = Signal(object)

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = Session(method_names()[0])
        self.worker: GeneratorWorker | None = None
        self.n_updates = 0
        self.yield_every = 0.2
        self._output: OutputLayers | None = None
        self._legend_layer: Any = None  # the map layer whose colour range the legend shows
        self._failure: RunFailure | None = None
        self._cancelled = False
        self._build()
        self._align()
        # Closing the widget cancels its run (a holder, as the widget is gone by then).
        self._workers: list[GeneratorWorker] = []
        self.destroyed.connect(partial(_quit, self.session, self._workers))
        self.method.currentTextChanged.connect(self._method_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def last_snapshot(self) -> Explanation | None:
        """The latest snapshot of the current or last run."""
        return self.session.last

    @last_snapshot.setter
    def last_snapshot(self, snap: Explanation | None) -> None:
        self.session.last = snap

    @property
    def last_model(self) -> LoadedModel | None:
        """The model of the current or last run (None before the first run)."""
        return self.session.model

    @last_model.setter
    def last_model(self, model: LoadedModel | None) -> None:
        self.session.model = model

    def _build(self) -> None:
        """Create the entries, then lay them out in a scroll area."""
        self.inputs = InputPanel(self.viewer)
        self.roi_panel = RoiPanel(self.viewer)
        self.models = ModelPicker()
        self.device = _combo(
            "device", device_choices(), "Where the model runs (auto: a GPU when there is one)"
        )
        self.method = _combo("method", method_names(), "The perturbation method")
        self.form = ParamForm(self.method.currentText())
        self.add_prediction = QCheckBox("add prediction layer")
        self.add_prediction.setToolTip(
            "Add the model's segmentation as a Labels layer (outlined) before the run"
        )
        self.add_prediction.setObjectName("add_prediction")
        self.add_prediction.setChecked(True)
        self.prediction = PredictionLabel()
        self.legend = _label("legend", "")
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, _PROGRESS_STEPS)
        self.progress.setValue(0)
        self.status = _label("status", "ready")
        self.evaluation = EvaluatePanel(self)
        self._lay_out()

    def _lay_out(self) -> None:
        content = QWidget()
        column = QVBoxLayout(content)
        column.addWidget(_section("input"))
        column.addWidget(self.inputs)
        column.addWidget(self.roi_panel)
        column.addWidget(_section("model"))
        column.addWidget(self.models)
        column.addLayout(_row("device", self.device))
        column.addWidget(_section("method"))
        column.addLayout(_row("method", self.method))
        self._form_holder = QVBoxLayout()
        self._form_holder.setContentsMargins(0, 0, 0, 0)
        self._form_holder.addWidget(self.form)
        column.addLayout(self._form_holder)
        column.addWidget(_section("output"))
        column.addWidget(self.add_prediction)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        column.addLayout(buttons)
        for widget in (self.progress, self.prediction, self.legend, self.status):
            column.addWidget(widget)
        column.addWidget(_section("evaluate"))
        column.addWidget(self.evaluation)
        column.addStretch(1)
        self._content = content
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # ------------------------------------------------------------------ presets
    def add_model(
        self,
        name: str,
        model: Any,
        *,
        outputs: str = "logits",
        spatial_dims: int | None = None,
        output_key: str | int | None = None,
        pad_multiple: int | tuple[int, ...] | None = None,
    ) -> None:
        """Offer a model in this widget (not in other widgets) and select it.

        ``output_key`` and ``pad_multiple`` fill the model section's fields.
        """
        self.models.add_model(ModelEntry(name, model, outputs, spatial_dims))
        self.models.set_constraints(output_key=output_key, pad_multiple=pad_multiple)

    def set_method(self, name: str) -> None:
        """Choose the method by name (one of :data:`maskscope.methods.METHODS`)."""
        method_class(name)  # a ValueError listing the methods
        if self.method.findText(name) < 0:
            raise ValueError(f"method must be one of {method_names()}, got {name!r}")
        self.method.setCurrentText(name)

    def set_values(self, **values: Any) -> None:
        """Fill the method's form and the sliding-window fields (``n_masks=500, patch_size=64``)."""
        patch, values = split_patch_values(values)
        self.models.patches.set_values(**patch)
        self.form.set_values(values)

    def _method_changed(self, name: str) -> None:
        old = self.form
        values = old.values()
        self.form = ParamForm(name)
        self.form.set_values(values, strict=False)
        self._form_holder.replaceWidget(old, self.form)
        old.hide()  # gone at once, not when Qt's deferred delete runs
        old.deleteLater()
        self._align()

    def showEvent(self, event: Any) -> None:
        """Align the labels once the viewer's style sheet has set the fonts."""
        super().showEvent(event)
        self._align()

    def _align(self) -> None:
        """Give every form row's label the same width, and the dock room for the content."""
        labels = []
        for layout in self._content.findChildren(QFormLayout):
            for row in range(layout.rowCount()):
                item = layout.itemAt(row, QFormLayout.ItemRole.LabelRole)
                if item is not None and isinstance(item.widget(), QLabel):
                    labels.append(item.widget())
        labels = [label for label in labels if label.parent() is not None]
        for label in labels:
            label.setMinimumWidth(0)
        width = max((label.sizeHint().width() for label in labels), default=0)
        for label in labels:
            label.setMinimumWidth(width)
        self.setMinimumWidth(self._content.sizeHint().width() + 24)

    # ------------------------------------------------------------------ run
    def run(self) -> GeneratorWorker | None:
        """Start explaining; returns the worker, or None when the inputs are not usable.

        A problem with the inputs or the model shows a notification and starts nothing.
        """
        if self.worker is not None:
            return None
        try:
            snapshots, output = self._prepare()
        except Exception as exc:  # shown to the user; the widget stays usable
            self._report(exc)
            return None
        self._output = output
        self._failure = None
        self._cancelled = False
        self.n_updates = 0
        self.progress.setValue(0)
        self.status.setText("starting…")
        self._set_running(True)
        self.worker = start_worker(
            snapshots,
            on_snapshot=self._on_snapshot,
            on_returned=self._on_returned,
            on_finished=self._on_finished,
        )
        self._workers[:] = [self.worker]
        return self.worker

    def cancel(self) -> None:
        """Stop the run after the chunk in progress; the map computed so far is kept."""
        if self.worker is not None:
            self._cancelled = True
            self.status.setText("cancelling…")
            self.session.cancel()  # the run ends after its chunk with a cancelled snapshot

    def _prepare(self) -> tuple[Any, OutputLayers]:
        """The run's generator (the prediction check first) and where its outputs go."""
        given = self.inputs.gather()
        loaded = self.models.load(self.device.currentText())
        spatial_dims, slices = self._layout(given, loaded)
        method = self.method.currentText()
        roi, crop = self.roi_panel.choice(
            given.array.spatial,
            given.voxel_spacing,
            reverse=given.frame.reverse,
            image=given.layer,
            spatial_axes=given.array.spatial_axes,
        )
        request = RunRequest(
            given.array.image,
            target=given.target,
            reference=given.reference,
            slices=slices,
            voxel_spacing=given.voxel_spacing,
            normalize=given.normalization,
            roi=roi,
            crop=crop,
            per_channel=self.roi_panel.per_channel.isChecked(),
        )
        snapshots = self.session.start(
            request,
            self.form.values(),
            yield_every=self.yield_every,
            spatial_dims=spatial_dims,
            prediction=True,
            method=method,
            model=loaded,
        )
        output = OutputLayers(
            self.viewer, source=given.layer.name, method=method, frame=given.frame
        )
        output.outline(given.reference_layer)
        self.prediction.show_summary(None)
        return snapshots, output

    def _layout(self, given: RunInput, loaded: LoadedModel) -> tuple[int | None, Any]:
        """The model's spatial dims to pass to the engine, and the slices to explain."""
        rgb = given.layer.rgb
        chosen = given.array.channel_axis is not None or rgb
        what = "RGB colours" if rgb else "channels along the channel axis"
        dims = model_dims(
            loaded,
            given.array.spatial,
            given.array.image.shape[0],
            source=f"the image layer {given.layer.name!r}",
            channel_text=what if chosen else None,
        )
        if len(given.array.spatial) == 3 and dims == 2:
            inputs = self.inputs
            slices = given.slices(
                inputs.scope.currentText(),
                inputs.current_slice(),
                inputs.start.value(),
                inputs.stop.value(),
            )
            return 2, slices
        return dims, "all"

    # ------------------------------------------------------------------ worker events
    def _on_snapshot(self, snap: Explanation | PredictionReady) -> None:
        if isinstance(snap, PredictionReady):  # before the first snapshot
            self.prediction.show_summary(snap.summary)
            if snap.summary is not None and self.add_prediction.isChecked():
                assert self._output is not None
                self._output.show_prediction(snap.summary.prediction)
            return
        self.n_updates += 1
        self.session.record(snap)
        assert self._output is not None
        self._output.show(snap)
        self.roi_panel.show_summary(snap)
        self._follow_legend(self._output.layers.get("map"))
        self.progress.setValue(round(snap.progress * _PROGRESS_STEPS))
        if not self._cancelled:
            self.status.setText(progress_text(snap))

    def _on_returned(self, result: RunFailure | None) -> None:
        if isinstance(result, RunFailure):
            self._failure = result

    def _on_finished(self) -> None:
        snap = self.last_snapshot
        partial = snap is None or not snap.done
        if self._output is not None and snap is not None:
            self._output.finish(partial=partial)
        if self._failure is not None:
            self._report(self._failure.error, partial_kept=snap is not None)
        elif snap is None:
            self.status.setText("cancelled before the first result")
        else:
            text = progress_text(snap, cancelled=self._cancelled and partial)
            self.status.setText(text + (crop_note(snap) if snap.done else ""))
        self.worker = None
        self._workers.clear()
        self._set_running(False)
        self.run_finished.emit(snap)

    # ------------------------------------------------------------------ helpers
    def _follow_legend(self, layer: Any) -> None:
        """Show the legend of ``layer``'s colour range now and whenever it changes (each
        snapshot sets it again; the user can set it in the layer's controls)."""
        if layer is not self._legend_layer:
            if self._legend_layer is not None:
                self._legend_layer.events.contrast_limits.disconnect(self._update_legend)
            if layer is not None:
                layer.events.contrast_limits.connect(self._update_legend)
            self._legend_layer = layer
        self._update_legend()

    def _update_legend(self, _event: Any = None) -> None:
        self.legend.setText("" if self._output is None else self._output.legend())

    def _report(self, exc: BaseException, *, partial_kept: bool = False) -> None:
        line = error_line(exc)
        kept = " (the partial map is kept)" if partial_kept else ""
        self.status.setText(f"failed: {line}{kept}")
        show_error(f"maskscope: {line}{kept}")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
