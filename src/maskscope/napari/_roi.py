"""What to explain, from napari layers: a Shapes layer's shapes or a Labels layer's label.

* A **Shapes** layer: its shapes, rasterised on the image's grid (``layer.to_masks``)
  where they lie on screen: each vertex goes from the Shapes layer's data coordinates to
  the world and into the image layer's data coordinates, so a Shapes layer made without
  the image's scale, translation or affine still selects the voxels under its shapes. A
  shape drawn on one slice of a volume selects a block around that slice: as many slices
  on each side as half the shape's larger in-plane side (in physical units, with the
  image's voxel spacing), so a square drawn around a lesion on its middle slice selects
  a cube around it.
* A **Labels** layer (the prediction layer included): the voxels of its selected label
  (``layer.selected_label``, set by napari's picker tool: click a lesion to pick it),
  voxel for voxel (a label image has the image's shape, whatever its placement on screen).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from napari.layers import Labels, Shapes
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QWidget

from ..gui import channel_ranking, ranking_html
from ..gui.channels import IMPORTANCE_HELP, ChannelRank
from ..roi import ROI

__all__ = ["ROI_NONE", "RoiPanel", "roi_from_layer"]

#: The choice that explains the whole image.
ROI_NONE = "(whole image)"


def _extend_through_depth(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """A mask on one slice of a volume, extended to a block around that slice."""
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if len(slices) != 1:
        return mask
    z = int(slices[0])
    plane = mask[z]
    ys, xs = np.nonzero(plane)
    side = max((np.ptp(ys) + 1) * spacing[1], (np.ptp(xs) + 1) * spacing[2])
    half = round(float(side) / 2 / spacing[0])
    out = np.zeros_like(mask)
    out[max(0, z - half) : z + half + 1] = plane
    return out


def _on_image_grid(layer: Any, image: Any, spatial_axes: Any = None) -> Any:
    """The Shapes ``layer`` with its vertices in ``image``'s data coordinates (a copy).

    An image layer with more dimensions (a channel axis first) is reached through its
    spatial axes, the last ones, as napari lays a Shapes layer of fewer dimensions over
    the last world axes. A coordinate all of a shape's vertices share (the slice a shape
    was drawn on) is rounded, as napari rounds the slice it shows. ``layer`` itself when
    there is no image layer, or its spatial axes are not its last ones.
    """
    if image is None or image.ndim < layer.ndim:
        return layer
    extra = image.ndim - layer.ndim
    axes = tuple(range(extra, image.ndim))
    if extra and tuple(spatial_axes or ()) != axes:
        return layer

    def moved(v: np.ndarray) -> np.ndarray:
        world = np.asarray(layer.data_to_world(v), float)
        return np.asarray(image.world_to_data([0.0] * extra + list(world)), float)[extra:]

    out = []
    for verts in layer.data:
        m = np.array([moved(v) for v in np.asarray(verts)])
        flat = np.ptp(m, axis=0) == 0  # the slice a shape was drawn on
        m[:, flat] = np.round(m[:, flat])
        out.append(m)
    if all(np.allclose(a, b) for a, b in zip(out, layer.data, strict=True)):
        return layer
    return Shapes(out, shape_type=list(layer.shape_type), ndim=layer.ndim)


def roi_from_layer(
    layer: Any,
    spatial: tuple[int, ...],
    spacing: Any = None,
    image: Any = None,
    spatial_axes: Any = None,
) -> ROI:
    """The ROI a Shapes or Labels layer selects on an image of ``spatial`` shape.

    ``image`` is the image layer explained: a Shapes layer's shapes are read where they lie
    over it in the world (see the module's notes); without it, in their own coordinates.
    ``spatial_axes``: the image layer's spatial axes (when it has a channel axis too).

    Raises
    ------
    ValueError
        For a layer of another kind, a Shapes layer with no shape, a label image of
        another shape, or the background label (0) selected.
    """
    kind = type(layer).__name__
    spatial = tuple(int(s) for s in spatial)
    if kind == "Shapes":
        if len(layer.data) == 0:
            raise ValueError(f"ROI: the Shapes layer {layer.name!r} has no shape: draw a box first")
        if layer.ndim != len(spatial):
            raise ValueError(
                f"ROI: the Shapes layer {layer.name!r} has {layer.ndim} dimensions, the image "
                f"{len(spatial)} (spatial shape {spatial})"
            )
        grid = _on_image_grid(layer, image, spatial_axes)
        mask = np.asarray(grid.to_masks(mask_shape=spatial)).any(axis=0)
        if not mask.any():
            over = "the image" if image is None else f"the image {image.name!r}"
            raise ValueError(
                f"ROI: the shapes of the Shapes layer {layer.name!r} lie outside {over} "
                f"(spatial shape {spatial}): draw them over it"
            )
        if mask.ndim == 3:
            sp = tuple(spacing) if spacing is not None else (1.0, 1.0, 1.0)
            mask = _extend_through_depth(mask, sp)
        return ROI.from_mask(mask)
    if kind == "Labels":
        data = np.asarray(layer.data)
        if data.shape != spatial:
            raise ValueError(
                f"ROI: the Labels layer {layer.name!r} has shape {data.shape}, the image's "
                f"spatial shape is {spatial}"
            )
        label = int(layer.selected_label)
        if label == 0:
            raise ValueError(
                f"ROI: the Labels layer {layer.name!r} has the background (0) selected: pick a "
                "label (the picker tool, then click a lesion)"
            )
        return ROI.from_label(data, label)
    raise ValueError(f"ROI: choose a Shapes or Labels layer, got the {kind} layer {layer.name!r}")


def _disconnect(viewer: Any, callback: Any, *_: Any) -> None:
    events = viewer.layers.events
    for emitter in (events.inserted, events.removed, events.reordered):
        try:
            emitter.disconnect(callback)
        except (TypeError, ValueError, RuntimeError):  # already gone
            pass


#: The crop choices: label and ``crop=`` value.
CROP_CHOICES = (
    ("auto", "auto"),
    ("to the region (plus the model's receptive field)", True),
    ("off: the whole image", False),
)


class RoiPanel(QWidget):
    """The "region of interest" rows: a layer to explain within, crop mode, channels.

    Lists ``(whole image)`` and every Shapes and Labels layer of ``viewer``; a choice of
    crop mode (``"auto"``, on: the model runs on the ROI's box plus its receptive field, or
    off), and a checkbox for a map per input channel, whose ranking :meth:`show_summary`
    shows as a table.
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer = QComboBox()
        self.layer.setObjectName("roi")
        self.layer.setToolTip(
            "Explain only a region: the shapes of a Shapes layer (a box drawn on a slice "
            "selects a block around it), or the selected label of a Labels layer (pick a "
            "lesion with the picker tool)"
        )
        self.crop = QComboBox()
        self.crop.setObjectName("roi_crop")
        for text, value in CROP_CHOICES:
            self.crop.addItem(text, value)
        self.crop.setToolTip(
            "Run the model on the region's box plus its receptive field only. auto: the "
            "RISE family crops (its map there is the whole image's; outside it, the mean "
            "score instead of noise) when the receptive field can be estimated"
        )
        self.per_channel = QCheckBox("a map per input channel (RISE family)")
        self.per_channel.setObjectName("per_channel")
        self.per_channel.setToolTip(
            "Masks drawn independently per channel: one map layer per channel (hidden at "
            "first), and the channels ranked by their importance below"
        )
        #: The channels of the last snapshot by importance (empty without per-channel maps).
        self.ranking: list[ChannelRank] = []
        self.summary = QLabel("")
        self.summary.setObjectName("channel_summary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("region of interest", self.layer)
        form.addRow("crop", self.crop)
        form.addRow("", self.per_channel)
        form.addRow("", self.summary)
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.reordered):
            emitter.connect(self.refresh)
        self.destroyed.connect(partial(_disconnect, viewer, self.refresh))
        self.refresh()

    def refresh(self, event: Any = None) -> None:
        """Re-list the Shapes and Labels layers, keeping the choice when it remains."""
        chosen = self.layer.currentData()
        layers = [ly for ly in self.viewer.layers if isinstance(ly, (Shapes, Labels))]
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItem(ROI_NONE, None)
        for ly in layers:
            self.layer.addItem(ly.name, ly)
        self.layer.setCurrentIndex(layers.index(chosen) + 1 if chosen in layers else 0)
        self.layer.blockSignals(False)

    def show_summary(self, snap: Any) -> None:
        """Show the channels ranked by importance when the snapshot has per-channel maps.

        The table is :func:`maskscope.gui.ranking_html`'s, the notebook's too.
        """
        self.ranking = channel_ranking(snap)
        self.summary.setText(ranking_html(self.ranking))
        self.summary.setToolTip(IMPORTANCE_HELP if self.ranking else "")

    def choice(
        self,
        spatial: tuple[int, ...],
        spacing: Any,
        *,
        reverse: bool = False,
        image: Any = None,
        spatial_axes: Any = None,
    ) -> tuple[ROI | None, bool | str]:
        """``(roi, crop)`` for the run: None and ``"auto"`` for the whole image.

        ``spatial`` and ``spacing`` are the model's; ``reverse``: the model takes the
        layer's spatial axes in reverse order (the ROI is read in the layer's, then turned);
        ``image``: the image layer explained (shapes are read where they lie over it), and
        its ``spatial_axes``.
        """
        layer = self.layer.currentData()
        crop = self.crop.currentData()
        if layer is None:
            if crop is True:
                raise ValueError("ROI: crop needs a region of interest: choose a layer")
            return None, "auto"
        if reverse:
            spatial = tuple(reversed(spatial))
            spacing = None if spacing is None else tuple(reversed(tuple(spacing)))
        roi = roi_from_layer(layer, spatial, spacing, image=image, spatial_axes=spatial_axes)
        return (roi.reversed_axes() if reverse else roi), crop
