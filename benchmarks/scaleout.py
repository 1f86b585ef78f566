"""Scale-out: cases per minute on Dask workers, and the cost per case over a plain loop.

The dataset is the bundled 3D sample (``phantom3d``, 64×96×96) written as NIfTI volumes
(seeds 0, 1, ...), explained with the bundled 3D U-Net by SegRISE. Three ways, on the same
cases and the same cores:

- a plain loop: the model loaded once, then read, ``explain``, write the map and the
  explanation, case by case (all the cores' torch threads in this process);
- ``explain_dataset`` on a ``LocalCluster`` of 1 worker (all the threads) and of 2 workers
  (half the threads each); the cluster's start is timed apart;
- ``explain_dataset(num_parts=1, part_id=0)``: the same work in this process, no Dask.

The overhead per case is (batch time − plain loop time) / cases. On a machine shared with
other work the runs' speeds drift apart, so the time outside ``explain()`` is printed too:
(run time × workers − the cases' own explain seconds) / cases, measured within each run
(files, records, scheduling, the model's load, idle workers at the end).

    python benchmarks/scaleout.py                     # 6 cases, 64 masks each
    python benchmarks/scaleout.py --cases 4 --n-masks 32
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from maskscope import SegRISE
from maskscope.batch import explain_dataset
from maskscope.data import phantom3d
from maskscope.io import read_image, write_map
from maskscope.models import load_model


def write_cases(folder: Path, n: int) -> list[Path]:
    """``n`` phantom volumes as .nii.gz with their voxel spacing."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(n):
        sample = phantom3d(seed=seed)
        vol = np.asarray(sample.image[0], np.float32)
        affine = np.diag([*sample.voxel_spacing, 1.0])
        path = folder / f"phantom{seed:02d}.nii.gz"
        nib.save(nib.Nifti1Image(vol, affine), str(path))
        paths.append(path)
    return paths


def plain_loop(paths: list[Path], out: Path, settings: dict, threads: int):
    """(seconds, explain seconds) of the plain loop (after the model's load and a warm-up)."""
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    explainer = SegRISE(load_model("phantom3d"))
    explainer.explain(read_image(paths[0]).data, n_masks=2, batch_size=2)  # warm-up, untimed
    t0, inside = time.perf_counter(), 0.0
    for path in paths:
        image = read_image(path)
        expl = explainer.explain(image.data, voxel_spacing=image.voxel_spacing, **settings)
        inside += expl.elapsed
        name = path.name.split(".")[0]
        write_map(out / f"{name}.nii.gz", expl.map, like=image)
        expl.save(out / f"{name}.npz")
    return time.perf_counter() - t0, inside


def _inside(result) -> float:
    assert not result.failed, result.failed
    return sum(r["explain_seconds"] for r in result.rows)


def on_cluster(data: Path, out: Path, settings: dict, workers: int, threads: int):
    """(start s, run s, explain s) of explain_dataset on a new LocalCluster."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as lc,
        Client(lc) as client,
    ):
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = explain_dataset(
            data,
            model="phantom3d",
            out=out,
            scheduler=client,
            threads=threads,
            progress=False,
            **settings,
        )
        run = time.perf_counter() - t1
    return started, run, _inside(result)


def in_parts(data: Path, out: Path, settings: dict, threads: int):
    """(run s, explain s) of explain_dataset(num_parts=1, part_id=0) in this process."""
    t0 = time.perf_counter()
    result = explain_dataset(
        data,
        model="phantom3d",
        out=out,
        num_parts=1,
        part_id=0,
        threads=threads,
        progress=False,
        **settings,
    )
    return time.perf_counter() - t0, _inside(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--n-masks", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    settings = {"n_masks": args.n_masks, "batch_size": args.batch_size, "seed": 0}
    tmp = Path(tempfile.mkdtemp(prefix="maskscope-scaleout-"))
    try:
        paths = write_cases(tmp / "data", args.cases)
        n = len(paths)
        print(
            f"{n} cases of phantom3d (64×96×96), SegRISE n_masks={args.n_masks}, "
            f"batch {args.batch_size}; {cores} cores, torch {torch.__version__}, "
            f"{platform.processor() or platform.machine()}"
        )
        loop, inside = plain_loop(paths, tmp / "loop", settings, cores)
        rows = [("plain loop", 1, cores, 0.0, loop, inside)]
        run, inside = in_parts(tmp / "data", tmp / "p", settings, cores)
        rows.append(("num_parts=1 (no Dask)", 1, cores, 0.0, run, inside))
        for workers in (1, 2):
            threads = max(1, cores // workers)
            start, run, inside = on_cluster(
                tmp / "data", tmp / f"w{workers}", settings, workers, threads
            )
            rows.append((f"Dask, {workers} worker(s)", workers, threads, start, run, inside))
        print(
            f"{'engine':<24}{'threads':>8}{'start s':>9}{'run s':>8}{'cases/min':>11}"
            f"{'vs loop s/case':>16}{'outside explain s/case':>24}"
        )
        for label, workers, threads, start, run, inside in rows:
            print(
                f"{label:<24}{threads:>8}{start:>9.1f}{run:>8.1f}{60 * n / run:>11.1f}"
                f"{(run - loop) / n:>16.2f}{(run * workers - inside) / n:>24.2f}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
