"""Adaptive HDM against the full sweep, and the share of HDM's time spent in the model.

For the bundled 2D and 3D samples (``shapes2d`` with its U-Net at seeds 7 and 1, whose
background has specks of noise; ``phantom3d`` with its U-Net at seeds 3 and 0, spacing
(2, 1, 1)) and the real MRI volume with its MONAI U-Net (``benchmarks/cases.py``), with
HDM's default content rule unless ``--rule`` names another, prints per case: model
evaluations of the full and the adaptive sweep and their ratio, the adaptive map's
correlation with the full map and its largest difference (absolute, and relative to the
full map's range), and for each sweep the wall time and the share of it spent inside the
model's forward. Then, per case and level of the adaptive sweep, how many centres were
evaluated and why (``grid_reasons``: the occluder hides something or a sizeable part of a
structure, what it hides changes, its neighbours differ, or the level was busy).

    python benchmarks/hdm_adaptive.py                 # every case
    python benchmarks/hdm_adaptive.py --cases phantom3d
    python benchmarks/hdm_adaptive.py --distance hd95
    python benchmarks/hdm_adaptive.py --rule hidden
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskscope import HDM
from maskscope._engine.adaptive_plan import REASONS, axis_level
from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model

sys.path.insert(0, str(Path(__file__).parent))

#: The cases, in the order printed: name -> sample seed.
SEEDS = {"shapes2d": 7, "shapes2d-s1": 1, "phantom3d": 3, "phantom3d-s0": 0, "mri3d": None}
CASES = tuple(SEEDS)


class Timed(nn.Module):
    """The model, with the seconds spent in its forward added up."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.model(x)
        self.seconds += time.perf_counter() - t0
        return out


def case(name: str):
    """(model, image, keyword arguments) of a case."""
    if name.startswith("shapes2d"):
        kw = {"diameter": 25.0, "stride": 5.0}
        return load_model("shapes2d"), shapes2d(seed=SEEDS[name]).image, kw
    if name.startswith("phantom3d"):
        ph = phantom3d(seed=SEEDS[name])
        kw = {"diameter": 16.0, "stride": 8.0, "voxel_spacing": ph.voxel_spacing}
        return load_model("phantom3d"), ph.image, kw
    from cases import mri_case

    mri = mri_case()
    kw = {"diameter": 16.0, "stride": 6.0, "voxel_spacing": mri.spacing}
    return mri.model, mri.image, kw


def run(model: nn.Module, image, kw: dict, sweep: str, distance: str):
    """One sweep: the explanation, wall seconds, seconds in the model."""
    timed = Timed(model)
    t0 = time.perf_counter()
    expl = HDM(timed).explain(image, sweep=sweep, distance=distance, **kw)
    return expl, time.perf_counter() - t0, timed.seconds


def levels(counts) -> dict[int, np.ndarray]:
    """Bool per centre of a grid of ``counts`` for each step: on that level, not a coarser one."""
    out, seen = {}, np.zeros(counts, bool)
    for h in (8, 4, 2, 1):
        on = np.ones(counts, bool)
        for ax, n in enumerate(counts):
            member = np.zeros(n, bool)
            member[axis_level(n, h)] = True
            on &= member.reshape([-1 if a == ax else 1 for a in range(len(counts))])
        out[h], seen = on & ~seen, seen | on
    return out


def why(name: str, expl) -> None:
    """Per level: centres, evaluated, and how many for each reason."""
    reasons = np.asarray(expl.extras["grid_reasons"]).astype(int)
    first = (reasons & REASONS["first"]) > 0
    lv = levels(reasons.shape)
    h0 = min(
        h for h in lv if np.array_equal(first, np.logical_or.reduce([lv[k] for k in lv if k >= h]))
    )
    for h in (k for k in lv if k <= h0):
        r = reasons[np.logical_or.reduce([lv[k] for k in lv if k >= h]) if h == h0 else lv[h]]
        parts = [f"{k} {int(((r & v) > 0).sum())}" for k, v in REASONS.items() if (r & v).any()]
        done = int((r > 0).sum())
        print(f"  {name} step {h}: {r.size} centres, {done} evaluated: " + ", ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--distance", default="hausdorff")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--rule", choices=("structures", "hidden", "change"), help="content rule (default: HDM's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rule = args.rule or HDM.Params().content_rule
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.distance}, rule {rule}")
    print(
        "| case | forwards full | forwards adaptive | fewer | correlation | max abs diff "
        "| max diff / range | wall full (s) | in model | wall adaptive (s) | in model |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    adaptive = {}
    for name in args.cases:
        model, image, kw = case(name)
        full, w_full, m_full = run(model, image, kw, "full", args.distance)
        kw_ad = kw | {"content_rule": rule}
        adapt, w_ad, m_ad = run(model, image, kw_ad, "adaptive", args.distance)
        adaptive[name] = adapt
        a, b = full.map.ravel(), adapt.map.ravel()
        corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 else float("nan")
        diff = float(np.abs(a - b).max())
        span = float(np.ptp(a)) or 1.0
        print(
            f"| {name} | {full.n_forward} | {adapt.n_forward} | "
            f"{full.n_forward / adapt.n_forward:.2f}× | {corr:.5f} | {diff:.4g} | "
            f"{diff / span:.4f} | {w_full:.1f} | {m_full / w_full:.0%} | {w_ad:.1f} | "
            f"{m_ad / w_ad:.0%} |",
            flush=True,
        )
    print("Why the adaptive sweeps evaluated what they did:")
    for name, adapt in adaptive.items():
        why(name, adapt)


if __name__ == "__main__":
    main()
