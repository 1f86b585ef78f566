"""Deletion AUC and seed agreement of maskscope's maps against their settings (no peers).

Runs maskscope's methods on the two quality cases (``cases.py``: ``shapes2d(seed=1)`` with
the bundled U-Net, nibabel's MRI volume with a MONAI U-Net trained here) for every
combination of the settings given, and scores each map exactly as ``quality.py`` does:
``maskscope.evaluate.faithfulness`` on the seed-0 map, zero substrate, ``--steps`` steps,
deletion AUC of the Dice against the model's own segmentation; the seed agreement is the
Pearson correlation of the seed-0 and seed-1 maps, beside the reliability the run
predicted. The bar is the best peer's deletion AUC at the same budget, measured by
``quality.py`` (docs/benchmarks.md, "Map quality"): ``BAR``.

    python benchmarks/deletion_sweep.py --cases shapes2d --methods SegRISE --grids 6 auto 12
    python benchmarks/deletion_sweep.py --cases mri3d --methods HDM --fills 0 min --diameters 6 8

The other seeds' maps are scored too (``deletion_seeds``, ``--seeds K``): on a small segment
one step of the Dice curve can flip the segmentation, so one map's AUC is partly luck.

A grid of ``auto`` is left to the method (its default); ``6+9`` mixes scales (the masks split
evenly, the centred maps summed). ``--hdm-view footprint`` scores HDM's per-centre values
spread over their balls (the mean over the balls covering a voxel, as the occlusion peers
build their maps) instead of its interpolated map.

    python benchmarks/deletion_sweep.py --cases shapes2d --grids 6 6+9 --seeds 4
    python benchmarks/deletion_sweep.py --methods --floor      # the segment itself as the map
    python benchmarks/deletion_sweep.py --methods --occlusion  # captum's Occlusion, rebuilt

``default`` (or ``auto``) in any list means the method's default.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES, Case  # noqa: E402

from maskscope import HDM, RISE, PixelRISE, SegRISE  # noqa: E402
from maskscope.evaluate import faithfulness, saliency_order, seed_agreement  # noqa: E402

#: method label → (class, fixed keywords)
METHODS = {
    "RISE": (RISE, {}),
    "SegRISE": (SegRISE, {}),
    "PixelRISE-mean": (PixelRISE, {"merge": "mean"}),
    "PixelRISE-max": (PixelRISE, {"merge": "max"}),
    "HDM": (HDM, {}),
    "HDM-hd95": (HDM, {"distance": "hd95"}),
    "HDM-dice": (HDM, {"distance": "dice"}),
}
#: best peer's deletion AUC (Dice) per case at quality.py's budgets (docs/benchmarks.md)
BAR = {"shapes2d": 0.0057, "mri3d": 0.346}
BUDGET = {"shapes2d": 500, "mri3d": 1000}
OCCLUDER = {"shapes2d": 25.0, "mri3d": 8.0}  # voxels, as quality.py


def value(text: str):
    """A command-line value: int, float, 'default' (None) or a string."""
    if text in ("default", "auto"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def deletion_auc(case: Case, saliency: np.ndarray, steps: int, n_random: int) -> dict:
    """quality.py's scoring: zero substrate, Dice, seed 0, batch 16."""
    res = faithfulness(
        saliency,
        model=case.model,
        image=case.image,
        steps=steps,
        n_random=n_random,
        seed=0,
        substrate="zero",
        batch_size=16,
        kinds=("deletion",),
    )
    out = {"deletion": res.deletion.auc("dice"), "deletion_prob": res.deletion.auc("probability")}
    if n_random:
        out["random"] = res.random_deletion.auc("dice")
    return out


def hdm_keywords(case: Case, n: int, setting: dict) -> dict:
    """HDM at the stride whose centre count is closest to the budget (quality.py's rule)."""
    import quality  # benchmarks/quality.py

    spatial = tuple(case.image.shape[1:])
    diameter = setting.get("diameter") or OCCLUDER[case.name]
    stride = quality.pick_stride("maskscope:HDM", spatial, round(diameter), n)
    kw = {"diameter": diameter * case.spacing[0], "stride": stride * case.spacing[0]}
    kw["voxel_spacing"], kw["sweep"] = case.spacing, "full"  # the budget: every centre
    if setting.get("fill") is not None:
        kw["fill"] = setting["fill"]
    return kw


def explain_map(case: Case, cls: type, kw: dict, seed: int):
    """(map as float64 of the image's spatial shape, the explanation) of one run.

    A grid given as ``"6+9"`` mixes scales: the masks are split evenly between the grids
    (seeds ``100 * seed + i``) and the centred maps are summed.
    """
    grid = kw.get("grid")
    if isinstance(grid, str):
        grids = [int(g) for g in grid.split("+")]
        n = kw["n_masks"] // len(grids)
        parts = [
            explain_map(case, cls, {**kw, "grid": g, "n_masks": n}, 100 * seed + i)
            for i, g in enumerate(grids)
        ]
        return sum(m for m, _ in parts), parts[0][1]
    expl = cls(case.model).explain(case.image, batch_size=16, seed=seed, **kw)
    return np.asarray(expl.map, dtype=np.float64).reshape(case.image.shape[1:]), expl


def footprint(case: Case, expl, kw: dict) -> np.ndarray:
    """An HDM map built as captum's and MONAI's are: each voxel gets the mean value of the
    centres whose ball covers it (instead of the interpolation between centres)."""
    from maskscope._engine.occlusion import CentreGrid

    spatial = tuple(case.image.shape[1:])
    grid = CentreGrid(spatial, kw["diameter"], kw["stride"], case.spacing)
    raw = np.asarray(expl.extras["grid_raw"], dtype=np.float64).ravel()
    rows, voxels = (t.numpy() for t in grid.occluded(torch.arange(grid.n_centres)))
    size = int(np.prod(spatial))
    total = np.bincount(voxels, weights=raw[rows], minlength=size)
    count = np.bincount(voxels, minlength=size)
    return (total / np.maximum(count, 1)).reshape(spatial)


def run_one(case: Case, label: str, n: int, setting: dict, args) -> dict:
    """Maps of seeds 0 … ``--seeds`` − 1 (HDM: one), seed 0 and 1's agreement, the AUCs."""
    cls, fixed = METHODS[label]
    if label.startswith("HDM"):
        kw = {**fixed, **hdm_keywords(case, n, setting)}
        seeds = [0]
    else:
        kw = {**fixed, "n_masks": n}
        kw.update({k: v for k, v in setting.items() if v is not None})
        seeds = list(range(args.seeds))
    maps, t0, record = [], time.perf_counter(), None
    for seed in seeds:
        saliency, expl = explain_map(case, cls, kw, seed)
        if label.startswith("HDM") and args.hdm_view == "footprint":
            saliency = footprint(case, expl, kw)
        maps.append(saliency)
        record = record or expl
    wall = (time.perf_counter() - t0) / len(seeds)
    row = {"case": case.name, "method": label, "n": n, **setting}
    row["grid_used"] = record.params.get("grid")
    row["wall"] = wall
    row["agreement"] = seed_agreement(maps[0], maps[1]).pearson if len(maps) > 1 else None
    rel = getattr(record, "reliability", None)
    row["reliability"] = None if rel is None or isinstance(kw.get("grid"), str) else float(rel)
    row.update(deletion_auc(case, maps[0], args.steps, args.n_random))
    # the Dice curve of a small segment jumps (one step can flip the segmentation): the
    # other seeds' AUCs show how much of a difference between settings is luck
    others = [deletion_auc(case, m, args.steps, 0)["deletion"] for m in maps[1:]]
    row["deletion_seeds"] = [row["deletion"], *others]
    row["bar"] = BAR.get(case.name)
    if case.decisive is not None:  # quality.py's share of the top 5 % on the decisive shape
        k = max(1, round(0.05 * maps[0].size))
        top = saliency_order(maps[0])[:k]
        row["decisive_top"] = float(case.decisive.ravel()[top].mean())
    return row


def occlusion_map(case: Case, n: int) -> tuple[np.ndarray, int]:
    """A sliding-window occlusion map built as captum's ``Occlusion`` builds it, in numpy.

    A cube (square) of ``OCCLUDER`` voxels filled with 0 at the stride whose position count
    is closest to ``n`` (``quality.pick_stride``); each voxel gets the mean drop of the target
    probability over the segment for the windows covering it. Returns (map, positions).
    """
    import quality  # benchmarks/quality.py

    spatial = tuple(case.image.shape[1:])
    d = int(OCCLUDER[case.name])
    stride = int(quality.pick_stride("captum:Occlusion", spatial, d, n))
    starts = [sorted({*range(0, s - d + 1, stride), s - d}) for s in spatial]
    corners = list(itertools.product(*starts))
    x = torch.from_numpy(case.image)[None]
    with torch.inference_mode():
        out = case.model(x).softmax(1)
        seg = out.argmax(1)[0] == 1
        base = float(out[0, 1][seg].mean())
        total, count = np.zeros(spatial), np.zeros(spatial)
        for k in range(0, len(corners), 16):
            chunk = corners[k : k + 16]
            xb = x.repeat(len(chunk), *(1,) * (x.ndim - 1))
            windows = [tuple(slice(c, c + d) for c in corner) for corner in chunk]
            for b, w in enumerate(windows):
                xb[(b, slice(None), *w)] = 0
            drop = base - case.model(xb).softmax(1)[:, 1][:, seg].mean(1).numpy()
            for b, w in enumerate(windows):
                total[w] += drop[b]
                count[w] += 1
    return total / np.maximum(count, 1), len(corners)


def occlusion_row(case: Case, n: int, steps: int) -> str:
    """The numpy occlusion map's deletion AUCs."""
    saliency, positions = occlusion_map(case, n)
    auc = deletion_auc(case, saliency, steps, 0)
    return (
        f"{case.name}: occlusion (numpy, {positions} positions), deletion {auc['deletion']:.4f}, "
        f"probability {auc['deletion_prob']:.4f}"
    )


def segment_floor(case: Case, steps: int) -> str:
    """Deletion AUCs of the model's segment itself as the map, centre first and edge first."""
    from scipy import ndimage

    with torch.inference_mode():
        pred = case.model(torch.from_numpy(case.image)[None]).argmax(1)[0].numpy() == 1
    depth = ndimage.distance_transform_edt(pred)
    tie = 1e-3 * np.random.default_rng(0).random(pred.shape)  # no ties in the order
    centre = deletion_auc(case, pred * (1.0 + depth) + tie, steps, 0)["deletion"]
    edge = deletion_auc(case, pred * (1.0 + depth.max() - depth) + tie, steps, 0)["deletion"]
    return (
        f"{case.name}: the segment as the map, deletion {centre:.4f} (centre first), "
        f"{edge:.4f} (edge first)"
    )


def line(row: dict) -> str:
    """One printed row."""

    def f(v, d=3):
        return "–" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))

    keys = [k for k in ("grid", "p_keep", "fill", "diameter", "sampling") if k in row]
    setting = " ".join(f"{k}={f(row[k])}" for k in keys)
    spread = " ".join(f"{a:.4f}" for a in row["deletion_seeds"][1:])
    win = "WIN" if row["bar"] is not None and row["deletion"] <= row["bar"] else ""
    return (
        f"{row['case']:9s} {row['method']:15s} N={row['n']:<5d} {setting:28s} "
        f"grid_used={f(row['grid_used'])} del={row['deletion']:.4f} "
        f"(other seeds {spread or '–'}; bar {f(row['bar'], 4)}) "
        f"prob={row['deletion_prob']:.4f} decisive={f(row.get('decisive_top'), 2)} "
        f"r={f(row['agreement'])} rel={f(row['reliability'])} {row['wall']:.1f}s {win}"
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--methods", nargs="*", default=["SegRISE"], choices=list(METHODS))
    p.add_argument("--n", type=int, default=None, help="masks / centres (default: quality.py's)")
    p.add_argument("--grids", nargs="+", type=value, default=[None])
    p.add_argument("--p-keeps", nargs="+", type=value, default=[None])
    p.add_argument("--samplings", nargs="+", type=value, default=[None])
    p.add_argument("--fills", nargs="+", type=value, default=[None], help="HDM fill")
    p.add_argument("--diameters", nargs="+", type=value, default=[None], help="HDM (voxels)")
    p.add_argument("--seeds", type=int, default=2, help="seeds 0 … K − 1 (RISE family)")
    p.add_argument("--floor", action="store_true", help="also score the segment as the map")
    p.add_argument("--occlusion", action="store_true", help="also score a numpy occlusion map")
    p.add_argument("--hdm-view", choices=("map", "footprint"), default="map")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--n-random", type=int, default=0, help="random orders (baseline)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="append the rows to this JSON-lines file")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    for name in args.cases:
        case = CASES[name]()
        n = args.n or BUDGET[name]
        if args.floor:
            print(segment_floor(case, args.steps), flush=True)
        if args.occlusion:
            print(occlusion_row(case, n, args.steps), flush=True)
        for label in args.methods:
            if label.startswith("HDM"):
                grid = [{"fill": f, "diameter": d} for f in args.fills for d in args.diameters]
            else:
                combos = itertools.product(args.grids, args.p_keeps, args.samplings)
                grid = [{"grid": g, "p_keep": p, "sampling": s} for g, p, s in combos]
            for setting in grid:
                row = run_one(case, label, n, setting, args)
                print(line(row), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
