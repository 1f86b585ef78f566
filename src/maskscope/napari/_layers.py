"""The output layers of a run: saliency map, extra maps and prediction, updated in place."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer

from .. import Explanation
from ..render import legend_text, robust_limits
from ._overlay import CONTOUR, overlay_colormap, show_colorbar
from ._reader import AFFINE_KEY, AXES_KEY

__all__ = ["EXTRA_COLORMAPS", "META_KEY", "Frame", "OutputLayers", "frame_of"]

#: Key of the layer metadata entry that marks and describes maskscope's layers.
META_KEY = "maskscope"

#: Source-layer metadata copied onto the outputs (what the NIfTI writer needs).
SOURCE_KEYS = (AFFINE_KEY, AXES_KEY)

#: Colormaps of named extra maps (others use the saliency colormap).
EXTRA_COLORMAPS = {"better_only": "cyan", "worse_only": "magenta"}


@dataclass(frozen=True)
class Frame:
    """Where the output goes in world space: the source layer's transform, spatial axes only.

    Attributes
    ----------
    scale, translate
        Per output axis.
    affine
        ``(ndim + 1, ndim + 1)`` matrix, or None when the source has none.
    keep_axis
        A non-leading channel axis kept as a length-1 axis so that the output lines up
        with the source (napari aligns layers by their last axes), or None.
    reverse
        Whether outputs come in the reversed spatial order (the model's ``kji`` on an
        ``ijk`` layer, or the other way round) and are turned back.
    source_meta
        The source layer's NIfTI metadata (affine and array order), copied onto the
        outputs so that the NIfTI writer saves them in the source's space.
    """

    scale: tuple[float, ...]
    translate: tuple[float, ...]
    affine: np.ndarray | None = None
    keep_axis: int | None = None
    reverse: bool = False
    source_meta: dict[str, Any] = field(default_factory=dict)

    def place(self, array: np.ndarray) -> np.ndarray:
        """The array as it goes into a layer (in the layer's order, kept channel axis)."""
        if self.reverse:
            array = np.ascontiguousarray(np.transpose(array))
        return array if self.keep_axis is None else np.expand_dims(array, self.keep_axis)

    def layer_kwargs(self) -> dict[str, Any]:
        """``scale``, ``translate`` and ``affine`` keyword arguments for a new layer."""
        out: dict[str, Any] = {"scale": self.scale, "translate": self.translate}
        if self.affine is not None:
            out["affine"] = self.affine
        return out

    def apply(self, layer: Layer) -> None:
        """Give an existing layer this frame."""
        layer.scale = self.scale
        layer.translate = self.translate
        if self.affine is not None:
            layer.affine = self.affine
        else:
            layer.affine = np.eye(len(self.scale) + 1)


def frame_of(layer: Layer, channel_axis: int | None) -> Frame:
    """The frame of an output computed from ``layer`` with the given channel axis.

    A leading channel axis (and an RGB layer's colour axis) is dropped; any other channel
    axis is kept with length 1.
    """
    frame = _frame(layer, channel_axis)
    meta = {k: layer.metadata[k] for k in SOURCE_KEYS if k in layer.metadata}
    return replace(frame, source_meta=meta) if meta else frame


def _frame(layer: Layer, channel_axis: int | None) -> Frame:
    scale = tuple(float(s) for s in layer.scale)
    translate = tuple(float(t) for t in layer.translate)
    matrix = np.asarray(layer.affine.affine_matrix, dtype=float)
    affine = None if np.allclose(matrix, np.eye(len(matrix))) else matrix
    rgb = bool(getattr(layer, "rgb", False))
    if channel_axis is None or rgb:
        return Frame(scale, translate, affine)
    ndim = len(scale)
    c = channel_axis % ndim
    if c != 0:
        return Frame(scale, translate, affine, keep_axis=c)
    if affine is not None:
        affine = np.delete(np.delete(affine, c, axis=0), c, axis=1)
    return Frame(scale[1:], translate[1:], affine)


def _limits(array: np.ndarray) -> tuple[float, float]:
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


class OutputLayers:
    """The layers one run writes into, found again (and replaced) on the next run.

    Layers are matched by their ``metadata["maskscope"]`` entry: source layer name, method
    and role (``"map"``, the name of an extra map, or ``"prediction"``).

    Parameters
    ----------
    viewer
        The napari viewer.
    source
        Name of the explained image layer.
    method
        The method's name.
    frame
        Scale, translate and affine of the outputs.
    colormap, opacity
        Look of the saliency layers (blending is additive).
    """

    def __init__(
        self,
        viewer: Any,
        *,
        source: str,
        method: str,
        frame: Frame,
        colormap: str = "inferno",
        opacity: float = 0.7,
    ) -> None:
        self.viewer = viewer
        self.source = source
        self.method = method
        self.frame = frame
        self.colormap = colormap
        self.opacity = opacity
        self.layers: dict[str, Layer] = {}
        self.last: Explanation | None = None
        self._outlined: Layer | None = None

    # ------------------------------------------------------------------ naming
    def name(self, role: str, *, partial: bool = False) -> str:
        """Layer name of a role: ``"<source> <method>[ <extra>][ (partial)]"``."""
        if role == "prediction":
            base = f"{self.source} prediction"
        elif role == "map":
            base = f"{self.source} {self.method}"
        else:
            base = f"{self.source} {self.method} {role.replace('_', '-')}"
        return f"{base} (partial)" if partial else base

    def _key(self, role: str) -> dict[str, Any]:
        method = None if role == "prediction" else self.method
        return {"source": self.source, "method": method, "role": role}

    def _matches(self, layer: Layer, role: str | None = None) -> bool:
        meta = layer.metadata.get(META_KEY)
        if not isinstance(meta, dict):
            return False
        key = self._key(role or str(meta.get("role")))
        return all(meta.get(k) == v for k, v in key.items())

    def find(self, role: str) -> Layer | None:
        """The viewer's layer for ``role`` from this or an earlier run, if any."""
        if role in self.layers and self.layers[role] in self.viewer.layers:
            return self.layers[role]
        return next((ly for ly in self.viewer.layers if self._matches(ly, role)), None)

    # ------------------------------------------------------------------ updates
    def show(self, snap: Explanation) -> None:
        """Put a snapshot's map and full-size extra maps into their layers."""
        first = self.last is None
        self.last = snap
        roles = {"map": snap.map}
        for name, arr in snap.extras.items():
            # "grid_*" extras hold per-centre values (NaN where not visited), not maps
            if np.shape(arr) == np.shape(snap.map) and not name.startswith("grid_"):
                roles[name] = arr
        if first:
            self._drop_stale(set(roles))
            self._hide_others()
        for role, arr in roles.items():
            self._set_image(role, np.asarray(arr, dtype=np.float32), snap, visible=role == "map")
        if first:
            self.viewer.layers.selection.active = self.layers["map"]  # its controls on show

    def finish(self, *, partial: bool, prediction: bool = False) -> None:
        """Mark the layers complete or partial; add the snapshot's prediction if asked."""
        snap = self.last
        if snap is None:
            return
        for role, layer in self.layers.items():
            if role == "prediction" or layer not in self.viewer.layers:
                continue
            layer.name = self.name(role, partial=partial)
            layer.metadata[META_KEY] = self._meta(role, snap, partial)
        if prediction and snap.prediction is not None:
            self._set_labels(snap, partial)

    def legend(self) -> str:
        """What the map's colours mean: its values and units, and the colour range."""
        layer = self.layers.get("map")
        if self.last is None or layer is None:
            return ""
        lo, hi = layer.contrast_limits
        what = legend_text(self.last.method, self.last.params, self.last.voxel_spacing)
        return f"colours: {what}; transparent at {lo:.3g} and below, brightest at {hi:.3g}"

    def show_prediction(self, labels: np.ndarray) -> None:
        """Put the model's own segmentation (from before the run) into its Labels layer."""
        self._labels(np.asarray(labels), {**self._key("prediction"), "partial": False})

    def outline(self, layer: Layer | None) -> None:
        """Draw a reference Labels layer as an outline, so that it hides no anatomy."""
        if isinstance(layer, Labels):
            self._outlined = layer
            if layer.contour == 0:
                layer.contour = CONTOUR

    def _outlines_on_top(self) -> None:
        """Put the prediction's and the reference's outlines above the new map."""
        for layer in (self.layers.get("prediction"), self._outlined):
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(layer), len(self.viewer.layers))

    def _hide_others(self) -> None:
        """Hide the image's maps from earlier runs of other methods: the new one shows alone."""
        for layer in self.viewer.layers:
            meta = layer.metadata.get(META_KEY)
            if not isinstance(meta, dict) or meta.get("role") == "prediction":
                continue
            if meta.get("source") == self.source and not self._matches(layer):
                layer.visible = False

    def _drop_stale(self, roles: set[str]) -> None:
        for layer in list(self.viewer.layers):
            meta = layer.metadata.get(META_KEY)
            if not self._matches(layer) or not isinstance(meta, dict):
                continue
            if meta.get("role") not in roles and meta.get("role") != "prediction":
                self.viewer.layers.remove(layer)

    def _meta(self, role: str, snap: Explanation, partial: bool) -> dict[str, Any]:
        return {
            **self._key(role),
            "partial": partial,
            "n_done": snap.n_done,
            "n_total": snap.n_total,
            "target": snap.target,
            "slices": list(snap.slices) if snap.slices is not None else None,
            "voxel_spacing": list(snap.voxel_spacing),
            "params": dict(snap.params),
        }

    def _set_image(self, role: str, data: np.ndarray, snap: Explanation, visible: bool) -> None:
        placed = self.frame.place(data)
        lo, hi = _limits(data)
        shown = robust_limits(data)
        partial = not snap.done
        layer = self.find(role)
        if layer is not None and (not isinstance(layer, Image) or layer.ndim != placed.ndim):
            self.viewer.layers.remove(layer)
            layer = None
        meta = {**self.frame.source_meta, META_KEY: self._meta(role, snap, partial)}
        if layer is None:
            layer = self.viewer.add_image(
                placed,
                name=self.name(role),
                colormap=overlay_colormap(EXTRA_COLORMAPS.get(role, self.colormap)),
                blending="translucent",
                opacity=self.opacity,
                contrast_limits=shown,
                visible=visible,
                metadata=meta,
                **self.frame.layer_kwargs(),
            )
            if role == "map":
                show_colorbar(layer)
                self._outlines_on_top()
        else:
            if role not in self.layers:  # a layer of an earlier run: take it over
                self.frame.apply(layer)
                layer.name = self.name(role)
                layer.visible = visible
            layer.data = placed
            layer.contrast_limits_range = (lo, hi)
            layer.contrast_limits = shown
            layer.metadata.update(meta)
        self.layers[role] = layer

    def _set_labels(self, snap: Explanation, partial: bool) -> None:
        assert snap.prediction is not None
        self._labels(np.asarray(snap.prediction), self._meta("prediction", snap, partial))

    def _labels(self, labels: np.ndarray, entry: dict[str, Any]) -> None:
        data = self.frame.place(labels.astype(np.int32, copy=False))
        meta = {**self.frame.source_meta, META_KEY: entry}
        layer = self.find("prediction")
        if layer is not None and (not isinstance(layer, Labels) or layer.ndim != data.ndim):
            self.viewer.layers.remove(layer)
            layer = None
        if layer is None:
            layer = self.viewer.add_labels(
                data,
                name=self.name("prediction"),
                opacity=0.8,
                metadata=meta,
                **self.frame.layer_kwargs(),
            )
            layer.contour = CONTOUR
        else:
            self.frame.apply(layer)
            layer.data = data
            layer.metadata.update(meta)
        self.layers["prediction"] = layer
