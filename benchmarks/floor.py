"""Default batch and the floor: maskscope at default settings vs the best fixed batch.

In one run, on this machine, with one torch thread (``--threads``), medians of ``--repeats``:

1. the pure forward time per image of the bundled 2D and 3D U-Nets at fixed batch sizes
   (1, 2, 4, 8, 16, …; one process per model, the sizes taking turns): the best batch
   gives the floor;
2. every method's wall time per model evaluation at default settings (no ``batch_size``:
   whatever the engine picks) beside the floor, the model alone on as many inputs at the
   best batch, measured in the same process right after each run; the target is a ratio
   ≤ 1.05;
3. each peer that calls the model one image at a time (muppet SegRISE, interpret-
   segmentation HDM and RISE, captum-rise) and maskscope's equivalent on the same image
   and number of masks, taking turns: maskscope's speed-up, printed beside the bound
   0.95 × (peer wall ÷ its floor), the floor measured in the peer's process right after
   its run. The peers need their venv (``bash benchmarks/setup_peers.sh``); without it
   the rows say so.

    python benchmarks/floor.py            # full sizes: about an hour on 2 shared cores
    python benchmarks/floor.py --quick    # about 15 minutes there
    python benchmarks/floor.py --docs     # also write the section of docs/benchmarks.md
    python benchmarks/run.py --parts floor

The sizes are ``settings.py``'s ``floor``. The child kinds ``forwards`` and ``default`` run
in ``parts.py`` processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LABELS, NEEDS_STUBS, PEERS_PYTHON, ROOT, machine_line, model_and_image, sync

from maskscope._engine.host_memory import HOST_MEMORY, HOST_MEMORY_MODES

#: Peers compared at equal forwards, and maskscope's equivalents.
FLOOR_PEERS = {
    "muppet:SegRISE": ("SegRISE",),
    "interpret-segmentation:HDM": ("HDM",),
    "interpret-segmentation:RISE": ("PixelRISE-mean", "PixelRISE-max"),
    "captum-rise": ("RISE",),
}
BOUND_SHARE = 0.95
TARGET_RATIO = 1.05


# ------------------------------------------------------------------------ child processes
def _time_batch(model, x: torch.Tensor, batch: int, images: int) -> float:
    """Seconds per image of ``model`` on at least ``images`` inputs in batches of ``batch``."""
    xb = x.expand(batch, *x.shape[1:]).contiguous()
    calls = max(2, -(-images // batch))
    with torch.inference_mode():
        model(xb)  # warm-up at this shape
        sync(x.device)
        t0 = time.perf_counter()
        for _ in range(calls):
            model(xb)
        sync(x.device)
    return (time.perf_counter() - t0) / (calls * batch)


def run_forwards(cfg: dict) -> dict:
    """Child kind ``forwards``: the model's time per image at each fixed batch size.

    The batch sizes take turns in every repeat, so that drifts of a shared machine touch
    them alike; the median of the repeats is kept. Each size is timed under malloc's own
    settings, then (glibc) with the freed memory kept, as a run keeps it
    (``RunOptions.host_memory``); the floor is the best of both.
    """
    model, image, _ = model_and_image(cfg["model"], cfg["device"])
    x = torch.as_tensor(image)[None].to(cfg["device"])
    rows = []
    for mode in HOST_MEMORY_MODES[::-1]:  # malloc's own settings first: "keep" lasts
        held = mode == "keep" and HOST_MEMORY.hold()
        if mode == "keep" and not held:
            continue  # not glibc: nothing to compare
        times: dict[int, list[float]] = {int(b): [] for b in cfg["batches"]}
        for _ in range(int(cfg["repeats"])):
            for b in times:
                times[b].append(_time_batch(model, x, b, int(cfg["images"])))
        rows += [
            {"batch": b, "host_memory": mode, "s_per_image": statistics.median(t), "runs": t}
            for b, t in times.items()
        ]
    return {"model": cfg["model"], "rows": rows}


def default_kwargs(label: str, cfg: dict, dims: int, spacing: tuple) -> tuple[type, dict]:
    """(method class, explain() keywords) at default settings: only the sizes are given."""
    import overhead

    cls, kw = overhead.method_kwargs(
        label, n_masks=int(cfg["n"]), stride=float(cfg["stride"]), batch_size=None, dims=dims
    )
    if dims == 3:
        kw["voxel_spacing"] = spacing
    return cls, kw


def run_default(cfg: dict) -> dict:
    """Child kind ``default``: one method at default settings, wall medians of the repeats.

    Each run is followed by the floor on the same process: the model alone on as many inputs
    at ``best_batch`` (the best fixed batch of the ``forwards`` sweep), so that both see the
    same load of a shared machine; the ratio is of the medians.
    """
    from overhead import forward_floor

    model, image, spacing = model_and_image(cfg["model"], cfg["device"])
    cls, kw = default_kwargs(cfg["method"], cfg, image.ndim - 1, spacing)
    explainer = cls(model)
    tiny = {"stride": 60.0} if cfg["method"] == "HDM" else {"n_masks": 8}
    explainer.explain(image, **{**kw, **tiny})  # warm-up: allocator, kernels
    x = torch.as_tensor(image)[None].to(cfg["device"])
    walls, floors, expl = [], [], None
    for _ in range(int(cfg["repeats"])):
        sync(cfg["device"])
        t0 = time.perf_counter()
        expl = explainer.explain(image, **kw)
        sync(cfg["device"])
        walls.append(time.perf_counter() - t0)
        floors.append(forward_floor(model, x, expl.n_forward, int(cfg["best_batch"])))
    params = {k: v for k, v in expl.params.items() if "batch" in k or "chunk" in k}
    wall, floor = statistics.median(walls), statistics.median(floors)
    return {
        "model": cfg["model"],
        "method": cfg["method"],
        "forwards": int(expl.n_forward),
        "wall": wall,
        "walls": walls,
        "floors": floors,
        "s_per_evaluation": wall / expl.n_forward,
        "floor_s": floor / expl.n_forward,
        "ratio": wall / floor,
        "batch_params": {k: v for k, v in params.items() if isinstance(v, int | float | str)},
        "batch_detail": json.loads(json.dumps(params, default=str)),  # timings, when recorded
    }


# ---------------------------------------------------------------------------- orchestration
def _forwards(r, c: dict) -> dict:
    out = {}
    for model, batches in c["batches"].items():
        cfg = {"model": model, "batches": batches, "images": c["images"][model]}
        res = r.child("forwards", {**cfg, "repeats": c["repeats"]})
        if res:
            best = min(res["rows"], key=lambda x: x["s_per_image"])
            out[model] = {"rows": res["rows"], "best": best}
    return out


def _methods(r, c: dict, forwards: dict) -> list[dict]:
    rows = []
    if c.get("skip_defaults"):
        return rows
    for model in c["batches"]:
        if model not in forwards:
            continue
        best = forwards[model]["best"]
        for label in LABELS:
            n, repeats = c["n"][model], c["repeats"]
            if label == "PixelRISE-max" and c.get("n_max"):  # its final pass depends on N
                n, repeats = c["n_max"], c.get("max_repeats") or repeats
            cfg = {"model": model, "method": label, "n": n, "repeats": repeats}
            cfg |= {"stride": c["stride"][model], "best_batch": best["batch"]}
            res = r.child("default", cfg)
            if res:
                rows.append({**res, "sweep_floor_s": best["s_per_image"]})
    return rows


def _side(r, tool: str, c: dict, python: str, floor_batch: int | None) -> dict | None:
    """One side-by-side run of a tool on the 2D U-Net (shapes2d), at equal forwards."""
    cfg = {"tool": tool, "model": "unet2d", "n": c["peers_n"], "diameter": 25}
    cfg |= {"offset": c["peers_offset"], "batch_size": None if "maskscope" in tool else 1}
    if floor_batch:
        cfg["floor_batch"] = floor_batch
    return r.child("side", cfg, python=python, stubs=tool in NEEDS_STUBS)


def _median_of(runs: list[dict]) -> dict:
    out = {**runs[0], "wall": statistics.median(x["wall"] for x in runs)}
    if "floor" in runs[0]:
        out["floor"] = statistics.median(x["floor"] for x in runs)
    return {**out, "walls": [x["wall"] for x in runs]}


def _peer_runs(r, peer: str, labels, c: dict, python: str, best_batch: int) -> dict | None:
    """Repeats of the peer and of its maskscope equivalents, taking turns; medians."""
    runs: dict[str, list[dict]] = {peer: [], **{label: [] for label in labels}}
    for _ in range(c["repeats"]):
        res = _side(r, peer, c, python, best_batch)
        if res is None:
            return None
        runs[peer].append(res)
        for label in labels:
            res = _side(r, f"maskscope:{label}", c, python, None)
            if res is not None:
                runs[label].append(res)
    return {k: _median_of(v) if v else None for k, v in runs.items()}


def _peers(r, c: dict, best_batch: int | None, peers_python: str | None) -> list[dict]:
    """maskscope's speed-up over each peer, and the bound 0.95 × (peer wall ÷ its floor)."""
    rows = []
    for peer, labels in FLOOR_PEERS.items():
        ok = peers_python and best_batch
        runs = _peer_runs(r, peer, labels, c, peers_python, best_batch) if ok else None
        for label in labels:
            row = {"peer": peer, "method": label, "speed_up": None, "bound": None}
            theirs, ours = (runs or {}).get(peer), (runs or {}).get(label)
            if theirs is None or ours is None:
                note = "peers not run" if not peers_python else "did not run"
                rows.append({**row, "note": note})
                continue
            row.update(
                peer_wall=theirs["wall"],
                peer_evaluations=theirs["evaluations"],
                peer_over_floor=theirs["wall"] / theirs["floor"],
                wall=ours["wall"],
                evaluations=ours["evaluations"],
                batch_used=ours.get("batch_used"),
                speed_up=theirs["wall"] / ours["wall"],
                bound=BOUND_SHARE * theirs["wall"] / theirs["floor"],
            )
            rows.append(row)
    return rows


def collect(r, c: dict, peers_python: str | None) -> dict:
    """Measure all three tables through the runner ``r`` (one process per configuration)."""
    t0 = time.perf_counter()
    forwards = _forwards(r, c)
    methods = _methods(r, c, forwards)
    best2d = forwards.get("unet2d", {}).get("best", {}).get("batch")
    peers = _peers(r, c, best2d, peers_python)
    return {
        "machine": machine_line(r.args.device, r.args.threads),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": c,
        "forwards": forwards,
        "methods": methods,
        "peers": peers,
        "minutes": (time.perf_counter() - t0) / 60,
    }


def main(argv: list[str] | None = None) -> None:
    """Measure and print the three tables (markdown)."""
    from publish import write_section
    from report_floor import DOCS_HEADING, floor_report
    from runner import Runner
    from settings import settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer masks, a few minutes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--repeats", type=int, default=None, help="runs per median (default 3)")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per process")
    p.add_argument("--peers-python", default=None, help=f"default {PEERS_PYTHON} if it exists")
    p.add_argument("--docs", action="store_true", help="also write it into docs/benchmarks.md")
    p.add_argument("--n2d", type=int, help="masks per 2D default run (the measured batch size")
    p.add_argument("--n3d", type=int, help="costs a few chunks: larger N amortise them)")
    p.add_argument("--no-peers", action="store_true", help="skip the peers' table")
    p.add_argument("--no-defaults", action="store_true", help="skip the default-settings table")
    p.add_argument("--peers-n", type=int, help="masks (or centres) per peer comparison")
    p.add_argument(
        "--n-max",
        type=int,
        help="masks of the PixelRISE-max rows (its final pass's cost per "
        "mask falls with N; 2000 is its default)",
    )
    p.add_argument("--max-repeats", type=int, help="runs per median of those rows")
    args = p.parse_args(argv)
    c = settings(args.quick)["floor"]
    if args.repeats:
        c = {**c, "repeats": args.repeats}
    if args.no_defaults:
        c = {**c, "skip_defaults": True}
    if args.peers_n:
        c = {**c, "peers_n": args.peers_n}
    if args.n_max:
        c = {**c, "n_max": args.n_max, "max_repeats": args.max_repeats}
    for model, n in (("unet2d", args.n2d), ("unet3d", args.n3d)):
        if n:
            c = {**c, "n": {**c["n"], model: n}}
    peers = args.peers_python or (str(PEERS_PYTHON) if PEERS_PYTHON.exists() else None)
    peers = None if args.no_peers else peers
    with tempfile.TemporaryDirectory() as tmp:
        r = Runner(args, Path(tmp))
        res = {"floor": [collect(r, c, peers)], "errors": r.results["errors"]}
    print("\n".join(floor_report(res)))
    for e in res["errors"]:
        print(f"- did not run: `{e['kind']}` {e['cfg']}: {e['error']}")
    if args.docs:
        body = "\n".join(floor_report(res, DOCS_HEADING)[1:])
        write_section(ROOT / "docs" / "benchmarks.md", DOCS_HEADING, body)


if __name__ == "__main__":
    main()
