"""Adaptive HDM's content rules, replayed on full sweeps of several samples.

Each case's full sweep is run once (Hausdorff distance); its distances are then given to
the adaptive plan (``maskscope._engine.adaptive_plan.AdaptivePlan``) as the model would
give them, once per content rule and tolerance. The plan evaluates exactly what an adaptive
run with those settings would (``tests/speed/test_adaptive_hdm.py`` checks this), so each
row costs no model call. Per case and rule it prints the forwards (with the unperturbed
input), how many times fewer than the full sweep's, and how far the adaptive grid is from
the full one: the largest difference over the map's range, and the correlation.

Cases: ``shapes2d`` (seeds 0–7; 25-pixel disks at stride 5), ``phantom3d`` (seeds 0–3;
16 mm balls at stride 8 mm, spacing (2, 1, 1)), each with its bundled U-Net, and the real MRI
volume with its MONAI U-Net (``benchmarks/cases.py``; 16 mm, stride 6 mm).

    python benchmarks/hdm_rules.py
    python benchmarks/hdm_rules.py --cases shapes2d:1 phantom3d:3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from maskscope import HDM
from maskscope._engine.adaptive_plan import AdaptivePlan
from maskscope._engine.adaptive_sweep import (
    BUSY,
    SPECK,
    default_first_step,
    hidden_content,
    hiding_centres,
    structure_centres,
)
from maskscope._engine.occlusion import CentreGrid
from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model

sys.path.insert(0, str(Path(__file__).parent))

DEFAULT_CASES = [f"shapes2d:{s}" for s in range(8)] + [f"phantom3d:{s}" for s in range(4)]
DEFAULT_CASES.append("mri3d")

#: (content_rule, content_tol, change_tol, speck) rows; the first is HDM's default.
RULES = (
    ("structures", 0.2, 0.1, SPECK),
    ("structures", 0.2, 0.1, 0.01),
    ("structures", 0.2, 0.1, 0.1),
    ("structures", 0.2, 0.2, SPECK),
    ("hidden", 0.2, None, None),
    ("change", None, 0.1, None),
    ("change", None, 0.2, None),
)


def case(name: str):
    """(model, image array, diameter, stride, spacing) of ``shapes2d:S``, ``phantom3d:S``, mri3d."""
    kind, _, seed = name.partition(":")
    if kind == "shapes2d":
        return load_model("shapes2d"), shapes2d(seed=int(seed)).image, 25.0, 5.0, (1.0, 1.0)
    if kind == "phantom3d":
        ph = phantom3d(seed=int(seed))
        return load_model("phantom3d"), ph.image, 16.0, 8.0, tuple(ph.voxel_spacing)
    from cases import mri_case

    mri = mri_case()
    return mri.model, mri.image, 16.0, 6.0, tuple(mri.spacing)


def replay(raw: np.ndarray, grid, x, diameter: float, rule, content_tol, change_tol, speck):
    """The adaptive plan driven by the full sweep's distances ``raw``: (plan, forwards)."""
    hidden = torch.zeros_like(x)  # HDM's default fill
    must = content = None
    if rule == "hidden":
        must = hiding_centres(grid, x, hidden, content_tol)
    if rule == "structures":
        must = structure_centres(grid, x, hidden, content_tol, speck=speck)
    if rule in ("structures", "change"):
        content = hidden_content(grid, x, hidden)
    plan = AdaptivePlan(
        grid.counts,
        default_first_step(grid, diameter),
        0.0,
        must=must,
        content=content,
        content_tol=change_tol or 0.0,
        busy=BUSY,
    )
    done = 0
    while not plan.finished:
        flat = np.asarray(plan.visits[done:])
        done = len(plan.visits)
        plan.record(flat, raw.flat[flat])
    return plan, int(plan.evaluated.sum()) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); rows: rule, content_tol, change_tol"
    )
    print(
        "| case | rule | content_tol | change_tol | speck | forwards | fewer "
        "| max diff / range | r |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.cases:
        model, image, diameter, stride, spacing = case(name)
        t0 = time.perf_counter()
        full = HDM(model).explain(
            image, sweep="full", diameter=diameter, stride=stride, voxel_spacing=spacing
        )
        raw = np.asarray(full.extras["grid_raw"], float)
        x = torch.as_tensor(np.asarray(image, np.float32))
        x = x[None, None] if x.ndim == len(spacing) else x[None]
        grid = CentreGrid(x.shape[2:], diameter, stride, spacing)
        span = float(np.ptp(raw)) or 1.0
        for rule, ctol, chtol, speck in RULES:
            plan, n = replay(raw, grid, x, diameter, rule, ctol, chtol, speck)
            diff = float(np.abs(plan.values - raw).max()) / span
            r = float(np.corrcoef(raw.ravel(), plan.values.ravel())[0, 1]) if raw.std() else 1.0
            print(
                f"| {name} | {rule} | {ctol if ctol is not None else '–'} | "
                f"{chtol if chtol is not None else '–'} | {speck if speck else '–'} | "
                f"{n} | {full.n_forward / n:.2f}× | "
                f"{diff:.3f} | {r:.4f} |",
                flush=True,
            )
        wall = time.perf_counter() - t0
        print(f"<!-- {name}: full sweep of {full.n_forward} forwards, {wall:.0f} s -->")


if __name__ == "__main__":
    main()
