"""The input part of the widget: image layer, channel axis, reference, target, slices."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox, QWidget

from ..gui.inputs import (
    NORMALIZATIONS,
    SCOPES,
    InputArray,
    describe_normalization,
    input_array,
    reverse_axes,
    scope_slices,
    suggest_normalization,
)
from ._layers import META_KEY, Frame, frame_of
from ._reader import AXES_KEY

__all__ = ["InputPanel", "RunInput"]

#: Reference choice meaning "the model's own prediction".
MODEL_PREDICTION = "model prediction"


@dataclass(frozen=True)
class RunInput:
    """Everything the run needs from the layers.

    Attributes
    ----------
    layer
        The image layer.
    array
        Its data as ``(C, *spatial)``.
    frame
        Where the outputs go.
    voxel_spacing
        Physical size per spatial axis (the layer's scale).
    reference
        A label image of the spatial shape, or None for the model's prediction.
    target
        The class to explain, or None for the method's default.
    normalization
        One of :data:`maskscope.intensity.NORMALIZATIONS`.
    layer_axes, model_axes
        The layer's array order and the model's (``"ijk"`` or ``"kji"``; equal unless the
        model takes the spatial axes reversed).
    """

    layer: Image
    array: InputArray
    frame: Frame
    voxel_spacing: tuple[float, ...]
    reference: np.ndarray | None
    target: int | None
    normalization: str
    layer_axes: str = "ijk"
    model_axes: str = "ijk"
    reference_layer: Labels | None = None

    def slices(self, scope: str, current: int, start: int, stop: int) -> Any:
        """The engine's ``slices`` argument for a 2D model on this volume."""
        return scope_slices(
            scope, current=current, start=start, stop=stop, depth=self.array.spatial[0]
        )


def _is_output(layer: Layer) -> bool:
    return isinstance(layer.metadata.get(META_KEY), dict)


def _layer_array(layer: Layer) -> Any:
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


class InputPanel(QWidget):
    """Combo boxes for the image and reference layers, channel axis, target and slices.

    Parameters
    ----------
    viewer
        The napari viewer whose layers are listed.
    parent
        The parent widget.
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._build()
        self._lay_out()
        self._suggested_for: Any = None
        #: The normalisation shown for each image layer so far (a user's choice stays).
        self._normalization_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.image.currentIndexChanged.connect(self._image_changed)
        self.normalization.currentTextChanged.connect(self._normalization_changed)
        self.channel.currentIndexChanged.connect(self._update_scope)
        self.scope.currentIndexChanged.connect(self._update_scope)
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.reordered):
            emitter.connect(self.refresh)
        self.destroyed.connect(partial(_disconnect, viewer, self.refresh))
        self.refresh()

    def _build(self) -> None:
        self.image = QComboBox()
        self.image.setObjectName("image")
        self.image.setToolTip("The image layer to explain (2D, 3D, or with a channel axis)")
        self.channel = QComboBox()
        self.channel.setObjectName("channel_axis")
        self.channel.setToolTip("The axis holding channels, if any")
        self.reference = QComboBox()
        self.reference.setObjectName("reference")
        self.reference.setToolTip(
            "What the explanation compares with: the model's own prediction, or a Labels "
            "layer (e.g. a ground truth) of the image's spatial shape"
        )
        self.target = QSpinBox()
        self.target.setObjectName("target")
        self.target.setRange(-1, 255)
        self.target.setSpecialValueText("auto")
        self.target.setValue(-1)
        self.target.setToolTip("The class to explain (auto: the method's default)")
        self.normalization = QComboBox()
        self.normalization.setObjectName("normalization")
        self.normalization.addItems(list(NORMALIZATIONS))
        self.normalization.setToolTip(
            "Intensity normalisation per channel before the model: use the model's training "
            "normalisation. Chosen for each new image: none for values in [0, 1] or z-scored "
            "already, else percentile"
        )
        self.normalization_note = QLabel("")
        self.normalization_note.setObjectName("normalization_note")
        self.normalization_note.setWordWrap(True)
        self.axes = QComboBox()
        self.axes.setObjectName("axes")
        self.axes.setToolTip(
            "The array order the model was trained on: ijk (nibabel, MONAI LoadImage) or kji "
            "(SimpleITK, nnU-Net). The layer stays as it is on screen"
        )
        self.scope = QComboBox()
        self.scope.setObjectName("scope")
        self.scope.addItems(list(SCOPES))
        self.scope.setToolTip(
            "With a 2D model on a volume: explain the slice on screen, every slice, or a range"
        )
        self.start = QSpinBox()
        self.start.setObjectName("slice_start")
        self.stop = QSpinBox()
        self.stop.setObjectName("slice_stop")
        range_row = QHBoxLayout()
        range_row.setContentsMargins(0, 0, 0, 0)
        range_row.addWidget(self.start)
        range_row.addWidget(self.stop)
        self._range = QWidget()
        self._range.setLayout(range_row)

    def _lay_out(self) -> None:
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow("image", self.image)
        layout.addRow("channel axis", self.channel)
        layout.addRow("reference", self.reference)
        layout.addRow("target class", self.target)
        layout.addRow("normalisation", self.normalization)
        layout.addRow("", self.normalization_note)
        layout.addRow("array order", self.axes)
        layout.addRow("slices (2D model)", self.scope)
        layout.addRow("slice range", self._range)
        self._layout = layout

    # ------------------------------------------------------------------ layers
    def refresh(self, event: Any = None) -> None:
        """Re-list the layers, keeping the current choices when they still exist."""
        for layer in self.viewer.layers:
            layer.events.name.connect(self.refresh)
        chosen = self.image.currentData()
        if event is not None and getattr(event, "type", "") == "inserted" and chosen is None:
            chosen = event.value if isinstance(event.value, Image) else None
        images = [ly for ly in self.viewer.layers if isinstance(ly, Image) and not _is_output(ly)]
        if chosen not in images:
            active = self.viewer.layers.selection.active
            chosen = active if active in images else (images[-1] if images else None)
        self._fill(self.image, [(ly.name, ly) for ly in images], chosen)
        ref = self.reference.currentData()
        labels = [ly for ly in self.viewer.layers if isinstance(ly, Labels)]
        items = [(MODEL_PREDICTION, None)] + [(ly.name, ly) for ly in labels]
        self._fill(self.reference, items, ref if ref in labels else None)
        self._image_changed()

    @staticmethod
    def _fill(combo: QComboBox, items: list[tuple[str, Any]], chosen: Any) -> None:
        combo.blockSignals(True)
        combo.clear()
        for text, data in items:
            combo.addItem(text, data)
        index = next((i for i, (_, d) in enumerate(items) if d is chosen), 0)
        combo.setCurrentIndex(index if items else -1)
        combo.blockSignals(False)

    def set_image(self, layer: Image) -> None:
        """Choose the image layer."""
        index = next((i for i in range(self.image.count()) if self.image.itemData(i) is layer), -1)
        if index < 0:
            raise ValueError(f"{layer.name!r} is not an image layer of this viewer")
        self.image.setCurrentIndex(index)

    def set_reference(self, layer: Labels | None) -> None:
        """Choose a Labels layer as reference, or None for the model's prediction."""
        index = next(
            (i for i in range(self.reference.count()) if self.reference.itemData(i) is layer), -1
        )
        if index < 0:
            raise ValueError(f"{layer.name!r} is not a Labels layer of this viewer")
        self.reference.setCurrentIndex(index)

    def _image_changed(self, *_: Any) -> None:
        layer = self.image.currentData()
        current = self.channel.currentData()
        self.channel.blockSignals(True)
        self.channel.clear()
        if layer is None:
            self.channel.addItem("none", None)
        elif layer.rgb:
            self.channel.addItem("RGB (last axis)", -1)
        else:
            ndim = len(np.shape(_layer_array(layer)))
            self.channel.addItem("none", None)
            for axis in range(ndim):
                self.channel.addItem(f"axis {axis}", axis)
            default = current if current is not None and current < ndim else None
            if default is None and ndim >= 4:
                default = 0
            self.channel.setCurrentIndex(max(self.channel.findData(default), 0))
        self.channel.blockSignals(False)
        self._update_axes(layer)
        if layer is not None and layer is not self._suggested_for:
            self._suggested_for = layer
            mode = self._normalization_of.get(layer)
            if mode is None:
                mode = suggest_normalization(_layer_array(layer))
            self.normalization.setCurrentText(mode)
        self._describe_normalization()
        self._update_scope()

    def _update_axes(self, layer: Layer | None) -> None:
        order = layer.metadata.get(AXES_KEY) if layer is not None else None
        current = self.axes.currentData()
        self.axes.blockSignals(True)
        self.axes.clear()
        if order in ("ijk", "kji"):
            other = "kji" if order == "ijk" else "ijk"
            names = {"ijk": "ijk (nibabel, MONAI)", "kji": "kji (SimpleITK, nnU-Net)"}
            self.axes.addItem(f"{names[order]}: as the layer", order)
            self.axes.addItem(f"{names[other]}: reversed", other)
            self.axes.setCurrentIndex(max(self.axes.findData(current), 0))
        else:
            self.axes.addItem("as the layer", "ijk")
            self.axes.addItem("spatial axes reversed", "kji")
            self.axes.setCurrentIndex(max(self.axes.findData(current), 0))
        self.axes.blockSignals(False)

    def _normalization_changed(self, mode: str) -> None:
        layer = self.image.currentData()
        if layer is not None:
            try:
                self._normalization_of[layer] = mode
            except TypeError:  # a layer that cannot be weakly referenced: not remembered
                pass
        self._describe_normalization()

    def _describe_normalization(self, *_: Any) -> None:
        layer = self.image.currentData()
        mode = self.normalization.currentText()
        if layer is None or mode not in NORMALIZATIONS:
            self.normalization_note.setText("")
            return
        data = np.asarray(_layer_array(layer))
        chosen = " (chosen for this image)" if mode == suggest_normalization(data) else ""
        self.normalization_note.setText(describe_normalization(mode, data) + chosen)

    def set_normalization(self, mode: str) -> None:
        """Choose the normalisation, one of :data:`maskscope.intensity.NORMALIZATIONS`."""
        if mode not in NORMALIZATIONS:
            raise ValueError(f"normalisation must be one of {list(NORMALIZATIONS)}, got {mode!r}")
        self.normalization.setCurrentText(mode)

    def set_axes(self, axes: str) -> None:
        """Choose the model's array order, ``"ijk"`` or ``"kji"``."""
        index = self.axes.findData(axes)
        if index < 0:
            raise ValueError(f"array order must be 'ijk' or 'kji', got {axes!r}")
        self.axes.setCurrentIndex(index)

    def spatial_shape(self) -> tuple[int, ...] | None:
        """Spatial shape of the chosen image with the chosen channel axis (None if invalid)."""
        layer = self.image.currentData()
        if layer is None:
            return None
        shape = tuple(np.shape(_layer_array(layer)))
        axis = self.channel.currentData()
        if axis is not None:
            shape = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
        return shape if len(shape) in (2, 3) else None

    def _update_scope(self, *_: Any) -> None:
        shape = self.spatial_shape()
        volume = shape is not None and len(shape) == 3
        ranged = volume and self.scope.currentText() == "range"
        for widget, visible in ((self.scope, volume), (self._range, ranged)):
            widget.setVisible(visible)
            label = self._layout.labelForField(widget)
            if label is not None:
                label.setVisible(visible)
        if volume:
            assert shape is not None
            for box in (self.start, self.stop):
                box.setRange(0, shape[0] - 1)

    def current_slice(self) -> int:
        """Index of the slice on screen along the chosen image's first spatial axis."""
        layer = self.image.currentData()
        if layer is None:
            return 0
        position = layer.world_to_data(self.viewer.dims.point)
        axis = self.channel.currentData()
        if self._reversed(layer):  # the model's first axis is the layer's last
            return round(float(position[-1]))
        first = 0 if axis is None or layer.rgb or axis % layer.ndim != 0 else 1
        return round(float(position[first]))

    def _reversed(self, layer: Layer) -> bool:
        return str(layer.metadata.get(AXES_KEY, "ijk")) != str(self.axes.currentData() or "ijk")

    # ------------------------------------------------------------------ gather
    def gather(self) -> RunInput:
        """Read the chosen layers and settings.

        Raises
        ------
        ValueError
            When no image is chosen, the axes do not fit, or the reference does not match.
        """
        layer = self.image.currentData()
        if layer is None:
            raise ValueError("no image layer to explain: open an image first")
        axis = self.channel.currentData()
        array = input_array(_layer_array(layer), axis)
        frame = frame_of(layer, axis)
        if layer.rgb:
            spacing = tuple(abs(float(s)) for s in layer.scale)
        else:
            spacing = tuple(abs(float(layer.scale[a])) for a in array.spatial_axes)
        reference = None
        ref_layer = self.reference.currentData()
        if ref_layer is not None:
            reference = np.asarray(_layer_array(ref_layer))
            if reference.shape != array.spatial:
                raise ValueError(
                    f"reference layer {ref_layer.name!r} has shape {reference.shape}, but the "
                    f"image's spatial shape is {array.spatial}"
                )
        target = self.target.value()
        if self._reversed(layer):  # the model takes the spatial axes the other way round
            image = reverse_axes(array.image, len(array.spatial))
            array = InputArray(image, array.spatial_axes, array.channel_axis)
            spacing = spacing[::-1]
            reference = None if reference is None else np.ascontiguousarray(reference.T)
            frame = replace(frame, reverse=True)
        return RunInput(
            layer=layer,
            array=array,
            frame=frame,
            voxel_spacing=spacing,
            reference=reference,
            target=None if target < 0 else target,
            normalization=self.normalization.currentText(),
            layer_axes=str(layer.metadata.get(AXES_KEY, "ijk")),
            model_axes=str(self.axes.currentData() or "ijk"),
            reference_layer=ref_layer,
        )


def _disconnect(viewer: Any, callback: Any, *_: Any) -> None:
    events = viewer.layers.events
    for emitter in (events.inserted, events.removed, events.reordered):
        emitter.disconnect(callback)
    for layer in viewer.layers:
        layer.events.name.disconnect(callback)
