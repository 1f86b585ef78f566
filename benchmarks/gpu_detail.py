"""Where a method's time goes on a GPU: fixed cost, cost per evaluation, batch choice.

For the bundled 2D U-Net (240²) and 3D U-Net (64×96×96), float32, every method at default
settings is run at N and at 4 N evaluations (HDM: stride s and s / 2, full sweep), with
the measured batch size and with a fixed large batch. It prints, per run, the wall time,
the batch size kept and the sizes the measurement timed, and from the two sizes of run a
fixed cost (s) and a cost per evaluation against the model's best throughput (the floor
per evaluation). Then, with ``--device cuda``, each method's map on the GPU against the
same run's map on the CPU (a short run; the correlation and the largest difference over
the map's range), and the busiest operations of one 2D and one 3D run under
``torch.profiler``.

    python benchmarks/gpu_detail.py                    # on cuda
    python benchmarks/gpu_detail.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LABELS, machine_line, sync
from gpu import SHAPES, image_of, images_per_s, method_args
from md_tables import table

from maskscope.models import load_model

HEADER = ["model", "method", "batch", "evaluations", "wall (s)", "batch kept", "sizes timed"]
HEADER += ["ms / input timed"]
FIT_HEADER = ["model", "method", "batch", "fixed cost (s)", "ms / evaluation"]
FIT_HEADER += ["floor ms / evaluation", "ratio"]


def timed(cls, model, image, kw: dict, device) -> tuple[float, object]:
    """(wall s, explanation) of one run after a small warm-up run."""
    tiny = {"stride": 1000.0} if cls.__name__ == "HDM" else {"n_masks": 2}
    cls(model).explain(image, **{**kw, **tiny})
    sync(device)
    t0 = time.perf_counter()
    expl = cls(model).explain(image, **kw)
    sync(device)
    return time.perf_counter() - t0, expl


def bigger(label: str, kw: dict) -> dict:
    """The same run with 4 times the masks (HDM: half the stride, 4 times the centres in
    2D and 8 times in 3D)."""
    if label == "HDM":
        return {**kw, "stride": kw["stride"] / 2}
    return {**kw, "n_masks": kw["n_masks"] * 4}


def floor_ms(model, image, device, quick: bool) -> float:
    """The model's best ms per image over batch sizes 1 … 256 (float32, eager)."""
    x1 = torch.as_tensor(image)[None].to(device)
    best = 0.0
    for b in (1, 2) if quick else (32, 64, 128, 256):
        xb = x1.expand(b, *x1.shape[1:]).contiguous()
        best = max(best, images_per_s(model, xb, "float32", 0.0 if quick else 0.3))
    return 1000.0 / best


def profile(cls, model, image, kw: dict, device, rows: int) -> str:
    """The busiest operations of one run (self time on the device, and on the CPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    cls(model).explain(image, **kw)
    with prof(activities=acts) as p:
        cls(model).explain(image, **kw)
        sync(device)
    ka = p.key_averages()
    out = [ka.table(sort_by="self_cpu_time_total", row_limit=rows)]
    if device.type == "cuda":
        out.append(ka.table(sort_by="self_cuda_time_total", row_limit=rows))
    return "\n".join(out)


AGREE_HEADER = ["model", "method", "evaluations", "correlation", "max |GPU − CPU| / range"]


def short_args(label: str, dims: int, quick: bool) -> tuple[type, dict]:
    """A short run of a method, for the GPU-against-CPU check."""
    cls, kw = method_args(label, dims, quick)
    if label == "HDM":
        return cls, {**kw, "stride": kw["stride"] * 2}
    return cls, {**kw, "n_masks": max(4, kw["n_masks"] // 4)}


def agreement(name: str, bundled: str, image, device: torch.device, quick: bool) -> list[list]:
    """Each method's map on ``device`` against the CPU's, same settings and seed."""
    import numpy as np

    rows = []
    models = {d: load_model(bundled, device=d).eval() for d in (str(device), "cpu")}
    for label in LABELS:
        cls, kw = short_args(label, image.ndim - 1, quick)
        maps = {d: np.asarray(cls(m).explain(image, **kw).map, float) for d, m in models.items()}
        a, b = maps[str(device)].ravel(), maps["cpu"].ravel()
        spread = float(b.max() - b.min()) or 1.0
        corr = float(np.corrcoef(a, b)[0, 1]) if a.std() and b.std() else float("nan")
        rows.append([name, label, kw.get("n_masks", "sweep"), corr, np.abs(a - b).max() / spread])
        print("agree:", rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Measure and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--profile-rows", type=int, default=25)
    p.add_argument("--parts", default="runs,agreement,profile", help="which parts, comma-separated")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    device = torch.device(args.device)
    print(f"# Where the time goes\n\n{machine_line(args.device)}\n", flush=True)
    runs, fits, profiled, agree = [], [], [], []
    for name, (bundled, _, _) in SHAPES.items():
        model = load_model(bundled, device=args.device).eval()
        image = image_of(name, args.quick)
        dims = image.ndim - 1
        per_eval_floor = floor_ms(model, image, device, args.quick)
        fixed_batch = 2 if args.quick else (256 if dims == 2 else 64)
        for label in LABELS if "runs" in parts else ():
            cls, kw = method_args(label, dims, args.quick)
            for batch in (None, fixed_batch):
                base = kw if batch is None else {**kw, "batch_size": batch}
                walls = []
                for run_kw in (base, bigger(label, base)):
                    wall, expl = timed(cls, model, image, run_kw, device)
                    pr = expl.params
                    walls.append((wall, int(expl.n_forward)))
                    row = [name, label, batch or "measured", int(expl.n_forward), wall]
                    row += [pr.get("batch_size_used"), pr.get("batch_sizes_timed")]
                    runs.append([*row, pr.get("batch_ms_per_input")])
                    print("run:", runs[-1], file=sys.stderr, flush=True)
                (w1, n1), (w2, n2) = walls
                slope = (w2 - w1) / (n2 - n1) * 1000 if n2 > n1 else float("nan")
                fixed = w1 - slope * n1 / 1000
                row = [name, label, batch or "measured", fixed, slope, per_eval_floor]
                fits.append([*row, slope / per_eval_floor])
        if device.type != "cpu" and "agreement" in parts:
            agree += agreement(name, bundled, image, device, args.quick)
        if "profile" in parts:
            cls, kw = method_args("SegRISE", dims, args.quick)
            profiled.append((name, profile(cls, model, image, kw, device, args.profile_rows)))
    if runs:
        print("## Runs\n")
        print(table(HEADER, runs, "lllrrrll") + "\n")
        print("## Fixed cost and cost per evaluation (from the runs at N and about 4 N)\n")
        print(table(FIT_HEADER, fits, "lllrrrr") + "\n")
    if agree:
        print("## The same map on the GPU as on the CPU\n")
        print(table(AGREE_HEADER, agree, "llrrr") + "\n")
    for name, text in profiled:
        print(f"## Profile: {name} SegRISE at default settings\n\n```\n{text}\n```\n")


if __name__ == "__main__":
    main()
