"""Defaults chosen by measurement: seed agreement and deletion/insertion AUC per setting.

For each case (``cases.py``: the bundled 2D sample and the real MRI volume with a MONAI
U-Net) and each RISE-family method, every ``grid`` × ``p_keep`` pair is run with two seeds;
printed side by side: the two seeds' map correlation, the reported reliability, and the
deletion and insertion AUCs (Dice and mean target probability, zero substrate) of the seed-0
map with the random-order baseline. For HDM, each distance × fill pair: deletion AUC and the
share of the top-5 % voxels that lie on or within two voxels of the segment.

    python benchmarks/defaults.py                      # both cases
    python benchmarks/defaults.py --cases mri3d --n 1000 --grids 4 6 8
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import case_parser, cases_of

from maskscope import HDM, PixelRISE, SegRISE
from maskscope.evaluate import faithfulness

RISE_METHODS = {"SegRISE": (SegRISE, {}), "PixelRISE-mean": (PixelRISE, {"merge": "mean"})}


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def aucs(expl, model, steps: int, substrate: str = "zero") -> dict[str, float]:
    """Deletion / insertion AUCs (Dice, probability) and their random baselines."""
    res = faithfulness(
        expl, model=model, steps=steps, n_random=1, batch_size=16, substrate=substrate
    )
    out = {}
    for kind in ("deletion", "insertion"):
        curve, base = getattr(res, kind), getattr(res, f"random_{kind}")
        for score in ("dice", "probability"):
            out[f"{kind}_{score}"] = curve.auc(score)
            out[f"random_{kind}_{score}"] = base.auc(score)
    return out


def near_segment(case, expl, share: float = 0.05, margin: int = 2) -> float:
    """Fraction of the map's top ``share`` voxels on or within ``margin`` voxels of the segment."""
    seg = case.label > 0
    around = ndimage.binary_dilation(seg, iterations=margin)
    flat = expl.map.ravel()
    top = np.argsort(-flat, kind="stable")[: max(1, int(share * flat.size))]
    return float(around.ravel()[top].mean())


def rise_rows(case, n: int, grids, p_keeps, steps: int) -> None:
    for label, (cls, extra) in RISE_METHODS.items():
        method = cls(case.model)
        for grid in grids:
            for p in p_keeps:
                t0 = time.perf_counter()
                kw = {"n_masks": n, "grid": grid, "p_keep": p, "batch_size": 16, **extra}
                a = method.explain(case.image, seed=0, **kw)
                b = method.explain(case.image, seed=1, **kw)
                m = aucs(a, case.model, steps)
                print(
                    f"{case.name:9s} {label:15s} grid={grid:2d} p={p:.2f} N={n}: two seeds "
                    f"r={corr(a.map, b.map):.3f} reliability {a.reliability:.3f} | deletion "
                    f"Dice {m['deletion_dice']:.3f} (random {m['random_deletion_dice']:.3f}) "
                    f"prob {m['deletion_probability']:.3f} "
                    f"(random {m['random_deletion_probability']:.3f}) | insertion Dice "
                    f"{m['insertion_dice']:.3f} (random {m['random_insertion_dice']:.3f}) | "
                    f"on segment {near_segment(case, a):.2f} | {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )


def hdm_rows(case, steps: int, diameter: float, stride: float) -> None:
    method = HDM(case.model)
    for distance in ("hausdorff", "hd95"):
        for fill in ("min", "mean", 0.0):
            t0 = time.perf_counter()
            expl = method.explain(
                case.image,
                diameter=diameter,
                stride=stride,
                distance=distance,
                fill=fill,
                voxel_spacing=case.spacing,
                batch_size=16,
            )
            m = aucs(expl, case.model, steps)
            blur = aucs(expl, case.model, steps, "blur")
            print(
                f"{case.name:9s} HDM {distance:9s} fill={fill!s:4s}: blur-substrate deletion "
                f"Dice {blur['deletion_dice']:.3f} (random {blur['random_deletion_dice']:.3f}), "
                f"insertion Dice {blur['insertion_dice']:.3f} | zero substrate: deletion Dice "
                f"{m['deletion_dice']:.3f} (random {m['random_deletion_dice']:.3f}) prob "
                f"{m['deletion_probability']:.3f} | insertion Dice {m['insertion_dice']:.3f} "
                f"(random {m['random_insertion_dice']:.3f}) | top 5 % on or near the segment "
                f"{near_segment(case, expl):.2f} | {time.perf_counter() - t0:.0f} s",
                flush=True,
            )


def main() -> None:
    parser = case_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="masks (default 500 2D, 1000 3D)")
    parser.add_argument("--grids", nargs="+", type=int, default=[4, 6, 8, 12])
    parser.add_argument("--p-keep", nargs="+", type=float, default=[0.5, 0.25])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--no-hdm", action="store_true")
    parser.add_argument("--no-rise", action="store_true")
    args = parser.parse_args()
    for case in cases_of(args):
        n = args.n or (500 if case.image.ndim == 3 else 1000)
        grids = [g for g in args.grids if g <= min(case.image.shape[1:])]
        if not args.no_rise:
            rise_rows(case, n, grids, args.p_keep, args.steps)
        if not args.no_hdm:
            diameter, stride = (25.0, 10.0) if case.image.ndim == 3 else (16.0, 6.0)
            hdm_rows(case, args.steps, diameter, stride)


if __name__ == "__main__":
    main()
