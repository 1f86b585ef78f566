"""Overhead vs the physical floor: wall time of a method / pure batched forward time.

The floor is the model alone, under ``inference_mode``, on the same number of inputs of the
same shape at the same batch size. Runs are interleaved and repeated; medians are printed.
A near-free model (one 1×1 convolution) exposes the engine's own cost per mask.

    python benchmarks/overhead.py                 # 240×240 with the bundled 2D model
    python benchmarks/overhead.py --quick         # fewer masks
    python benchmarks/overhead.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from maskscope import HDM, RISE, PixelRISE, SegRISE
from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model


class OneByOne(torch.nn.Module):
    """A near-free segmentation model: one 1×1 convolution to 2 classes."""

    def __init__(self, dims: int = 2) -> None:
        super().__init__()
        conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
        self.conv = conv(1, 2, 1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([-4.0, 4.0]).reshape(self.conv.weight.shape)
            self.conv.bias[:] = torch.tensor([2.0, -2.0])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def forward_floor(model, x: torch.Tensor, n: int, batch: int) -> float:
    """Seconds to run the model on ``n`` inputs shaped like ``x`` in batches of ``batch``."""
    xb = x.expand(batch, *x.shape[1:]).contiguous() * 0.5
    t0 = time.perf_counter()
    with torch.inference_mode():
        done = 0
        while done < n:
            b = min(batch, n - done)
            model(xb[:b])
            done += b
    return time.perf_counter() - t0


def cases(args):
    """(label, explainer factory, image, kwargs, n forwards) for each benchmarked method."""
    s2 = shapes2d(seed=7)
    n = args.n_masks
    rise = {"n_masks": n, "grid": 8, "batch_size": args.batch_size}
    out = []
    models = {
        "unet2d": load_model("shapes2d", device=args.device),
        "1x1": OneByOne().to(args.device),
    }
    for mname, model in models.items():
        for label, cls, kw in (
            ("RISE", RISE, rise),
            ("SegRISE", SegRISE, rise),
            ("PixelRISE-mean", PixelRISE, {**rise, "merge": "mean"}),
            ("PixelRISE-max", PixelRISE, {**rise, "merge": "max"}),
            ("HDM", HDM, {"diameter": 25, "stride": args.stride, "batch_size": args.batch_size}),
        ):
            out.append((mname, label, cls(model), s2.image, kw))
    if args.with_3d:
        ph = phantom3d(seed=3)
        m3 = load_model("phantom3d", device=args.device)
        kw3 = {"voxel_spacing": ph.voxel_spacing, "batch_size": 4}
        out.append(
            ("unet3d", "SegRISE", SegRISE(m3), ph.image, {**kw3, "n_masks": n // 5, "grid": 6})
        )
        out.append(("unet3d", "HDM", HDM(m3), ph.image, {**kw3, "diameter": 16, "stride": 12}))
    return out


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
    args = parser.parse_args()
    if args.quick:
        args.n_masks, args.stride, args.repeats = 200, 10.0, 1
    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    print("| model | method | forwards | wall (s) | floor (s) | ratio | engine ms/mask |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mname, label, explainer, image, kw in cases(args):
        if only and label not in only:
            continue
        walls, floors = [], []
        n_fwd = 0
        x = torch.as_tensor(image)[None].to(args.device)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            expl = explainer.explain(image, **kw)
            walls.append(time.perf_counter() - t0)
            n_fwd = expl.n_forward
            floors.append(forward_floor(explainer.model, x, n_fwd, kw["batch_size"]))
        w, f = statistics.median(walls), statistics.median(floors)
        print(
            f"| {mname} | {label} | {n_fwd} | {w:.2f} | {f:.2f} | {w / f:.2f} | "
            f"{1000 * (w - f) / n_fwd:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
