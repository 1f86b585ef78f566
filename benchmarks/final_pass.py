"""PixelRISE max's final pass in one thread and in the threads the free cores hold.

The final pass (the max over the segment's pixels, after the last model call) shares its
parts among ``usable cores // torch threads`` threads unless ``pipeline="off"``. This runs
PixelRISE max on the bundled 2D and 3D U-Nets at a fixed batch size with ``pipeline`` off
and auto, taking turns in one process, and prints the final pass's and the run's median
wall times, their ratios, and whether the maps are equal bit for bit. ``--busy K`` runs K
busy processes beside it (a shared machine).

    python benchmarks/final_pass.py                  # 2D N = 1000 and 2000, 3D N = 300
    python benchmarks/final_pass.py --busy 1 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_line, model_and_image  # noqa: E402

CASES = {"unet2d": ((1000, 2000), 8), "unet3d": ((300,), 2)}
BUSY = "while True: pass"


def timed_run(model, image, n: int, batch: int, mode: str) -> tuple[float, float, object]:
    """(wall of the run, wall of its final pass, map) of one PixelRISE max run."""
    import maskscope._engine.pixel_max as pixel_max
    from maskscope import PixelRISE

    finish = pixel_max.PixelMax.finish
    took: list[float] = []

    def timing(self, *args, **kwargs):
        t0 = time.perf_counter()
        yield from finish(self, *args, **kwargs)
        took.append(time.perf_counter() - t0)

    pixel_max.PixelMax.finish = timing
    try:
        t0 = time.perf_counter()
        expl = PixelRISE(model).explain(
            image, merge="max", n_masks=n, seed=0, batch_size=batch, pipeline=mode
        )
        wall = time.perf_counter() - t0
    finally:
        pixel_max.PixelMax.finish = finish
    return wall, sum(took), expl.map


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--busy", type=int, default=0, help="busy processes beside the runs")
    args = ap.parse_args()

    import numpy as np
    import torch

    from maskscope._engine.workers import final_workers

    torch.set_num_threads(args.threads)
    workers = final_workers("auto", torch.device("cpu"))
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    print(machine_line("cpu", args.threads))
    print(f"final pass threads with pipeline='auto': {workers}; busy processes beside: {args.busy}")
    print(
        "| model | N | batch | off: final pass (s) | auto: final pass (s) | auto ÷ off |"
        " off: run (s) | auto: run (s) | auto ÷ off | same map |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    try:
        for name in args.models:
            model, image, _ = model_and_image(name)
            sizes, batch = CASES[name]
            for n in sizes:
                runs = {"off": [], "auto": []}
                maps = {}
                for _ in range(args.repeats):
                    for mode in ("off", "auto"):
                        wall, final, m = timed_run(model, image, n, batch, mode)
                        runs[mode].append((wall, final))
                        maps.setdefault(mode, m)
                        if not np.array_equal(maps[mode], m):
                            maps[mode] = None  # one setting's runs differ from each other
                med = {
                    k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in runs.items()
                }
                same = all(v is not None for v in maps.values()) and np.array_equal(
                    maps["off"], maps["auto"]
                )
                (w_off, f_off), (w_on, f_on) = med["off"], med["auto"]
                print(
                    f"| {name} | {n} | {batch} | {f_off:.2f} | {f_on:.2f} | {f_on / f_off:.2f} "
                    f"| {w_off:.2f} | {w_on:.2f} | {w_on / w_off:.3f} "
                    f"| {'yes' if same else 'NO'} |",
                    flush=True,
                )
    finally:
        for p in busy:
            p.kill()


if __name__ == "__main__":
    main()
