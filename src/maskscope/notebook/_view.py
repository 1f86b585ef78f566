"""The image view: one 2D slice of the image with the saliency overlay, as a PNG.

Only the visible slice is rendered and sent, so a 3D volume costs what one slice costs.
"""

from __future__ import annotations

import threading

import ipywidgets as widgets
import numpy as np
from PIL import Image

from .. import Explanation
from ..render import overlay_rgb, png_bytes

__all__ = ["COLORMAPS", "ImageView", "map_of", "render_slice", "views_of"]

#: Colormaps offered by the widget (any name known to the ``cmap`` package works).
COLORMAPS = ("inferno", "magma", "viridis", "plasma", "cividis", "turbo", "hot", "gray")


def views_of(expl: Explanation | None) -> list[str]:
    """The maps an explanation can show: ``"map"``, ``"stderr"`` and its map-sized extras."""
    if expl is None:
        return ["map"]
    out = ["map"]
    if expl.stderr is not None:
        out.append("stderr")
    return out + [k for k, v in expl.extras.items() if np.shape(v) == expl.map.shape]


def map_of(expl: Explanation, view: str) -> np.ndarray:
    """The named map of an explanation (``"map"`` when the name is not available)."""
    if view == "stderr" and expl.stderr is not None:
        return expl.stderr
    if view in expl.extras and np.shape(expl.extras[view]) == expl.map.shape:
        return expl.extras[view]
    return expl.map


def _take(arr: np.ndarray, axis: int | None, index: int | None) -> np.ndarray:
    return arr if axis is None else np.take(arr, index, axis=axis)


def render_slice(
    image: np.ndarray,
    values: np.ndarray | None = None,
    *,
    axis: int | None = None,
    index: int | None = None,
    channel: int = 0,
    cmap: str = "inferno",
    alpha: float = 0.6,
    contour: np.ndarray | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    spacing: tuple[float, ...] | None = None,
    min_size: int = 320,
) -> np.ndarray:
    """Render one slice of the image with a saliency overlay to RGB.

    Parameters
    ----------
    image
        ``(C, *spatial)``.
    values
        A saliency map of shape ``spatial``, or None for the image alone.
    axis, index
        For a volume, the spatial axis (0, 1 or 2) and the index along it.
    channel
        The image channel drawn in gray.
    cmap, alpha, vmin, vmax
        Colormap, opacity and colour limits of the overlay.
    contour
        A label image of shape ``spatial`` to outline, or None.
    spacing
        Physical voxel size per spatial axis: the slice is stretched to its physical
        aspect ratio.
    min_size
        Small slices are enlarged (nearest neighbour) until their longer side reaches this.

    Returns
    -------
    np.ndarray
        ``(h, w, 3)`` uint8.
    """
    img = _take(np.asarray(image)[channel], axis, index)
    if values is None:
        rgb = overlay_rgb(np.zeros(img.shape), img, alpha=0.0)
    else:
        sal = _take(np.asarray(values), axis, index)
        ref = None if contour is None else _take(np.asarray(contour), axis, index)
        rgb = overlay_rgb(sal, img, cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, contour=ref)
    return _resize(rgb, _plane_spacing(spacing, axis), min_size)


def _plane_spacing(spacing: tuple[float, ...] | None, axis: int | None) -> tuple[float, float]:
    if not spacing:
        return (1.0, 1.0)
    sp = list(spacing)
    if axis is not None:
        del sp[axis]
    return (float(sp[-2]), float(sp[-1]))


def _resize(rgb: np.ndarray, spacing: tuple[float, float], min_size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    sy, sx = spacing
    unit = min(sy, sx)
    ph, pw = h * sy / unit, w * sx / unit  # physical aspect, in the finer pixel size
    scale = max(1.0, min_size / max(ph, pw))
    if scale > 1.0:
        scale = float(np.ceil(scale))  # whole multiples keep pixels square and crisp
    size = (max(1, round(pw * scale)), max(1, round(ph * scale)))
    if size == (w, h):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.NEAREST))


class ImageView:
    """An ``ipywidgets.Image`` showing one slice of the image and the explanation.

    :meth:`show` may be called from any thread; renders are serialised by a lock and
    the last call wins.

    Attributes
    ----------
    widget
        The ``ipywidgets.Image`` (PNG).
    n_renders
        Number of PNGs sent so far.
    """

    def __init__(self, image: np.ndarray, spacing: tuple[float, ...] | None = None) -> None:
        self.image = image
        self.spacing = spacing
        self.widget = widgets.Image(format="png")
        self.widget.add_class("maskscope-image")
        self.n_renders = 0
        self._lock = threading.RLock()
        self._limits_of: tuple[Explanation, str] | None = None
        self._limits: tuple[float | None, float | None] = (None, None)

    def show(
        self,
        expl: Explanation | None,
        *,
        view: str = "map",
        axis: int | None = None,
        index: int | None = None,
        cmap: str = "inferno",
        alpha: float = 0.6,
        contour: bool = True,
        channel: int = 0,
    ) -> bytes:
        """Render and send the slice; returns the PNG bytes."""
        with self._lock:
            values = ref = vmin = vmax = None
            if expl is not None:
                values = map_of(expl, view)
                vmin, vmax = self._color_limits(expl, view, values)
                ref = expl.reference if contour else None
            rgb = render_slice(
                self.image,
                values,
                axis=axis,
                index=index,
                channel=channel,
                cmap=cmap,
                alpha=alpha,
                contour=ref,
                vmin=vmin,
                vmax=vmax,
                spacing=self.spacing,
            )
            data = png_bytes(rgb, compress_level=1)
            self.widget.value = data
            self.n_renders += 1
            return data

    def _color_limits(self, expl: Explanation, view: str, values: np.ndarray):
        """Limits over the whole map, so that every slice of a volume uses the same colours."""
        last = self._limits_of
        if last is None or last[0] is not expl or last[1] != view:
            finite = values[np.isfinite(values)]
            lo = float(finite.min()) if finite.size else None
            hi = float(finite.max()) if finite.size else None
            self._limits_of, self._limits = (expl, view), (lo, hi)
        return self._limits
