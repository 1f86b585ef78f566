"""How much mixed precision and compilation change the map, against float32.

For the bundled 2D and 3D U-Nets (``shapes2d(seed=7)``, ``phantom3d(seed=3)``), runs SegRISE
and HDM in float32, then with ``precision="bfloat16"``, ``precision="float16"`` and
``compile=True``, with the same seed and a fixed batch size, and prints each variant's
correlation with the float32 map, its largest absolute difference, that difference over
the float32 map's range, and the wall time (on a CPU without bfloat16 units autocast is
slower than float32; the speed belongs to GPUs).

    python benchmarks/precision.py
    python benchmarks/precision.py --only 2d --variants bfloat16,compile
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from maskscope import HDM, SegRISE
from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model

VARIANTS = {
    "bfloat16": {"precision": "bfloat16"},
    "float16": {"precision": "float16"},
    "compile": {"compile": True},
}


def cases(only: str | None):
    """(case, model name, image, [(method, class, keyword arguments)])."""
    out = []
    if only in (None, "2d"):
        methods = [
            ("SegRISE", SegRISE, {"n_masks": 200, "grid": 8, "batch_size": 8}),
            ("HDM", HDM, {"diameter": 25.0, "stride": 10.0, "batch_size": 8}),
        ]
        out.append(("shapes2d", "shapes2d", shapes2d(seed=7).image, methods))
    if only in (None, "3d"):
        ph = phantom3d(seed=3)
        sp = {"voxel_spacing": ph.voxel_spacing, "batch_size": 2}
        methods = [
            ("SegRISE", SegRISE, {"n_masks": 48, "grid": 6, **sp}),
            ("HDM", HDM, {"diameter": 16.0, "stride": 16.0, **sp}),
        ]
        out.append(("phantom3d", "phantom3d", ph.image, methods))
    return out


def compare(base: np.ndarray, other: np.ndarray) -> tuple[float, float, float]:
    """Correlation, max abs difference, max difference over the base map's range."""
    a, b = base.ravel(), other.ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    diff = float(np.abs(a - b).max())
    return corr, diff, diff / (float(np.ptp(a)) or 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("2d", "3d"), default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    print("| case | method | variant | correlation | max abs diff | / range | wall (s) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for case, model_name, image, methods in cases(args.only):
        model = load_model(model_name)
        for label, cls, kw in methods:
            t0 = time.perf_counter()
            base = cls(model).explain(image, seed=1, **kw).map
            wall = time.perf_counter() - t0
            print(f"| {case} | {label} | float32 | 1 | 0 | 0 | {wall:.1f} |", flush=True)
            for name in variants:
                t0 = time.perf_counter()
                got = cls(model, **VARIANTS[name]).explain(image, seed=1, **kw).map
                wall = time.perf_counter() - t0
                corr, diff, rel = compare(base, got)
                print(
                    f"| {case} | {label} | {name} | {corr:.5f} | {diff:.3g} | {rel:.4f} | "
                    f"{wall:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
