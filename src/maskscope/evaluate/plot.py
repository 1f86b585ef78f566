"""Draw deletion and insertion curves as a PNG with Pillow (no plotting library needed)."""

from __future__ import annotations

import io
import itertools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .result import Curve, FaithfulnessResult

__all__ = ["curves_png"]

MAP_COLOUR = (94, 53, 177)  # the docs' deep purple
RANDOM_COLOUR = (150, 150, 150)
AXIS_COLOUR = (60, 60, 60)
GRID_COLOUR = (225, 225, 225)
SCORE_LABELS = {"dice": "Dice vs reference", "probability": "mean target probability"}


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _points(curve: Curve, score: str, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    ys = curve.scores(score)
    pts = []
    for f, v in zip(curve.fractions, ys, strict=True):
        if np.isfinite(v):
            pts.append((x0 + f * (x1 - x0), y1 - float(np.clip(v, 0, 1)) * (y1 - y0)))
    return pts


def _dashed(draw, pts: list[tuple[float, float]], colour, width: int, dash: float = 7.0) -> None:
    """A dashed polyline: alternate drawn and skipped pieces of length ``dash``."""
    on, left = True, dash
    for (ax, ay), (bx, by) in itertools.pairwise(pts):
        seg = float(np.hypot(bx - ax, by - ay))
        pos = 0.0
        while pos < seg:
            step = min(left, seg - pos)
            if on:
                t0, t1 = pos / seg, (pos + step) / seg
                draw.line(
                    [
                        (ax + (bx - ax) * t0, ay + (by - ay) * t0),
                        (ax + (bx - ax) * t1, ay + (by - ay) * t1),
                    ],
                    fill=colour,
                    width=width,
                )
            pos += step
            left -= step
            if left <= 1e-9:
                on, left = not on, dash


def _panel(draw, box, title: str, curve: Curve, base: Curve | None, score: str, fonts) -> None:
    x0, y0, x1, y1 = box
    small, normal = fonts
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        gx, gy = x0 + t * (x1 - x0), y1 - t * (y1 - y0)
        draw.line([(gx, y0), (gx, y1)], fill=GRID_COLOUR)
        draw.line([(x0, gy), (x1, gy)], fill=GRID_COLOUR)
        draw.text((gx, y1 + 4), f"{t:g}", fill=AXIS_COLOUR, font=small, anchor="ma")
        draw.text((x0 - 5, gy), f"{t:g}", fill=AXIS_COLOUR, font=small, anchor="rm")
    draw.rectangle([x0, y0, x1, y1], outline=AXIS_COLOUR)
    draw.text(((x0 + x1) / 2, y0 - 6), title, fill=(0, 0, 0), font=normal, anchor="md")
    legend = []
    if base is not None:
        pts = _points(base, score, box)
        if len(pts) > 1:
            _dashed(draw, pts, RANDOM_COLOUR, 2)
        legend.append((f"random order  AUC {_fmt(base.auc(score))}", RANDOM_COLOUR))
    pts = _points(curve, score, box)
    if len(pts) > 1:
        draw.line(pts, fill=MAP_COLOUR, width=3, joint="curve")
    legend.insert(0, (f"saliency order  AUC {_fmt(curve.auc(score))}", MAP_COLOUR))
    # where the curves are not: deletion falls early (top right free), insertion rises
    # early (bottom right free)
    top = curve.kind == "deletion"
    anchor = "ra" if top else "rd"
    for i, (text, colour) in enumerate(legend):
        at = (x1 - 8, y0 + 8 + 16 * i if top else y1 - 8 - 16 * (len(legend) - 1 - i))
        draw.rectangle(draw.textbbox(at, text, font=small, anchor=anchor), fill="white")
        draw.text(at, text, fill=colour, font=small, anchor=anchor)


def _fmt(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else "…"


def curves_png(result: FaithfulnessResult, *, width: int = 880) -> bytes:
    """The result's curves as PNG bytes.

    Columns deletion / insertion and rows Dice / probability; below 600 pixels wide (a
    dock), one panel per row.
    """
    from PIL import Image, ImageDraw

    kinds = [k for k in ("deletion", "insertion") if getattr(result, k) is not None]
    scores = list(getattr(result, kinds[0]).runs) if kinds else []
    if not kinds:
        raise ValueError("this result has no curve to plot")
    width = max(int(width), 280)
    columns = len(kinds) if width >= 600 else 1  # narrow (a dock): one panel per row
    pw = width // columns
    ph = int(pw * (0.72 if columns > 1 else 0.6))
    header = 34
    if columns > 1:  # rows: scores; columns: kinds
        panels = [(score, kind) for score in scores for kind in kinds]
    else:
        panels = [(score, kind) for kind in kinds for score in scores]
    n_rows = -(-len(panels) // columns)
    img = Image.new("RGB", (width, header + ph * n_rows), "white")
    draw = ImageDraw.Draw(img)
    fonts = (_font(11), _font(13))
    title = f"{result.method or 'map'}: deletion and insertion ({result.substrate})"
    if not result.done:
        title += " — in progress"
    draw.text((width / 2, 8), title, fill=(0, 0, 0), font=_font(15), anchor="ma")
    for i, (score, kind) in enumerate(panels):
        row, col = divmod(i, columns)
        top = header + row * ph
        box = (col * pw + 52, top + 26, (col + 1) * pw - 14, top + ph - 36)
        label = f"{kind}: {SCORE_LABELS.get(score, score)}"
        curve, base = getattr(result, kind), getattr(result, f"random_{kind}")
        _panel(draw, box, label, curve, base, score, fonts)
        moved = "removed" if kind == "deletion" else "inserted"
        of = "the window's voxels" if result.window is not None else "voxels"
        at = ((box[0] + box[2]) / 2, box[3] + 18)
        draw.text(at, f"fraction of {of} {moved}", fill=AXIS_COLOUR, font=fonts[0], anchor="ma")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
