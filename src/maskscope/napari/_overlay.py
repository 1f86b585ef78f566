"""The look of maskscope's layers: a saliency overlay that leaves the anatomy readable.

- Colours span robust percentiles of the map (:data:`maskscope.render.ROBUST_PERCENTILES`);
  the colormap's low end is transparent (:func:`maskscope.render.overlay_lut`), blended
  translucently, so the lower half of the map shows the image unchanged.
- A colour bar on the canvas (napari's layer colorbar overlay).
- Segmentations (the prediction, the reference) drawn as outlines.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from napari.utils.colormaps import Colormap

from ..render import overlay_lut

__all__ = ["CONTOUR", "overlay_colormap", "show_colorbar"]

#: Outline width of segmentation layers (napari Labels ``contour``).
CONTOUR = 1


@lru_cache(maxsize=16)
def overlay_colormap(name: str = "inferno") -> Colormap:
    """``name`` with a transparent low end, as a napari colormap ``"<name> overlay"``."""
    return Colormap(
        colors=overlay_lut(name), name=f"{name} overlay", display_name=f"{name} overlay"
    )


def show_colorbar(layer: Any) -> None:
    """Show the layer's colour bar on the canvas, when this napari has one (≥ 0.5)."""
    colorbar = getattr(layer, "colorbar", None)
    if colorbar is not None:
        colorbar.visible = True
