"""The parts of a ``benchmarks/run.py`` run: which configurations each starts, in order.

Every configuration runs in a fresh process (``parts.py``) through a :class:`runner.Runner`,
except the memory-vs-N and batch rows, which ``memory.py`` measures in its own process.
"""

from __future__ import annotations

import subprocess
import sys

from common import LABELS, NEEDS_STUBS, OURS_BATCH1, PEERS, PEERS_PYTHON
from runner import Runner, wait_for_quiet

#: Which results.json keys each part writes (a subset run keeps the others).
PART_KEYS = {
    "overhead": ("overhead",),
    "side": ("side",),
    "side3d": ("side3d",),
    "scaling": ("n_scaling", "size", "batch", "snapshot"),
    "early": ("early",),
    "profile": ("profile",),
    "floor": ("floor",),
}
#: The parts a run without ``--parts`` runs.
DEFAULT_PARTS = ",".join(PART_KEYS)
#: Cases profiled with cProfile (part 5).
PROFILE_CASES = [("1x1", m) for m in LABELS] + [
    ("unet2d", "PixelRISE-max"),
    ("unet2d", "HDM"),
    ("unet3d", "SegRISE"),
    ("unet3d", "PixelRISE-max"),
    ("unet3d", "HDM"),
]


def error_key(kind: str) -> str:
    """The results.json key whose part an error of ``kind`` belongs to."""
    return {"batch": "batch", "n_scaling": "n_scaling"}.get(kind, kind)


def part_overhead(r: Runner, s: dict, peers_python: str | None = None) -> None:
    """1. wall / forward floor per model and method."""
    o = s["overhead"]
    for model in o["models"]:
        for label in LABELS:
            cfg = {k: v for k, v in o.items() if k != "models"}
            r.keep("overhead", r.child("overhead", {**cfg, "model": model, "method": label}))


def part_side(r: Runner, s: dict, peers_python: str | None) -> None:
    """2. maskscope and every peer on the same model, image and evaluations."""
    tools = [f"maskscope:{m}" for m in LABELS] + [f"maskscope:{m}@1" for m in OURS_BATCH1]
    if peers_python:
        tools += list(PEERS)
    else:
        r.results["meta"]["side_note"] = (
            f"peers' venv not found ({PEERS_PYTHON}): run bash benchmarks/setup_peers.sh"
        )
    python = peers_python or sys.executable
    for model, c in s["side"].items():
        for rep in range(c["repeats"]):
            for tool in tools:
                cfg = {
                    "tool": tool,
                    "model": model,
                    "n": c["n"],
                    "diameter": 25,
                    "offset": c["offset"],
                    "batch_size": 16,
                }
                res = r.child("side", cfg, python=python, stubs=tool in NEEDS_STUBS)
                if res:
                    res["repeat"] = rep
                r.keep("side", res)


def part_side3d(r: Runner, s: dict, peers_python: str | None) -> None:
    """2b. Every tool on the 3D phantom with the 3D U-Net: which can run, and at what cost."""
    c = s["side3d"]
    tools = [f"maskscope:{m}" for m in ("RISE", "SegRISE", "PixelRISE-mean", "HDM")]
    tools += list(PEERS) if peers_python else []
    for tool in tools:
        cfg = {"tool": tool, "model": "unet3d", **c}
        res = r.child("side", cfg, python=peers_python or sys.executable, stubs=tool in NEEDS_STUBS)
        if res:
            r.results.setdefault("side3d", []).append(res)
        else:
            r.results["errors"][-1]["kind"] = "side3d"
        r.save()


def _memory_rows(r: Runner, s: dict) -> None:
    """Peak memory vs N (near-free model) and vs the batch size (2D U-Net), by memory.py."""
    import memory

    for method, sizes in s["n_scaling"].items():
        kwargs = {"merge": "max"} if method == "PixelRISE" else {}
        for n in sizes:
            print(f"  memory.run {method} N={n}", flush=True)
            try:
                res = memory.run(method, n, "1x1", kwargs, env=r.env(), timeout=r.args.timeout)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                r.error("n_scaling", {"method": method, "n": n}, str(exc)[-300:])
                continue
            label = "PixelRISE-max" if method == "PixelRISE" else method
            r.keep("n_scaling", {**res, "method": label, "model": "1x1"})
    for n_bs in s["batch"]["sizes"]:
        print(f"  memory.run SegRISE unet2d batch={n_bs}", flush=True)
        try:
            res = memory.run(
                "SegRISE",
                s["batch"]["n"],
                "unet2d",
                {"max_batch_voxels": 2**40},  # exactly the batch asked for
                batch=n_bs,
                env=r.env(),
                timeout=r.args.timeout,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            r.error("batch", {"batch": n_bs}, str(exc)[-300:])
            continue
        r.keep("batch", {**res, "batch_size": n_bs, "method": "SegRISE"})


def _size_rows(r: Runner, s: dict) -> None:
    """Time and memory vs the image size in 2D and 3D, and the 128³ memory target."""
    for size in s["size2d"]["sizes"]:
        cfg = {"dims": 2, "size": size, "method": "SegRISE", "n": s["size2d"]["n"]}
        r.keep("size", r.child("size", {**cfg, "batch_size": 16}))
    c3 = s["size3d"]
    for size in c3["sizes"]:
        cfg = {"dims": 3, "size": size, "method": "SegRISE", "n": c3["n"]}
        r.keep("size", r.child("size", {**cfg, "batch_size": c3["batch_size"]}))
    t3 = s["target3d"]
    cfg = {"dims": 3, "size": t3["size"], "method": "SegRISE", "n": t3["n"]}
    res = r.child("size", {**cfg, "batch_size": t3["batch_size"]})
    if res:
        res["target_check"] = True
    r.keep("size", res)


def _snapshot_rows(r: Runner, s: dict) -> None:
    """Time to the first streamed snapshot, every method, 2D and 3D."""
    sn = s["snapshot"]
    for model in ("unet2d", "unet3d"):
        for label in LABELS:
            cfg = {
                "model": model,
                "method": label,
                "n_masks": sn["n_masks"],
                "stride": sn["stride"],
                "batch_size": 16,
                "n_masks_3d": 100,
                "stride_3d": 16.0,
                "batch_size_3d": 4,
            }
            r.keep("snapshot", r.child("snapshot", cfg))


def part_scaling(r: Runner, s: dict, peers_python: str | None = None) -> None:
    """3. time and memory vs N, image size and batch size; time to the first snapshot."""
    _memory_rows(r, s)
    _size_rows(r, s)
    _snapshot_rows(r, s)


def part_early(r: Runner, s: dict, peers_python: str | None = None) -> None:
    """4. early stopping: masks used, and correlation with an independent long run."""
    e = s["early"]
    maps = r.out / "maps"
    maps.mkdir(exist_ok=True)
    runs = [(None, 1, "long_seed1"), (None, 0, "long_seed0")]
    runs += [(tol, 0, f"tol_{tol}") for tol in e["tols"]]
    for tol, seed, name in runs:
        cfg = {
            "model": "unet2d",
            "n": e["n"],
            "seed": seed,
            "tol": tol,
            "map_path": str(maps / f"{name}.npy"),
        }
        res = r.child("early", cfg)
        if res:
            res["name"] = name
        r.keep("early", res)
    correlations(r.results["early"])


def correlations(rows: list[dict]) -> None:
    """Add each early-stopping row's Pearson r with the seed-1 long run's map."""
    import numpy as np

    ref = next((x for x in rows if x["name"] == "long_seed1"), None)
    if ref is None:
        return
    a = np.load(ref["map_path"]).ravel().astype(np.float64)
    for x in rows:
        if x is ref:
            continue
        b = np.load(x["map_path"]).ravel().astype(np.float64)
        x["pearson"] = float(np.corrcoef(a, b)[0, 1])


def part_profile(r: Runner, s: dict, peers_python: str | None = None) -> None:
    """5. cProfile of one run per case."""
    p = s["profile"]
    for model, label in PROFILE_CASES:
        cfg = {
            "model": model,
            "method": label,
            "n_masks": p["n_masks"],
            "stride": p["stride"],
            "batch_size": 16,
            "n_masks_3d": p["n_masks_3d"],
            "stride_3d": p["stride_3d"],
            "batch_size_3d": 4,
        }
        r.keep("profile", r.child("profile", cfg))


def part_floor(r: Runner, s: dict, peers_python: str | None) -> None:
    """6. default batch vs the best fixed batch's forward, and each peer vs its floor."""
    import floor

    r.results["floor"] = [floor.collect(r, s["floor"], peers_python)]
    r.save()


#: Parts in the order a run measures them, with the heading printed before each.
PARTS = (
    ("overhead", "1. overhead", part_overhead),
    ("side", "2. side by side", part_side),
    ("scaling", "3. scaling", part_scaling),
    ("early", "4. early stopping", part_early),
    ("side3d", "2b. side by side in 3D", part_side3d),
    ("profile", "5. profiles", part_profile),
    ("floor", "6. default batch and the floor", part_floor),
)


def run_parts(r: Runner, s: dict, chosen: set[str], peers_python: str | None) -> None:
    """Run the chosen parts in order, each after the machine has quietened down."""
    for name, heading, part in PARTS:
        if name in chosen:
            wait_for_quiet(r.args.max_load, 180)
            print(heading, flush=True)
            part(r, s, peers_python)


def keep_previous(r: Runner, prev: dict, chosen: set[str]) -> None:
    """A subset run: keep the other parts' results (and errors) from the previous run."""
    rerun = {k for p in chosen for k in PART_KEYS[p]}
    for key, value in prev.items():
        if key not in ("meta", "errors") and key not in rerun:
            r.results[key] = value
    r.results["errors"] = [e for e in prev.get("errors", []) if error_key(e["kind"]) not in rerun]
    r.results["meta"]["merged_from"] = prev.get("meta", {}).get("date")
