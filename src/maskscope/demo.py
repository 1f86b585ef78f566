"""``maskscope demo``: every method on the bundled samples, with figures and a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .explanation import Explanation
from .methods import HDM, RISE, PixelRISE, SegRISE
from .methods.hdm import circle_map
from .render import overlay_rgb

__all__ = ["DemoResult", "run_demo", "saliency_fractions"]


@dataclass
class DemoResult:
    """One explanation of the demo and how its saliency is distributed."""

    label: str
    sample: str
    explanation: Explanation
    wall: float
    fractions: dict[str, float]


def saliency_fractions(saliency: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
    """Where the saliency falls.

    With ``s = map − min(map)`` (so that every map counts from 0), returns for each region
    ``"<name>"`` the fraction ``Σ_region s / Σ s`` and ``"<name>/background"`` the ratio of
    the mean of ``s`` per pixel on the region to its mean on the background (pixels in no
    region).
    """
    s = np.asarray(saliency, dtype=np.float64)
    s = s - s.min()
    total = s.sum()
    background = ~np.any(np.stack(list(regions.values())), axis=0)
    bg_mean = s[background].mean() if background.any() else 0.0
    out = {}
    for name, mask in regions.items():
        out[name] = float(s[mask].sum() / total) if total > 0 else 0.0
        out[f"{name}/background"] = float(s[mask].mean() / bg_mean) if bg_mean > 0 else np.inf
    return out


def _settings(quick: bool) -> dict[str, Any]:
    return {
        "n_2d": 200 if quick else 1000,
        "hdm_2d": {"diameter": 25.0, "stride": 10.0 if quick else 5.0},
        "n_3d": 48 if quick else 300,
        "hdm_3d": {"diameter": 16.0, "stride": 24.0 if quick else 12.0},
        "bs_2d": 16,
        "bs_3d": 4,
    }


def _run(label: str, sample: str, explainer, image, regions, **kwargs) -> DemoResult:
    t0 = time.perf_counter()
    expl = explainer.explain(image, progress=True, **kwargs)
    wall = time.perf_counter() - t0
    return DemoResult(label, sample, expl, wall, saliency_fractions(expl.map, regions))


def _titled(rgb: np.ndarray, title: str, scale: int = 1) -> Image.Image:
    img = Image.fromarray(rgb)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (img.width, img.height + 18), "white")
    canvas.paste(img, (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), title, fill="black")
    return canvas


def _row(panels: list[Image.Image]) -> Image.Image:
    width = sum(p.width for p in panels) + 4 * (len(panels) - 1)
    out = Image.new("RGB", (width, max(p.height for p in panels)), "white")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + 4
    return out


def _demo_2d(out: Path, s: dict[str, Any]) -> list[DemoResult]:
    from .data import shapes2d
    from .models import load_model

    sample = shapes2d(seed=7)
    model = load_model("shapes2d")
    seg_name = "triangle" if sample.right_shape == "circle" else "cross"
    regions = {"segment": sample.masks[seg_name], "right shape": sample.masks[sample.right_shape]}
    rise = {"n_masks": s["n_2d"], "grid": 8, "p_keep": 0.5, "batch_size": s["bs_2d"], "seed": 0}
    runs = [
        ("RISE", RISE(model), rise),
        ("PixelRISE mean", PixelRISE(model), {**rise, "merge": "mean"}),
        ("PixelRISE max", PixelRISE(model), {**rise, "merge": "max"}),
        ("SegRISE", SegRISE(model), rise),
        ("HDM", HDM(model), {**s["hdm_2d"], "batch_size": s["bs_2d"]}),
    ]
    results = [_run(label, "shapes 2D", m, sample.image, regions, **kw) for label, m, kw in runs]
    panels = [
        _titled(
            overlay_rgb(
                sample.image[0], sample.image[0], cmap="gray", alpha=0.0, contour=sample.label
            ),
            "input + label",
        )
    ]
    for r in results:
        slug = r.label.lower().replace(" ", "_")
        r.explanation.to_png(out / f"2d_{slug}.png")
        r.explanation.save(out / f"2d_{slug}.npz")
        panels.append(
            _titled(overlay_rgb(r.explanation.map, sample.image[0], contour=sample.label), r.label)
        )
    _row(panels).save(out / "2d_all_methods.png")
    hdm = results[-1].explanation
    views = [
        (v, c) for v, c in (("raw", "Blues"), ("better_only", "Greens"), ("worse_only", "Reds"))
    ]
    _row([_titled(circle_map(hdm, v, cmap=c), f"HDM {v}") for v, c in views]).save(
        out / "2d_hdm_circles.png"
    )
    return results


def _slices_figure(expl: Explanation, label: str, path: Path, n: int = 5) -> None:
    ref = expl.reference
    zs = np.nonzero(ref.any(axis=(1, 2)))[0] if ref is not None and ref.any() else None
    if zs is None or len(zs) == 0:
        zs = np.arange(expl.map.shape[0])
    picks = np.unique(np.linspace(zs.min(), zs.max(), n).round().astype(int))
    vmin, vmax = float(expl.map.min()), float(expl.map.max())
    panels = [
        _titled(
            overlay_rgb(
                expl.map[z],
                expl.image[0, z],
                vmin=vmin,
                vmax=vmax,
                contour=None if ref is None else ref[z],
            ),
            f"{label} z={z}",
            scale=2,
        )
        for z in picks
    ]
    _row(panels).save(path)


def _demo_3d(out: Path, s: dict[str, Any]) -> list[DemoResult]:
    from .data import phantom3d
    from .models import load_model

    sample = phantom3d(seed=3)
    model = load_model("phantom3d")
    target = sample.label.astype(bool)
    regions = {"segment": target}
    common = {"voxel_spacing": sample.voxel_spacing, "batch_size": s["bs_3d"]}
    runs = [
        ("SegRISE", SegRISE(model), {**common, "n_masks": s["n_3d"], "grid": 6, "seed": 0}),
        ("HDM", HDM(model), {**common, **s["hdm_3d"]}),
    ]
    results = [_run(label, "phantom 3D", m, sample.image, regions, **kw) for label, m, kw in runs]
    for r in results:
        slug = r.label.lower()
        r.explanation.save(out / f"3d_{slug}.npz")
        _slices_figure(r.explanation, r.label, out / f"3d_{slug}_slices.png")
    return results


def summary_table(results: list[DemoResult]) -> str:
    """A markdown table: method, forwards, wall time, where the saliency falls."""
    lines = [
        "| sample | method | forwards | wall (s) | on segment | on right shape "
        "| right shape / background (per pixel) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r.fractions
        right = f.get("right shape")
        ratio = f.get("right shape/background")
        lines.append(
            f"| {r.sample} | {r.label} | {r.explanation.n_forward} | {r.wall:.1f} | "
            f"{f['segment']:.1%} | {'' if right is None else f'{right:.1%}'} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} |"
        )
    return "\n".join(lines)


def run_demo(
    out: Path, *, quick: bool = False, with_3d: bool = True, napari: bool = False
) -> list[DemoResult]:
    """Explain the bundled 2D sample with every method (and the 3D phantom), write figures.

    Parameters
    ----------
    out
        Output folder (created).
    quick
        Small settings: under a minute on two CPU cores.
    with_3d
        Also explain the 3D phantom with SegRISE and HDM.
    napari
        Open napari with the samples, the results as layers and the plugin docked.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = _settings(quick)
    results = _demo_2d(out, s)
    if with_3d:
        results += _demo_3d(out, s)
    table = summary_table(results)
    (out / "summary.md").write_text(
        "# maskscope demo\n\nSaliency s = map − min(map). 'on X' = Σ_X s / Σ s; the last "
        "column compares the mean s per pixel on the right-hand shape (not part of the "
        "segment, but it decides what is segmented) with the background.\n\n" + table + "\n"
    )
    print("\n" + table)
    print(f"\nwrote {len(list(out.iterdir()))} files to {out}/")
    if napari:
        from .napari import show_demo_results

        show_demo_results(results)
    return results
