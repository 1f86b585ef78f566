"""The model of the next chunk while the engine sums this one: ``pipeline`` off and on.

For each method, on the bundled 2D and 3D U-Nets at a fixed batch size, one process per
run, the two settings taking turns: the wall time per model evaluation with
``pipeline="off"`` and ``"on"``, each followed in its process by the floor (the model
alone on as many inputs at the same batch size), and their ratios. The maps of the two
settings are compared too: they must be equal bit for bit.

    python benchmarks/pipeline.py                    # 2D and 3D, 3 runs each: ~30 min
                                                     # on 2 shared cores
    python benchmarks/pipeline.py --models unet2d --repeats 5

With ``--threads`` equal to the cores, ``"on"`` shows what overlapping costs when torch's
threads already take every core (``"auto"`` then leaves it off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_line, model_and_image  # noqa: E402

METHODS = {
    "unet2d": ("RISE", "SegRISE", "PixelRISE-mean", "PixelRISE-max", "HDM"),
    "unet3d": ("RISE", "SegRISE", "PixelRISE-mean", "HDM"),
}
SIZES = {
    "unet2d": {"n": 600, "stride": 16.0, "batch": 8},
    "unet3d": {"n": 100, "stride": 32.0, "batch": 2},
}


def child(cfg: dict) -> dict:
    """One run in this process: wall, floor, and a digest of the map."""
    import hashlib

    import numpy as np
    import overhead
    import torch

    torch.set_num_threads(int(cfg["threads"]))
    model, image, spacing = model_and_image(cfg["model"])
    dims = image.ndim - 1
    cls, kw = overhead.method_kwargs(
        cfg["method"], n_masks=cfg["n"], stride=cfg["stride"], batch_size=cfg["batch"], dims=dims
    )
    if dims == 3:
        kw["voxel_spacing"] = spacing
    kw["pipeline"] = cfg["pipeline"]
    explainer = cls(model)
    tiny = {"stride": 60.0} if cfg["method"] == "HDM" else {"n_masks": 8}
    explainer.explain(image, **{**kw, **tiny})  # warm-up: allocator, kernels
    t0 = time.perf_counter()
    expl = explainer.explain(image, **kw)
    wall = time.perf_counter() - t0
    x = torch.as_tensor(image)[None]
    floor = overhead.forward_floor(model, x, expl.n_forward, int(cfg["batch"]))
    digest = hashlib.sha1(np.ascontiguousarray(expl.map).tobytes()).hexdigest()
    return {"wall": wall, "floor": floor, "n": int(expl.n_forward), "digest": digest}


def run_child(cfg: dict, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"])}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "src"), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--only", help="comma-separated methods")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n2d", type=int, default=SIZES["unet2d"]["n"], help="masks per 2D run")
    p.add_argument("--n3d", type=int, default=SIZES["unet3d"]["n"], help="masks per 3D run")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    t0 = time.time()
    rows = []
    for model in args.models:
        for method in METHODS[model]:
            if args.only and method not in args.only.split(","):
                continue
            runs: dict[str, list[dict]] = {"off": [], "on": []}
            for _ in range(args.repeats):
                for mode in ("off", "on"):
                    cfg = {"model": model, "method": method, "pipeline": mode}
                    n = args.n2d if model == "unet2d" else args.n3d
                    cfg.update(SIZES[model], n=n, threads=args.threads)
                    runs[mode].append(run_child(cfg, args.timeout))
            rows.append((model, method, runs))
            print(table(rows)[-1], file=sys.stderr, flush=True)
    print(machine_line(threads=args.threads) + f" · took {(time.time() - t0) / 60:.1f} min")
    print()
    print("\n".join(table(rows)))


def table(rows: list[tuple[str, str, dict]]) -> list[str]:
    """The markdown table: per (model, method), both settings' runs (or errors)."""
    lines = [
        "| model | method | evaluations | batch | off: ms / evaluation | on: ms / evaluation "
        "| floor: ms / image | off ÷ floor | on ÷ floor | on ÷ off (paired) | same map |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model, method, runs in rows:
        bad = [r["error"] for mode in runs for r in runs[mode] if "error" in r]
        if bad:
            lines.append(f"| {model} | {method} | error: {bad[0]} |")
            continue
        off, on = runs["off"], runs["on"]
        per = {m: statistics.median(r["wall"] / r["n"] for r in runs[m]) for m in runs}
        floor = statistics.median(r["floor"] / r["n"] for r in off + on)
        paired = statistics.median(b["wall"] / a["wall"] for a, b in zip(off, on, strict=True))
        same = len({r["digest"] for r in off + on}) == 1
        lines.append(
            f"| {model} | {method} | {off[0]['n']} | {SIZES[model]['batch']} "
            f"| {per['off'] * 1e3:.2f} | {per['on'] * 1e3:.2f} | {floor * 1e3:.2f} "
            f"| {per['off'] / floor:.3f} | {per['on'] / floor:.3f} | {paired:.3f} "
            f"| {'yes' if same else '**NO**'} |"
        )
    return lines


if __name__ == "__main__":
    main()
