"""Colormaps and overlays to RGB arrays and PNG bytes (pillow + ``cmap``; no matplotlib)."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

__all__ = [
    "ROBUST_PERCENTILES",
    "colorize",
    "legend_text",
    "lut",
    "normalize",
    "overlay_lut",
    "overlay_rgb",
    "png_bytes",
    "robust_limits",
]

#: Percentiles of a map that the overlay's colours span: the lower half of the map is
#: transparent, so that the anatomy under it stays readable.
ROBUST_PERCENTILES = (50.0, 99.5)

#: Fraction of the colour range over which the overlay goes from transparent to opaque.
ALPHA_RAMP = 0.6


@lru_cache(maxsize=32)
def lut(name: str, n: int = 256) -> np.ndarray:
    """A colormap as an ``(n, 3)`` uint8 lookup table.

    ``name`` is any colormap known to the ``cmap`` package (``"inferno"``, ``"viridis"``,
    ``"turbo"``, ``"Blues"``, ...). Unknown names raise ``ValueError``.
    """
    from cmap import Colormap

    try:
        table = Colormap(name).lut(n)
    except Exception as exc:  # cmap raises various errors for unknown names
        raise ValueError(f"unknown colormap {name!r} ({exc})") from None
    return np.clip(np.asarray(table)[:, :3] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def normalize(
    values: np.ndarray, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """Scale to [0, 1] between ``vmin`` and ``vmax`` (the finite min and max by default)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if vmin is None:
        vmin = float(v[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(v[finite].max()) if finite.any() else 1.0
    span = vmax - vmin
    out = (v - vmin) / span if span > 0 else np.zeros_like(v)
    return np.clip(np.where(finite, out, 0.0), 0.0, 1.0)


def colorize(
    values: np.ndarray,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Map values to RGB uint8 ``(*values.shape, 3)`` with a colormap."""
    table = lut(cmap)
    idx = np.round(normalize(values, vmin, vmax) * (len(table) - 1)).astype(np.intp)
    return table[idx]


def _gray(image: np.ndarray) -> np.ndarray:
    g = normalize(image)
    return np.repeat((g * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)


def overlay_rgb(
    saliency: np.ndarray,
    image: np.ndarray | None = None,
    *,
    cmap: str = "inferno",
    alpha: float = 0.6,
    vmin: float | None = None,
    vmax: float | None = None,
    contour: np.ndarray | None = None,
    contour_color: tuple[int, int, int] = (0, 255, 255),
) -> np.ndarray:
    """Blend a 2D saliency map over a grayscale image; optionally outline a segmentation.

    Parameters
    ----------
    saliency
        2D map.
    image
        2D image of the same shape, drawn in gray underneath (omit for the map alone).
    cmap, vmin, vmax
        Colormap and its limits (the map's min and max by default).
    alpha
        Opacity of the saliency colours.
    contour
        2D label image whose non-zero region is outlined.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8.
    """
    sal = np.asarray(saliency)
    if sal.ndim != 2:
        raise ValueError(f"overlay_rgb needs a 2D saliency map, got shape {sal.shape}")
    colours = colorize(sal, cmap, vmin, vmax).astype(np.float64)
    if image is not None:
        img = np.asarray(image)
        if img.shape != sal.shape:
            raise ValueError(f"image shape {img.shape} differs from the map's {sal.shape}")
        base = _gray(img).astype(np.float64)
        colours = (1.0 - alpha) * base + alpha * colours
    rgb = np.clip(colours + 0.5, 0, 255).astype(np.uint8)
    if contour is not None:
        fg = np.asarray(contour) > 0
        from scipy import ndimage

        edge = fg & ~ndimage.binary_erosion(fg)
        rgb[edge] = contour_color
    return rgb


def png_bytes(rgb: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Encode an ``(H, W, 3)`` or ``(H, W, 4)`` uint8 array as PNG."""
    buf = io.BytesIO()
    from PIL import Image  # imported when used: `import maskscope` stays light

    Image.fromarray(np.ascontiguousarray(rgb)).save(
        buf, format="PNG", compress_level=compress_level
    )
    return buf.getvalue()


def overlay_lut(name: str = "inferno", n: int = 256) -> np.ndarray:
    """A colormap with a transparent low end: ``(n, 4)`` float RGBA in [0, 1].

    Opacity rises linearly from 0 at the bottom of the colour range to 1 at
    :data:`ALPHA_RAMP` of it, so that low values leave the image underneath visible.
    """
    rgb = lut(name, n).astype(np.float64) / 255.0
    alpha = np.clip(np.linspace(0.0, 1.0, n) / ALPHA_RAMP, 0.0, 1.0)
    return np.concatenate([rgb, alpha[:, None]], axis=1)


def robust_limits(
    values: np.ndarray, percentiles: tuple[float, float] = ROBUST_PERCENTILES
) -> tuple[float, float]:
    """Colour limits at robust percentiles of the finite values (the median and 99.5th by
    default); the min and max when those coincide; (0, 1) for no finite value."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, percentiles))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def legend_text(method: str, params: dict | None = None, voxel_spacing=()) -> str:
    """What a map's values are, with their units: the colour bar's legend.

    >>> legend_text("SegRISE", {"score": "dice"})
    'SegRISE importance (Dice units)'
    """
    params = params or {}
    if method in ("RISE", "PixelRISE"):
        return f"{method} importance (class probability units)"
    if method == "SegRISE":
        names = {"dice": "Dice", "iou": "IoU"}
        score = str(params.get("score", "dice"))
        return f"SegRISE importance ({names.get(score, score)} units)"
    if method == "HDM":
        distance = str(params.get("distance", "hausdorff"))
        if distance == "dice":
            return "HDM: Dice change when hidden (Dice units)"
        unit = "voxels" if all(float(s) == 1.0 for s in voxel_spacing) else "spacing units, mm"
        return f"HDM: {distance} change when hidden ({unit})"
    return f"{method} map"
