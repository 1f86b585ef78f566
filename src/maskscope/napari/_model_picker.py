"""Choosing the model: bundled demos, models given from Python, a file or a factory."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
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

from .._engine.inputs import model_device_dtype
from .._engine.outputs import parse_output_key
from .._engine.padding import PAD_MODES, normalize_multiple
from .._gui_common import format_value, parse_text
from ..frontend import resolve_device
from ..models import UntrustedModelError, bundled_models, load_model
from ..wording import load_for_frontend
from ._registry import ModelEntry, registry

__all__ = ["FROM_SPEC", "LoadedModel", "ModelPicker"]

#: Label of the model list entry that reads the model from the file / factory field.
FROM_SPEC = "file or factory…"

_FILE_FILTER = "Models (*.pt2 *.pt *.pth *.ts *.torchscript *.jit);;All files (*)"
_DIMS = {"auto": None, "2D": 2, "3D": 3}

#: Text of the checkbox that allows model files able to run code (``.pt2``).
TRUST_LABEL = "trust this model file (it can run code)"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to explain, with what the engine needs to know about it.

    Attributes
    ----------
    model
        The callable.
    outputs
        ``"logits"`` or ``"probabilities"``.
    spatial_dims
        2, 3, or None (inferred by the engine).
    label
        What the user chose, for messages.
    output_key
        The "output key" field: a dict key, a tuple index, or None (the default choice).
    pad_multiple
        The "pad multiple" field: None, or pad inputs to a multiple of it.
    pad_mode
        The "pad mode" field.
    """

    model: Callable
    outputs: str
    spatial_dims: int | None
    label: str
    output_key: str | int | None = None
    pad_multiple: int | tuple[int, ...] | None = None
    pad_mode: str = "zeros"

    def method_kwargs(self) -> dict:
        """The method constructor's keywords for this model (besides the model)."""
        return {
            "outputs": self.outputs,
            "output_key": self.output_key,
            "pad_multiple": self.pad_multiple,
            "pad_mode": self.pad_mode,
        }


def _to_device(model: Callable, choice: str) -> Callable:
    """Move a model given from Python to the chosen device ("auto" leaves it in place)."""
    if choice == "auto":
        return model
    device = resolve_device(choice)
    current, _ = model_device_dtype(model)
    if current is not None and current.type != device.type and isinstance(model, torch.nn.Module):
        model.to(device)
    return model


class ModelPicker(QWidget):
    """The model list, the file / factory field with a browse button, and its settings.

    The list holds the bundled demo models, the models registered with
    :func:`maskscope.napari.register_model`, models given to this widget only
    (:meth:`add_model`), and an entry that loads the file or factory typed in the field.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._local: dict[str, ModelEntry] = {}
        self.combo = QComboBox()
        self.combo.setObjectName("model")
        self.spec = QLineEdit()
        self.spec.setObjectName("model_spec")
        self.spec.setPlaceholderText("model.pt2 or pkg.mod:factory")
        self.spec.setToolTip(
            "A TorchScript file (torch.jit.save), a torch.export program (.pt2) or "
            "'package.module:factory' returning a torch.nn.Module"
        )
        self.trust = QCheckBox(TRUST_LABEL)
        self.trust.setObjectName("trust_model")
        self.trust.setToolTip(
            "Needed for .pt2 files: torch.export.load unpickles parts of them, and a crafted "
            "file runs any Python code while it loads. Tick only for files you trust."
        )
        self.browse = QPushButton("…")
        self.browse.setToolTip("Choose a model file")
        self.browse.setMaximumWidth(32)
        self.outputs = QComboBox()
        self.outputs.addItems(["logits", "probabilities"])
        self.outputs.setToolTip("Whether the model returns logits or probabilities")
        self.dims = QComboBox()
        self.dims.addItems(list(_DIMS))
        self.dims.setToolTip(
            "The model's spatial dimensionality: auto reads it from its first convolution"
        )
        self.output_key = QLineEdit()
        self.output_key.setObjectName("output_key")
        self.output_key.setPlaceholderText("auto")
        self.output_key.setToolTip(
            "What to explain in the model's output: a dict key (logits) or a tuple index (0). "
            "auto: the tensor, a dict's out / logits / pred, .logits, a tuple's first element"
        )
        self.pad_multiple = QLineEdit()
        self.pad_multiple.setObjectName("pad_multiple")
        self.pad_multiple.setPlaceholderText("none")
        self.pad_multiple.setToolTip(
            "Pad inputs to a multiple of this per axis (16, or 16, 16, 8) and crop the "
            "outputs back: U-Nets need 2**levels"
        )
        self.pad_mode = QComboBox()
        self.pad_mode.setObjectName("pad_mode")
        self.pad_mode.addItems(list(PAD_MODES))
        self.pad_mode.setToolTip("How the padding is filled")
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
        self._layout = layout
        self.browse.clicked.connect(self._browse)
        self.combo.currentIndexChanged.connect(self._update_visibility)
        self._follow_registry()
        self.refresh()

    def _follow_registry(self) -> None:
        """Refresh on registry changes for as long as this widget exists."""
        ref = weakref.ref(self)

        def on_change() -> None:
            picker = ref()
            if picker is not None:
                picker.refresh()

        def forget(*_: object) -> None:
            registry.changed.disconnect(on_change)

        registry.changed.connect(on_change)
        self.destroyed.connect(forget)

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
        for name in registry.names():
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
            entry = self._local[name] if kind == "local" else registry.get(name)
            return entry.spatial_dims
        return _DIMS[self.dims.currentText()]

    def load(self, device: str) -> LoadedModel:
        """Load (or fetch) the chosen model on ``device`` (a name from ``device_choices()``).

        Raises
        ------
        ValueError, FileNotFoundError, KeyError
            When the model cannot be loaded; the message says why.
        """
        kind, name = self.combo.currentData() or ("spec", None)
        extra = self._constraints()
        if kind == "bundled":
            model = load_model(name, device=resolve_device(device))
            return LoadedModel(model, "logits", bundled_models()[name].spatial_dims, name, **extra)
        if kind in ("registered", "local"):
            entry = self._local[name] if kind == "local" else registry.get(name)
            model = _to_device(entry.model, device)
            return LoadedModel(model, entry.outputs, entry.spatial_dims, name, **extra)
        spec = self.spec.text().strip()
        if not spec:
            raise ValueError(
                "no model given: choose a model, or type a model file or "
                "'package.module:factory' in the file / factory field"
            )
        try:
            model = load_for_frontend(
                load_model, spec, device=resolve_device(device), trusted=self.trust.isChecked()
            )
        except UntrustedModelError as exc:
            raise UntrustedModelError(exc.path, f"the checkbox {TRUST_LABEL!r}") from None
        dims = _DIMS[self.dims.currentText()]
        return LoadedModel(model, self.outputs.currentText(), dims, spec, **extra)

    def set_constraints(
        self, *, output_key: str | int | None = None, pad_multiple: object = None
    ) -> None:
        """Fill the "output key" and "pad multiple" fields."""
        self.output_key.setText("" if output_key is None else str(output_key))
        multiple = normalize_multiple(pad_multiple)
        text = "" if multiple is None else format_value(multiple)
        self.pad_multiple.setText(text)

    def _constraints(self) -> dict:
        """The output key and padding fields, checked."""
        text = self.pad_multiple.text().strip()
        multiple = None
        if text and text.lower() != "none":
            parsed = parse_text(text)
            try:
                multiple = normalize_multiple(parsed)
            except (ValueError, TypeError):
                raise ValueError(
                    "pad multiple takes a positive int, or one per axis separated by commas "
                    f"(16 or 16, 16, 8), got {text!r}"
                ) from None
        return {
            "output_key": parse_output_key(self.output_key.text()),
            "pad_multiple": multiple,
            "pad_mode": self.pad_mode.currentText(),
        }
