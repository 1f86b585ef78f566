"""Overhead vs the physical floor: wall time of a method / pure batched forward time.

The floor is the model alone, under ``inference_mode``, on the same number of inputs of the
same shape at the same batch size. Runs are interleaved and repeated; medians are printed.
A near-free model (one 1×1 convolution) exposes the engine's own cost per mask.

    python benchmarks/overhead.py                 # 240×240 with the bundled 2D model
    python benchmarks/overhead.py --quick         # fewer masks
    python benchmarks/overhead.py --device cuda
    python benchmarks/overhead.py --with-3d       # also 64×96×96 with the bundled 3D model
    python benchmarks/overhead.py --models 1x1 1x1-3d --estimator centred   # engine cost

``benchmarks/run.py`` measures each case in a fresh process through :func:`measure`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LABELS, batch_used, model_and_image, sync

from maskscope import HDM, RISE, PixelRISE, SegRISE


def forward_floor(model, x: torch.Tensor, n: int, batch: int) -> float:
    """Seconds to run the model on ``n`` inputs shaped like ``x`` in batches of ``batch``."""
    xb = x.expand(batch, *x.shape[1:]).contiguous() * 0.5
    sync(x.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        done = 0
        while done < n:
            b = min(batch, n - done)
            model(xb[:b])
            done += b
    sync(x.device)
    return time.perf_counter() - t0


def method_kwargs(
    label: str, *, n_masks: int, stride: float, batch_size: int | None, dims: int = 2
) -> tuple[type, dict]:
    """(method class, explain() keyword arguments) for a method label.

    ``batch_size=None`` leaves the batch size to the method's default. HDM sweeps every
    centre (``sweep="full"``): the peers' sweeps and the engine-cost figures count those.
    """
    grid = 8 if dims == 2 else 6
    batch = {} if batch_size is None else {"batch_size": batch_size}
    rise = {"n_masks": n_masks, "grid": grid, **batch}
    diameter = 25 if dims == 2 else 16
    table = {
        "RISE": (RISE, rise),
        "SegRISE": (SegRISE, rise),
        "PixelRISE-mean": (PixelRISE, {**rise, "merge": "mean"}),
        "PixelRISE-max": (PixelRISE, {**rise, "merge": "max"}),
        "HDM": (HDM, {"diameter": diameter, "stride": stride, "sweep": "full", **batch}),
    }
    if label not in table:
        raise ValueError(f"method must be one of {', '.join(table)}, got {label!r}")
    return table[label]


def make_case(mname: str, label: str, args) -> tuple:
    """(model name, label, explainer, image, kwargs) for one model and method.

    ``mname`` is ``unet2d`` / ``1x1`` (240×240 ``shapes2d(seed=7)``) or ``unet3d`` / ``1x1-3d``
    (``phantom3d(seed=3)``, 64×96×96, spacing (2, 1, 1)). ``args`` needs ``n_masks``,
    ``stride``, ``batch_size`` and ``device``; 3D cases use ``n_masks_3d``, ``stride_3d`` and
    ``batch_size_3d`` when it has them.
    """
    model, image, spacing = model_and_image(mname, args.device)
    if image.ndim == 3:
        cls, kw = method_kwargs(
            label, n_masks=args.n_masks, stride=args.stride, batch_size=args.batch_size
        )
    else:
        cls, kw = method_kwargs(
            label,
            n_masks=getattr(args, "n_masks_3d", args.n_masks // 5),
            stride=getattr(args, "stride_3d", 12.0),
            batch_size=getattr(args, "batch_size_3d", 4),
            dims=3,
        )
        kw = {**kw, "voxel_spacing": spacing}
    estimator = getattr(args, "estimator", None)
    if estimator is not None and cls is not HDM:
        kw = {**kw, "estimator": estimator}
    return mname, label, cls(model), image, kw


def measure(case, repeats: int, device: str = "cpu") -> dict:
    """Interleave ``repeats`` runs of the method and of its forward floor; medians."""
    mname, label, explainer, image, kw = case
    x = torch.as_tensor(image)[None].to(device)
    walls, floors = [], []
    n_fwd = 0
    expl = None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        expl = explainer.explain(image, **kw)
        sync(device)
        walls.append(time.perf_counter() - t0)
        n_fwd = expl.n_forward
        chunk = batch_used(expl, kw["batch_size"])  # after the voxel limit
        floors.append(forward_floor(explainer.model, x, n_fwd, chunk))
    w, f = statistics.median(walls), statistics.median(floors)
    out = {
        "model": mname,
        "method": label,
        "forwards": n_fwd,
        "batch_size": chunk,
        "wall": w,
        "floor": f,
        "ratio": w / f,
        "engine_ms_per_mask": 1000 * (w - f) / n_fwd,
        "walls": walls,
        "floors": floors,
    }
    if expl is not None and expl.reference is not None:
        target = expl.target if expl.target is not None else 1
        out["segment_px"] = int((expl.reference == target).sum())
    return out


def row(r: dict) -> str:
    """One markdown table row of a :func:`measure` result."""
    return (
        f"| {r['model']} | {r['method']} | {r['forwards']} | {r['wall']:.2f} | "
        f"{r['floor']:.2f} | {r['ratio']:.2f} | {r['engine_ms_per_mask']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-masks", type=int, default=1000)
    parser.add_argument("--stride", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=None, help="comma-separated method labels")
    parser.add_argument("--with-3d", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--models", nargs="+", default=None, choices=["unet2d", "1x1", "unet3d", "1x1-3d"]
    )
    parser.add_argument("--estimator", default=None, help="the RISE family's (default: ours)")
    args = parser.parse_args()
    if args.quick:
        args.n_masks, args.stride, args.repeats = 200, 10.0, 1
    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    models = args.models or ["unet2d", "1x1"] + (["unet3d"] if args.with_3d else [])
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    print("| model | method | forwards | wall (s) | floor (s) | ratio | engine ms/mask |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mname in models:
        for label in LABELS:
            if only and label not in only:
                continue
            print(row(measure(make_case(mname, label, args), args.repeats, args.device)))


if __name__ == "__main__":
    main()
