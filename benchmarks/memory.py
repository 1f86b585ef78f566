"""Peak memory vs the number of masks: each configuration in a fresh process.

Prints the peak resident set size (RSS) of a SegRISE run at 240×240 for several N, with the
near-free model (so that only the engine's memory shows) and with the bundled U-Net, and
the ratio of the largest to the smallest N. Memory must not grow with N.

    python benchmarks/memory.py [--sizes 500,8000] [--model 1x1|unet2d]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads(1)
from common import OneByOne
from maskscope import {method}
from maskscope.data import shapes2d
from maskscope.models import load_model
model = OneByOne() if {model!r} == "1x1" else load_model("shapes2d")
image = shapes2d(seed=7).image
{method}(model).explain(image, n_masks=16, batch_size={batch})  # warm-up: allocator, kernels
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
e = {method}(model).explain(image, n_masks={n}, batch_size={batch}, **{kwargs})
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"n": {n}, "peak_mb": peak / 1024, "growth_mb": (peak - base) / 1024,
                  "wall": wall, "forwards": e.n_forward}}))
"""


def run(
    method: str,
    n: int,
    model: str,
    kwargs: dict,
    *,
    batch: int = 16,
    python: str | None = None,
    env: dict | None = None,
    timeout: float | None = None,
) -> dict:
    """Peak RSS and wall time of one ``method(model).explain`` run in a fresh process."""
    code = CHILD.format(
        bench=str(Path(__file__).parent),
        method=method,
        n=n,
        model=model,
        kwargs=kwargs,
        batch=batch,
    )
    out = subprocess.run(
        [python or sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=timeout,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,8000")
    parser.add_argument("--model", default="1x1", choices=["1x1", "unet2d"])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"model {args.model}, 240×240, batch 16, one process per row")
    print("| method | N | peak RSS (MB) | growth over warm-up (MB) | wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for method, kwargs in (("SegRISE", {}), ("PixelRISE", {"merge": "max"})):
        rows = [run(method, n, args.model, kwargs) for n in sizes]
        for r in rows:
            print(
                f"| {method} | {r['n']} | {r['peak_mb']:.0f} | {r['growth_mb']:.0f} | "
                f"{r['wall']:.1f} |",
                flush=True,
            )
        print(
            f"| {method} | ratio {sizes[-1]}/{sizes[0]} | "
            f"{rows[-1]['peak_mb'] / rows[0]['peak_mb']:.3f} | | |"
        )


if __name__ == "__main__":
    main()
