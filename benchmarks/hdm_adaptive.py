"""Adaptive HDM against the full sweep, and the share of HDM's time spent in the model.

For the bundled 2D and 3D samples (``shapes2d(seed=7)`` with its U-Net, ``phantom3d(seed=3)``
with its U-Net, spacing (2, 1, 1)), prints per case: model evaluations of the full and the
adaptive sweep and their ratio, the adaptive map's correlation with the full map and its
largest difference (absolute, and relative to the full map's range), and for each sweep the
wall time and the share of it spent inside the model's forward.

    python benchmarks/hdm_adaptive.py            # 2D and 3D
    python benchmarks/hdm_adaptive.py --only 2d
    python benchmarks/hdm_adaptive.py --distance hd95
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from maskscope import HDM
from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model


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


def cases(only: str | None):
    """(name, model name, image, keyword arguments) of each case."""
    out = []
    if only in (None, "2d"):
        kw = {"diameter": 25.0, "stride": 5.0}
        out.append(("shapes2d", "shapes2d", shapes2d(seed=7).image, kw))
    if only in (None, "3d"):
        ph = phantom3d(seed=3)
        kw = {"diameter": 16.0, "stride": 8.0, "voxel_spacing": ph.voxel_spacing}
        out.append(("phantom3d", "phantom3d", ph.image, kw))
    return out


def run(model_name: str, image, kw: dict, sweep: str, distance: str):
    """One sweep: the explanation, wall seconds, seconds in the model."""
    model = Timed(load_model(model_name))
    t0 = time.perf_counter()
    expl = HDM(model).explain(image, sweep=sweep, distance=distance, **kw)
    return expl, time.perf_counter() - t0, model.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("2d", "3d"), default=None)
    parser.add_argument("--distance", default="hausdorff")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), distance {args.distance}")
    print(
        "| case | forwards full | forwards adaptive | fewer | correlation | max abs diff "
        "| max diff / range | wall full (s) | in model | wall adaptive (s) | in model |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, model_name, image, kw in cases(args.only):
        full, w_full, m_full = run(model_name, image, kw, "full", args.distance)
        adapt, w_ad, m_ad = run(model_name, image, kw, "adaptive", args.distance)
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


if __name__ == "__main__":
    main()
