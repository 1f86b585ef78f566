"""A readable PNG figure of an explanation: enlarged slice, colour bar, method and slice.

``maskscope explain --png`` writes this. The slice is enlarged with nearest-neighbour
sampling until its short side is at least ``min_size`` pixels (voxels stay blocks of their
physical aspect, the voxel spacing's, and nothing is invented between them); the map is
drawn over the image (a 2D picture of three channels in its colours, or else the first
channel in gray) with the overlay colormap (transparent low end, robust limits over the
slices explained, as in napari), the reference outlined; a title names the method and the
slice, and a colour bar gives the values with their units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .render import colorize, legend_text, normalize, overlay_lut, png_bytes, robust_limits

__all__ = ["figure_png", "figure_rgb"]

_BAR_WIDTH = 22
_MARGIN = 10


_AXIS_NAMES = ("first", "second", "third")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes: the bitmap font
        return ImageFont.load_default()


def _blend(saliency: np.ndarray, image: np.ndarray | None, cmap: str, limits, opacity: float):
    lo, hi = limits
    t = normalize(saliency, lo, hi)
    table = overlay_lut(cmap)
    idx = np.round(t * (len(table) - 1)).astype(np.intp)
    colours = table[idx, :3] * 255.0
    alpha = table[idx, 3:] * opacity
    if image is None:
        base = np.zeros_like(colours)
    else:  # a colour picture's three channels share their limits, so its hues stay
        g = normalize(image, *robust_limits(image, (0.5, 99.5))) * 255.0
        base = g if g.ndim == 3 else np.repeat(g[..., None], 3, axis=-1)
    return np.clip((1.0 - alpha) * base + alpha * colours + 0.5, 0, 255).astype(np.uint8)


def _background(image: np.ndarray, map_ndim: int, pick) -> np.ndarray:
    """The slice drawn under the map: a 2D picture's three channels as its colours, or
    else the first channel (a volume's channels are modalities, not colours)."""
    if map_ndim == 2 and image.ndim == 3 and image.shape[0] == 3:
        return np.moveaxis(np.asarray(image, dtype=np.float64), 0, -1)
    return pick(image[0])


def _outline(rgb: np.ndarray, contour: np.ndarray, colour=(0, 255, 255)) -> None:
    from scipy import ndimage

    fg = np.asarray(contour) > 0
    rgb[fg & ~ndimage.binary_erosion(fg)] = colour


#: The largest stretch of a slice's axis to its voxels' aspect.
MAX_ASPECT = 16.0


def _enlarged_shape(shape: tuple[int, ...], spacing: tuple[float, ...], min_size: int):
    """Pixels per axis of a slice of ``shape`` shown with its voxels' physical aspect."""
    sy, sx = tuple(float(s) for s in spacing[-2:]) if len(spacing) >= 2 else (1.0, 1.0)
    finest = min(sy, sx)
    # pixels per voxel along y and x, before scaling; a header's odd spacing (2000 : 1)
    # must not make a picture of millions of pixels
    aspect = (min(sy / finest, MAX_ASPECT), min(sx / finest, MAX_ASPECT))
    natural = [n * a for n, a in zip(shape[:2], aspect, strict=True)]
    factor = max(1.0, min_size / min(natural))
    return tuple(max(n, round(v * factor)) for n, v in zip(shape[:2], natural, strict=True))


def slice_spacing(expl: Any, axis: int | None, z: int | None) -> tuple[float, ...]:
    """The voxel spacing of the slice shown (``z`` across ``axis``; None: a 2D map)."""
    spacing = tuple(expl.voxel_spacing or ())
    if z is not None and len(spacing) >= 3:
        spacing = spacing[-3:][:axis] + spacing[-3:][axis + 1 :]
    return spacing


def with_aspect(rgb: np.ndarray, spacing: tuple[float, ...], min_size: int = 0) -> np.ndarray:
    """``rgb`` enlarged (nearest neighbour) to its voxels' physical aspect, and to at least
    ``min_size`` pixels on its shorter side."""
    return _enlarge(rgb, _enlarged_shape(rgb.shape, spacing, min_size))


def _enlarge(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour enlargement of the first two axes of ``arr`` to ``size``."""
    rows = (np.arange(size[0]) * arr.shape[0]) // size[0]
    cols = (np.arange(size[1]) * arr.shape[1]) // size[1]
    return arr[rows][:, cols]


def _colour_bar(canvas, draw, x: int, top: int, height: int, cmap: str, limits, font) -> None:
    from PIL import Image

    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(_BAR_WIDTH, axis=1)
    canvas.paste(Image.fromarray(colorize(ramp, cmap, 0.0, 1.0)), (x, top))
    draw.rectangle((x, top, x + _BAR_WIDTH - 1, top + height - 1), outline="black")
    lo, hi = limits
    for frac in (0.0, 0.5, 1.0):
        y = top + round((1.0 - frac) * (height - 1))
        draw.line((x + _BAR_WIDTH, y, x + _BAR_WIDTH + 4, y), fill="black")
        draw.text(
            (x + _BAR_WIDTH + 7, y),
            f"{lo + frac * (hi - lo):.3g}",
            fill="black",
            font=font,
            anchor="lm",
        )


def figure_rgb(
    expl: Any,
    *,
    view: str = "map",
    slice_index: int | None = None,
    axis: int | None = None,
    cmap: str = "inferno",
    opacity: float = 0.8,
    min_size: int = 512,
) -> np.ndarray:
    """The figure as an ``(H, W, 3)`` uint8 array (see :func:`figure_png`)."""
    from PIL import Image, ImageDraw

    arr = expl.extras.get(view) if view in expl.extras else getattr(expl, view, None)
    if not isinstance(arr, np.ndarray):
        valid = ["map", *(["stderr"] if expl.stderr is not None else []), *expl.extras]
        raise ValueError(f"view must be one of {valid}, got {view!r}")
    axis, z = expl.view_slice(slice_index, axis)
    pick = (lambda a: a) if z is None else (lambda a: np.take(a, z, axis=axis))
    spacing = slice_spacing(expl, axis, z)
    image = None if expl.image is None else _background(expl.image, arr.ndim, pick)
    # the colour range of what was explained: a 2D model's slices not computed hold 0
    explained = arr[list(expl.slices)] if expl.slices and arr.ndim == 3 else arr
    limits = robust_limits(explained)
    rgb = _blend(pick(arr), image, cmap, limits, opacity)
    size = _enlarged_shape(rgb.shape, spacing, min_size)
    rgb = _enlarge(rgb, size)
    if expl.reference is not None:
        _outline(rgb, _enlarge(np.asarray(pick(expl.reference)), size))
    panel = Image.fromarray(np.ascontiguousarray(rgb))
    font, small = _font(18), _font(14)
    head = 56
    width = panel.width + 2 * _MARGIN + _BAR_WIDTH + 70
    canvas = Image.new("RGB", (width, panel.height + head + _MARGIN), "white")
    canvas.paste(panel, (_MARGIN, head))
    draw = ImageDraw.Draw(canvas)
    where = "" if z is None else f" · slice {z} of {arr.shape[axis]} ({_AXIS_NAMES[axis]} axis)"
    draw.text((_MARGIN, 6), f"{expl.method}{where}", fill="black", font=font)
    legend = legend_text(expl.method, expl.params, expl.voxel_spacing)
    draw.text(
        (_MARGIN, 32), f"{legend}; transparent below {limits[0]:.3g}", fill="black", font=small
    )
    _colour_bar(canvas, draw, _MARGIN * 2 + panel.width, head, panel.height, cmap, limits, small)
    return np.asarray(canvas)


def figure_png(expl: Any, path: str | Path | None = None, **kwargs: Any) -> bytes:
    """A readable PNG of one slice of an explanation.

    Parameters
    ----------
    expl
        An :class:`~maskscope.explanation.Explanation`.
    path
        Also write the PNG here.
    **kwargs
        ``view`` (``"map"``, ``"stderr"`` or an extra map), ``axis`` and ``slice_index``
        (3D: see :meth:`~maskscope.explanation.Explanation.view_slice`; by default the
        scan's slice direction, and the reference's centre along it), ``cmap``, ``opacity`` and
        ``min_size`` (the short side of the enlarged slice, pixels; default 512).

    Returns
    -------
    bytes
        The PNG file's content.
    """
    data = png_bytes(figure_rgb(expl, **kwargs))
    if path is not None:
        Path(path).write_bytes(data)
    return data
