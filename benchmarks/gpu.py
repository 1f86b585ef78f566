"""GPU check: throughput of the bundled U-Nets and every method against its floor.

Prints, as markdown tables:

1. images/s of the bundled 2D U-Net (``shapes2d``, 240²) and 3D U-Net (``phantom3d``,
   64×96×96) at batch sizes 1, 2, 4, … 256 (stopping at the first out-of-memory), in
   float32 (TensorFloat-32 off, as the methods' default runs the model), in tf32
   (TensorFloat-32 convolutions, PyTorch's default for cuDNN) and in bf16
   (``torch.autocast``), eager and with ``torch.compile``, with the
   peak GPU memory of each (``torch.cuda.max_memory_allocated``);
2. every method's wall time at default settings against its floor, N evaluations ÷ the
   best throughput of the same variant and of any variant, with the run's peak GPU
   memory: in float32, with the methods' ``precision="tf32"`` and ``"bfloat16"`` (and,
   with compilation on, bf16 with ``compile=True``).

It keeps to a time budget (``--budget``, 270 s by default, so that the whole script stays
under 5 minutes on one GPU): the throughput part ends at half of it, the method part at
all of it, and rows that do not fit are listed as skipped. Compiled variants run last, at
the best eager batch size of the same model and precision and at half of it (each batch
size is one compilation). Each method row is also printed to stderr as it is measured,
so that a run stopped early still shows what it measured.

    python benchmarks/gpu.py                          # on cuda
    python benchmarks/gpu.py --device cpu --quick     # small sizes, a few seconds
    python benchmarks/gpu.py --json gpu.json          # also save the figures
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LABELS, machine_line, sync
from md_tables import table

from maskscope._engine.fp32 import fp32_precision
from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model

#: Benchmark model name → (bundled model, full-size image shape, quick image shape).
SHAPES = {"unet2d": ("shapes2d", 240, 64), "unet3d": ("phantom3d", (64, 96, 96), (24, 24, 24))}
PRECISIONS = ("float32", "tf32", "bf16")
COMPILED_PRECISIONS = ("float32", "bf16")
#: The methods' options of each precision name.
PRECISION_OPTIONS = {
    "float32": {},
    "tf32": {"precision": "tf32"},
    "bf16": {"precision": "bfloat16"},
}
THROUGHPUT_HEADER = ["model", "precision", "compiled", "batch", "images/s", "ms / image"]
THROUGHPUT_HEADER += ["peak memory (MB)"]
METHODS_HEADER = ["model", "method", "precision", "compiled", "evaluations", "wall (s)"]
METHODS_HEADER += ["floor (s)", "ratio", "floor, best variant (s)", "ratio to it"]
METHODS_HEADER += ["peak memory (MB)"]


@dataclass
class Point:
    """One throughput measurement (``images_s`` None: out of memory or skipped)."""

    model: str
    precision: str
    compiled: bool
    batch: int
    images_s: float | None
    peak_mb: float | None
    note: str = ""


def image_of(name: str, quick: bool):
    """The benchmark image of a model name, at full or quick size, ``(1, *spatial)``."""
    _, full, small = SHAPES[name]
    size = small if quick else full
    if name == "unet2d":
        return shapes2d(seed=7, size=size).image
    return phantom3d(seed=3, shape=size).image


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (GPU only)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    """Peak GPU memory allocated since :func:`reset_peak` (None on a CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an out-of-memory error of the device."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def images_per_s(model, x: torch.Tensor, precision: str, min_s: float, calls: int = 3) -> float:
    """Throughput of ``model(x)``: after warm-up, at least ``calls`` calls and ``min_s`` s."""
    device = x.device
    dtype = torch.bfloat16 if precision == "bf16" else None
    autocast = torch.autocast(device.type, dtype, enabled=dtype is not None)
    # as the methods run the model: convolutions on TensorFloat-32 in tf32 only, products never
    fp32 = fp32_precision(conv="tf32" if precision == "tf32" else "ieee", matmul="ieee")
    with torch.inference_mode(), autocast, fp32:
        for _ in range(min(2, calls)):  # warm-up (and compilation, for a compiled model)
            model(x)
        sync(device)
        done, t0 = 0, time.perf_counter()
        while done < calls or time.perf_counter() - t0 < min_s:
            model(x)
            done += 1
            sync(device)
        elapsed = time.perf_counter() - t0
    return done * x.shape[0] / elapsed


def sweep(name, model, image, precision, compiled, batches, args, deadline) -> list[Point]:
    """Throughput at each batch size until the first out-of-memory (or the deadline)."""
    device = torch.device(args.device)
    points, x1 = [], torch.as_tensor(image)[None].to(device)
    for b in batches:
        if time.perf_counter() > deadline:
            points.append(Point(name, precision, compiled, b, None, None, "skipped (budget)"))
            continue
        reset_peak(device)
        try:
            xb = x1.expand(b, *x1.shape[1:]).contiguous()
            rate = images_per_s(model, xb, precision, args.min_s, args.calls)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_oom(exc):
                raise
            points.append(
                Point(name, precision, compiled, b, None, peak_mb(device), "out of memory")
            )
            reset_peak(device)
            break
        points.append(Point(name, precision, compiled, b, rate, peak_mb(device)))
    return points


def batches_of(args) -> list[int]:
    """Powers of two up to ``--max-batch``."""
    out, b = [], 1
    while b <= args.max_batch:
        out.append(b)
        b *= 2
    return out


def compiled_batches(points: list[Point], name: str, precision: str) -> list[int]:
    """Batch sizes of a compiled sweep: the best eager size of the model and precision,
    and half of it (each size costs one compilation)."""
    eager = [p for p in points if p.model == name and p.precision == precision]
    eager = [p for p in eager if not p.compiled and p.images_s]
    if not eager:
        return []
    best = max(eager, key=lambda p: p.images_s).batch
    return sorted({max(1, best // 2), best})


def fresh_compiler() -> None:
    """Forget what ``torch.compile`` compiled: the bundled 2D and 3D U-Nets share one class,
    so their graphs count against one recompilation limit (8), past which the compiled
    model silently runs eagerly."""
    torch._dynamo.reset()


def throughput(args, models: dict, deadline: float) -> list[Point]:
    """Every (model, precision, compiled) sweep: eager first, compiled last."""
    points = []
    for precision in PRECISIONS:
        for name, (model, image) in models.items():
            batches = batches_of(args)
            points += sweep(name, model, image, precision, False, batches, args, deadline)
    if args.compile:
        for precision in COMPILED_PRECISIONS:
            for name, (model, image) in models.items():
                fresh_compiler()
                m = torch.compile(model, dynamic=False)
                batches = compiled_batches(points, name, precision)
                points += sweep(name, m, image, precision, True, batches, args, deadline)
    return points


def best_rate(points: list[Point], name: str, variant: tuple[str, bool] | None) -> float | None:
    """The best images/s of a model: of one (precision, compiled) variant, or of any (None)."""
    rates = [
        p.images_s
        for p in points
        if p.model == name and p.images_s and variant in (None, (p.precision, p.compiled))
    ]
    return max(rates) if rates else None


def method_variants(args) -> list[tuple[str, bool]]:
    """(precision, compiled) of the method runs: float32 eager, and the options the methods
    take (``precision=``, ``compile=``), compiled only where ``--compile`` is on."""
    from maskscope import Method

    takes = inspect.signature(Method.__init__).parameters
    out = [("float32", False)]
    if "precision" in takes:
        out += [("tf32", False), ("bf16", False)]
        if args.compile and "compile" in takes:
            out.append(("bf16", True))
    return out


def method_args(label: str, dims: int, quick: bool) -> tuple[type, dict]:
    """(method class, explain() keywords) at default settings, sized for a short run."""
    from maskscope import HDM, RISE, PixelRISE, SegRISE

    n = {(2, False): 1000, (3, False): 200, (2, True): 8, (3, True): 4}[(dims, quick)]
    stride = {(2, False): 5.0, (3, False): 8.0, (2, True): 24.0, (3, True): 12.0}[(dims, quick)]
    rise = {"n_masks": n, "grid": 8 if dims == 2 else 6}
    table_ = {
        "RISE": (RISE, rise),
        "SegRISE": (SegRISE, rise),
        "PixelRISE-mean": (PixelRISE, {**rise, "merge": "mean"}),
        "PixelRISE-max": (PixelRISE, {**rise, "merge": "max"}),
        "HDM": (  # every centre: N forwards, as the RISE family's N masks
            HDM,
            {"diameter": 25.0 if dims == 2 else 16.0, "stride": stride, "sweep": "full"},
        ),
    }
    return table_[label]


def _one_run(explainer, image, kw: dict, label: str, device) -> tuple[float, int, float | None]:
    """(wall s, evaluations, peak GPU MB) of one explain() run after a warm-up.

    The warm-up is a small run, or for a compiled model the same run, so that every batch
    size the timed run calls the model at is compiled before the clock starts.
    """
    tiny = {"stride": 1000.0} if label == "HDM" else {"n_masks": 2}
    compiled = explainer.model_call.compile
    explainer.explain(image, **(kw if compiled else {**kw, **tiny}))  # warm-up, compilation
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    expl = explainer.explain(image, **kw)
    sync(device)
    return time.perf_counter() - t0, int(expl.n_forward), peak_mb(device)


def methods(args, models: dict, points: list[Point], deadline: float = math.inf) -> list[list]:
    """Each method's wall time at default settings against N ÷ best throughput.

    Variants run in the order of :func:`method_variants` (compiled last), each over both
    models; a run that would start after ``deadline`` is listed as skipped.
    """
    device = torch.device(args.device)
    rows = []
    for precision, compiled in method_variants(args):
        for name, (model, image) in models.items():
            best = best_rate(points, name, None)
            same = best_rate(points, name, (precision, compiled))
            options = {**PRECISION_OPTIONS[precision]}
            options |= {"compile": True} if compiled else {}
            if compiled:
                fresh_compiler()
            for label in LABELS:
                row = [name, label, precision, "yes" if compiled else "no"]
                if time.perf_counter() > deadline:
                    rows.append([*row, "skipped (budget)", *[None] * 6])
                    continue
                cls, kw = method_args(label, image.ndim - 1, args.quick)
                wall, n, peak = _one_run(cls(model, **options), image, kw, label, device)
                floor = n / same if same else None
                row += [n, wall, floor, wall / floor if floor else None]
                row += [n / best if best else None, wall * best / n if best else None, peak]
                rows.append(row)
                print("method row:", row, file=sys.stderr, flush=True)
    return rows


def throughput_rows(points: list[Point]) -> list[list]:
    """Rows of the throughput table."""
    rows = []
    for p in points:
        rate = p.images_s
        cells = [p.model, p.precision, "yes" if p.compiled else "no", p.batch]
        cells += [rate or p.note, 1000 / rate if rate else None, p.peak_mb]
        rows.append(cells)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="small images and batches, seconds")
    p.add_argument("--max-batch", type=int, default=None, help="largest batch (256; quick 2)")
    p.add_argument("--min-s", type=float, default=None, help="seconds per point (0.3; quick 0)")
    p.add_argument("--budget", type=float, default=270.0, help="seconds for the whole check")
    p.add_argument("--no-compile", dest="compile", action="store_false", default=None)
    p.add_argument("--compile", dest="compile", action="store_true", help="default off on CPU")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.max_batch is None:
        args.max_batch = 2 if args.quick else 256
    if args.min_s is None:
        args.min_s = 0.0 if args.quick else 0.3
    args.calls = 1 if args.quick else 3
    if args.compile is None:  # compiling on a CPU needs a C++ compiler and minutes
        args.compile = torch.device(args.device).type == "cuda"
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure and print both tables."""
    args = parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here (use --device cpu)")
    t0 = time.perf_counter()
    models = {
        name: (load_model(SHAPES[name][0], device=args.device).eval(), image_of(name, args.quick))
        for name in SHAPES
    }
    print(f"# GPU check\n\n{machine_line(args.device)}\n")
    points = throughput(args, models, t0 + args.budget / 2)
    print("## Throughput\n")
    print(table(THROUGHPUT_HEADER, throughput_rows(points), "lllrrrr") + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"points": [asdict(p) for p in points]}, indent=1))
    rows = methods(args, models, points, t0 + args.budget)
    print("## Methods at default settings vs N ÷ best throughput\n")
    print(table(METHODS_HEADER, rows, "llllrrrrrrr") + "\n")
    print(f"total {time.perf_counter() - t0:.1f} s")
    if args.json:
        data = {"points": [asdict(p) for p in points], "methods": rows}
        args.json.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
