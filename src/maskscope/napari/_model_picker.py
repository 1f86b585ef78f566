"""Choosing the model: bundled demos, models given from Python, a file or a factory."""

from __future__ import annotations

import weakref

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ..gui import windowed
from ..gui.models import (
    MODEL_HELP,
    PAD_MODES,
    LoadedModel,
    ModelEntry,
    ModelRegistry,
    bundled_models,
    load_bundled,
    load_spec,
    pad_multiple_text,
    parse_output_key,
    parse_pad_multiple,
    to_device,
)
from ._patches import PatchEntries

__all__ = ["FROM_SPEC", "REGISTERED", "TRUST_LABEL", "LoadedModel", "ModelPicker"]

#: The models offered to every widget (:func:`maskscope.napari.register_model`), held by
#: weak reference: each picker keeps its own strong reference to the models it lists.
REGISTERED = ModelRegistry()

#: Label of the model list entry that reads the model from the file / factory field.
FROM_SPEC = "file or factory…"

_FILE_FILTER = "Models (*.pt2 *.pt *.pth *.ts *.torchscript *.jit);;All files (*)"
_DIMS = {"auto": None, "2D": 2, "3D": 3}

#: Text of the checkbox that allows model files, which run code (TorchScript, ``.pt2``).
TRUST_LABEL = "trust this model file (it can run code)"


def _line(name: str, placeholder: str, tip: str) -> QLineEdit:
    line = QLineEdit()
    line.setObjectName(name)
    line.setPlaceholderText(placeholder)
    line.setToolTip(tip)
    return line


class ModelPicker(QWidget):
    """The model list, the file / factory field with a browse button, and its settings.

    The list holds the bundled demo models, the models registered with
    :func:`maskscope.napari.register_model`, models given to this widget only
    (:meth:`add_model`), and an entry that loads the file or factory typed in the field.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._local: dict[str, ModelEntry] = {}
        self._registered: dict[str, ModelEntry] = {}
        self.combo = QComboBox()
        self.combo.setObjectName("model")
        self.spec = _line(
            "model_spec",
            "model.pt2 or pkg.mod:factory",
            "A TorchScript file (torch.jit.save), a torch.export program (.pt2) or "
            "'package.module:factory' returning a torch.nn.Module",
        )
        self.trust = QCheckBox(TRUST_LABEL)
        self.trust.setObjectName("trust_model")
        self.trust.setToolTip(
            "Needed for model files: a TorchScript file's program can read and write any "
            "file, and torch.export.load unpickles parts of a .pt2 file, which runs any "
            "Python code while it loads. Tick only for files you trust."
        )
        self.browse = QPushButton("…")
        self.browse.setToolTip("Choose a model file")
        self.browse.setMaximumWidth(32)
        self.outputs = QComboBox()
        self.outputs.addItems(["logits", "probabilities"])
        self.outputs.setToolTip(MODEL_HELP["outputs"])
        self.dims = QComboBox()
        self.dims.addItems(list(_DIMS))
        self.dims.setToolTip(
            "The model's spatial dimensionality: auto reads it from its first convolution"
        )
        self.output_key = _line("output_key", "auto", MODEL_HELP["output_key"])
        self.pad_multiple = _line("pad_multiple", "none", MODEL_HELP["pad_multiple"])
        self.pad_mode = QComboBox()
        self.pad_mode.setObjectName("pad_mode")
        self.pad_mode.addItems(list(PAD_MODES))
        self.pad_mode.setToolTip(MODEL_HELP["pad_mode"])
        self._lay_out()
        self.browse.clicked.connect(self._browse)
        self.combo.currentIndexChanged.connect(self._update_visibility)
        self._follow_registry()
        self.refresh()

    def _lay_out(self) -> None:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.spec)
        row.addWidget(self.browse)
        self._spec_row = QWidget()
        self._spec_row.setLayout(row)
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow("model", self.combo)
        layout.addRow("file / factory", self._spec_row)
        layout.addRow("", self.trust)
        layout.addRow("model outputs", self.outputs)
        layout.addRow("model input", self.dims)
        layout.addRow("output key", self.output_key)
        layout.addRow("pad multiple", self.pad_multiple)
        layout.addRow("pad mode", self.pad_mode)
        #: The sliding-window fields (a patch-based model).
        self.patches = PatchEntries(layout)
        self._layout = layout

    def _follow_registry(self) -> None:
        """Refresh on registry changes until this widget is destroyed."""
        ref = weakref.ref(self)

        def on_change() -> None:
            picker = ref()
            if picker is not None:
                picker.refresh()

        REGISTERED.connect(on_change)
        self.destroyed.connect(lambda *_: REGISTERED.disconnect(on_change))

    # ------------------------------------------------------------------ list
    def refresh(self) -> None:
        """Rebuild the list, keeping the current choice when it still exists."""
        current = self.combo.currentData()
        self.combo.blockSignals(True)
        self.combo.clear()
        for name, info in bundled_models().items():
            self.combo.addItem(f"{name} (demo)", ("bundled", name))
            tooltip = Qt.ItemDataRole.ToolTipRole
            self.combo.setItemData(self.combo.count() - 1, info.description, tooltip)
        # this widget's own references: a model stays usable while it is listed here
        self._registered = {name: REGISTERED.get(name) for name in REGISTERED.names()}
        for name in self._registered:
            self.combo.addItem(name, ("registered", name))
        for name in self._local:
            self.combo.addItem(name, ("local", name))
        self.combo.addItem(FROM_SPEC, ("spec", None))
        index = self.combo.findData(current) if current is not None else -1
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)
        self._update_visibility()

    def add_model(self, entry: ModelEntry) -> None:
        """Offer a model in this widget only, and select it."""
        self._local[entry.name] = entry
        self.refresh()
        self.select(entry.name)

    def select(self, name: str) -> None:
        """Select a model by name (bundled, registered or local), or a file / factory."""
        for i in range(self.combo.count()):
            data = self.combo.itemData(i)
            if data[1] == name and data[0] in ("local", "registered", "bundled"):
                self.combo.setCurrentIndex(i)
                return
        self.combo.setCurrentIndex(self.combo.findData(("spec", None)))
        self.spec.setText(name)

    def _update_visibility(self) -> None:
        from_spec = (self.combo.currentData() or ("spec",))[0] == "spec"
        for widget in (self._spec_row, self.trust, self.outputs, self.dims):
            widget.setVisible(from_spec)
            label = self._layout.labelForField(widget)
            if label is not None:
                label.setVisible(from_spec)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", "", _FILE_FILTER)
        if path:
            self.spec.setText(path)

    # ------------------------------------------------------------------ loading
    def current_spatial_dims(self) -> int | None:
        """The chosen model's spatial dimensionality when known without loading it."""
        kind, name = self.combo.currentData() or ("spec", None)
        if kind == "bundled":
            return bundled_models()[name].spatial_dims
        if kind in ("registered", "local"):
            entry = (self._local if kind == "local" else self._registered)[name]
            return entry.spatial_dims
        return _DIMS[self.dims.currentText()]

    def load(self, device: str) -> LoadedModel:
        """Load (or fetch) the chosen model on ``device`` (a name from ``device_choices()``).

        With a patch size, the model is run by sliding window.

        Raises
        ------
        ValueError, FileNotFoundError, KeyError
            When the model cannot be loaded or a field is wrong; the message says why.
        """
        patches = self.patches.settings()  # checked before a model file loads
        return windowed(self._load(device), patches)

    def _load(self, device: str) -> LoadedModel:
        kind, name = self.combo.currentData() or ("spec", None)
        extra = self._constraints()
        if kind == "bundled":
            model = load_bundled(name, device)
            return LoadedModel(model, "logits", bundled_models()[name].spatial_dims, name, **extra)
        if kind in ("registered", "local"):
            entry = (self._local if kind == "local" else self._registered)[name]
            model = to_device(entry.model, device)
            return LoadedModel(model, entry.outputs, entry.spatial_dims, name, **extra)
        spec = self.spec.text().strip()
        trust = f"the checkbox {TRUST_LABEL!r}"
        model = load_spec(spec, device, trusted=self.trust.isChecked(), trust_label=trust)
        dims = _DIMS[self.dims.currentText()]
        return LoadedModel(model, self.outputs.currentText(), dims, spec, **extra)

    def set_constraints(
        self, *, output_key: str | int | None = None, pad_multiple: object = None
    ) -> None:
        """Fill the "output key" and "pad multiple" fields."""
        self.output_key.setText("" if output_key is None else str(output_key))
        self.pad_multiple.setText(pad_multiple_text(pad_multiple))

    def _constraints(self) -> dict:
        """The output key and padding fields, checked."""
        return {
            "output_key": parse_output_key(self.output_key.text()),
            "pad_multiple": parse_pad_multiple(self.pad_multiple.text()),
            "pad_mode": self.pad_mode.currentText(),
        }
