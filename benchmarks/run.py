"""Run maskscope's benchmark suite and write a markdown report with plots.

    python benchmarks/run.py                       # full run (about 30 minutes on 2 cores)
    python benchmarks/run.py --quick               # a few minutes
    python benchmarks/run.py --device cuda         # on a GPU
    python benchmarks/run.py --parts overhead,scaling --out /tmp/bench
    python benchmarks/run.py --report-only         # rebuild report, plots, docs

Parts (every configuration runs in a fresh process, ``benchmarks/parts.py``):

1. overhead  wall time / pure batched forward time per method (``overhead.py``), 2D and 3D,
             and the engine's own ms per mask with a near-free 1×1-convolution model;
2. side      side by side with interpret-segmentation, muppet-xai, captum, captum-rise and
             MONAI on the same model, image and number of evaluations (needs the peers'
             venv: ``bash benchmarks/setup_peers.sh``);
   side3d    every tool on the 3D phantom with the 3D U-Net: which can run, at what cost;
3. scaling   time and peak memory vs N (``memory.py``), image size and batch size; time
             to the first streamed snapshot;
4. early     early stopping: masks used and correlation with a long-run map;
5. profile   cProfile of one run per method: shares of the wall time per function.

``--parts`` runs a subset and keeps the other parts' results from ``OUT/results.json``.

Writes ``OUT/results.json``, ``OUT/report.md`` and ``OUT/bench-*.png`` (matplotlib from the
peers' venv; matplotlib is not a maskscope dependency), then copies the tables into
``docs/benchmarks.md`` and the plots into ``docs/images/`` (``--no-docs`` to skip).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
STUBS = HERE / "stubs"
LABELS = ("RISE", "SegRISE", "PixelRISE-mean", "PixelRISE-max", "HDM")

#: Peer tools, the maskscope method each is compared with, and whether the evaluation
#: counts differ by design (then the ratio is per evaluation).
PEERS = {
    "interpret-segmentation:RISE": ("PixelRISE-mean", "PixelRISE-max"),
    "interpret-segmentation:HDM": ("HDM",),
    "muppet:SegRISE": ("SegRISE",),
    "captum:Occlusion": ("HDM",),
    "captum-rise": ("RISE",),
    "monai:OcclusionSensitivity": ("HDM",),
}
NEEDS_STUBS = {"interpret-segmentation:HDM", "muppet:SegRISE"}
#: Peers that evaluate one image per model call; maskscope also runs at batch 1 for them.
UNBATCHED = {
    "interpret-segmentation:RISE",
    "interpret-segmentation:HDM",
    "muppet:SegRISE",
    "captum-rise",
}
#: maskscope at batch 1 (label suffix "@1"): memory compared with the unbatched peers.
OURS_BATCH1 = ("RISE", "SegRISE", "PixelRISE-mean", "HDM")


def settings(quick: bool) -> dict:
    """Sizes of every part: full, or quick (a few minutes)."""
    if quick:
        return {
            "overhead": {
                "n_masks": 200,
                "stride": 10.0,
                "batch_size": 16,
                "repeats": 1,
                "n_masks_3d": 24,
                "stride_3d": 32.0,
                "batch_size_3d": 4,
                "models": ["unet2d", "1x1", "unet3d"],
            },
            "side": {
                "unet2d": {"n": 100, "offset": 10, "repeats": 1},
                "1x1": {"n": 100, "offset": 10, "repeats": 1},
            },
            "n_scaling": {"SegRISE": [500, 8000]},
            "size2d": {"sizes": [128, 256], "n": 64},
            "size3d": {"sizes": [32, 64], "n": 8, "batch_size": 4},
            "target3d": {"size": 128, "n": 16, "batch_size": 16},
            "batch": {"sizes": [4, 16], "n": 128},
            "snapshot": {"n_masks": 1000, "stride": 5.0},
            "early": {"n": 2000, "tols": [0.15, 0.1]},
            "profile": {"n_masks": 200, "stride": 10.0, "n_masks_3d": 12, "stride_3d": 32.0},
            "side3d": {"n": 8, "diameter": 16, "offset": 16, "batch_size": 4},
            "timeout": 900,
        }
    return {
        "overhead": {
            "n_masks": 1000,
            "stride": 5.0,
            "batch_size": 16,
            "repeats": 3,
            "n_masks_3d": 100,
            "stride_3d": 16.0,
            "batch_size_3d": 4,
            "models": ["unet2d", "1x1", "unet3d", "1x1-3d"],
        },
        "side": {
            "unet2d": {"n": 500, "offset": 5, "repeats": 1},
            "1x1": {"n": 250, "offset": 5, "repeats": 3},
        },
        "n_scaling": {
            "SegRISE": [250, 500, 1000, 2000, 4000, 8000],
            "PixelRISE": [250, 500, 2000, 8000],
        },
        "size2d": {"sizes": [128, 256, 384, 512], "n": 200},
        "size3d": {"sizes": [32, 64, 96, 128], "n": 32, "batch_size": 4},
        "target3d": {"size": 128, "n": 64, "batch_size": 16},
        "batch": {"sizes": [1, 4, 16, 64], "n": 512},
        "snapshot": {"n_masks": 1000, "stride": 5.0},
        "early": {"n": 8000, "tols": [0.15, 0.1, 0.075, 0.05]},
        "profile": {"n_masks": 1000, "stride": 5.0, "n_masks_3d": 40, "stride_3d": 16.0},
        "side3d": {"n": 32, "diameter": 16, "offset": 16, "batch_size": 4},
        "timeout": 2400,
    }


# ------------------------------------------------------------------------------ processes
class Runner:
    """Starts one process per configuration and keeps every result in results.json."""

    def __init__(self, args, out: Path) -> None:
        self.args = args
        self.out = out
        self.results: dict = {
            "meta": {},
            "overhead": [],
            "side": [],
            "n_scaling": [],
            "size": [],
            "batch": [],
            "snapshot": [],
            "early": [],
            "errors": [],
        }

    def env(self, stubs: bool = False) -> dict:
        env = dict(os.environ)
        paths = [str(ROOT / "src")] + ([str(STUBS)] if stubs else [])
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("LOGURU_LEVEL", "WARNING")
        env["OMP_NUM_THREADS"] = str(self.args.threads)
        return env

    def child(
        self,
        kind: str,
        cfg: dict,
        *,
        python: str | None = None,
        stubs: bool = False,
        timeout: float | None = None,
    ) -> dict | None:
        cfg = {"device": self.args.device, "threads": self.args.threads, **cfg}
        label = f"{kind} {json.dumps(cfg, sort_keys=True)}"
        print(f"  {label[:150]}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [python or sys.executable, str(HERE / "parts.py"), kind, json.dumps(cfg)],
                capture_output=True,
                text=True,
                env=self.env(stubs),
                timeout=timeout or self.args.timeout,
            )
        except subprocess.TimeoutExpired:
            self.error(kind, cfg, f"timed out after {timeout or self.args.timeout:.0f} s")
            return None
        if proc.returncode != 0:
            tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-3:]
            self.error(kind, cfg, " / ".join(tail) or f"exit code {proc.returncode}")
            return None
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["process_s"] = time.perf_counter() - t0
        return res

    def error(self, kind: str, cfg: dict, message: str) -> None:
        print(f"    ERROR: {message}", flush=True)
        self.results["errors"].append({"kind": kind, "cfg": cfg, "error": message})
        self.save()

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))


def _error_key(kind: str) -> str:
    return {"batch": "batch", "n_scaling": "n_scaling"}.get(kind, kind)


def git_state() -> str:
    """The checkout measured: commit, and whether src/ has uncommitted changes (read-only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Sleep while the 1-minute load is above ``max_load`` (at most ``max_wait`` seconds)."""
    waited = 0.0
    while load_average() > max_load and waited < max_wait:
        print(f"load {load_average():.2f} > {max_load}: waiting 60 s", flush=True)
        time.sleep(60)
        waited += 60
    return load_average()


# ---------------------------------------------------------------------------------- parts
def part_overhead(r: Runner, s: dict) -> None:
    o = s["overhead"]
    for model in o["models"]:
        for label in LABELS:
            cfg = {k: v for k, v in o.items() if k != "models"}
            res = r.child("overhead", {**cfg, "model": model, "method": label})
            if res:
                r.results["overhead"].append(res)
                r.save()


def part_side(r: Runner, s: dict, peers_python: str | None) -> None:
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
                    r.results["side"].append(res)
                    r.save()


def part_scaling(r: Runner, s: dict) -> None:
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
            r.results["n_scaling"].append({**res, "method": label, "model": "1x1"})
            r.save()
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
        r.results["batch"].append({**res, "batch_size": n_bs, "method": "SegRISE"})
        r.save()
    for size in s["size2d"]["sizes"]:
        res = r.child(
            "size",
            {"dims": 2, "size": size, "method": "SegRISE", "n": s["size2d"]["n"], "batch_size": 16},
        )
        if res:
            r.results["size"].append(res)
            r.save()
    c3 = s["size3d"]
    for size in c3["sizes"]:
        res = r.child(
            "size",
            {
                "dims": 3,
                "size": size,
                "method": "SegRISE",
                "n": c3["n"],
                "batch_size": c3["batch_size"],
            },
        )
        if res:
            r.results["size"].append(res)
            r.save()
    t3 = s["target3d"]
    res = r.child(
        "size",
        {
            "dims": 3,
            "size": t3["size"],
            "method": "SegRISE",
            "n": t3["n"],
            "batch_size": t3["batch_size"],
        },
    )
    if res:
        res["target_check"] = True
        r.results["size"].append(res)
        r.save()
    sn = s["snapshot"]
    for model, labels in (("unet2d", LABELS), ("unet3d", LABELS)):
        for label in labels:
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
            res = r.child("snapshot", cfg)
            if res:
                r.results["snapshot"].append(res)
                r.save()


#: Why a peer cannot explain a volume (read from their code; the error is shown beside it).
NO_3D = {
    "interpret-segmentation:RISE": "2D only: generate_masks draws (N, s, s) grids and resizes "
    "each to the input size",
    "interpret-segmentation:HDM": "2D only: explain() asserts a (C, H, W) image; the masks are "
    "PIL ellipses",
    "muppet:SegRISE": "its Dice attributor permutes one-hot outputs as (0, 3, 1, 2): "
    "(B, K, H, W) only",
    "captum-rise": "documented for 3D masks, but its mask generator loops over two axes and "
    "upsamples with mode='bilinear' (4D tensors only)",
}


def last_error_line(message: str) -> str:
    """The exception line of a ' / '-joined stderr tail."""
    parts = [p.strip() for p in message.split(" / ") if p.strip()]
    for p in reversed(parts):
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", p):
            return p
    return parts[-1] if parts else message


#: Which results.json keys each part writes (a subset run keeps the others).
PART_KEYS = {
    "overhead": ("overhead",),
    "side": ("side",),
    "side3d": ("side3d",),
    "scaling": ("n_scaling", "size", "batch", "snapshot"),
    "early": ("early",),
    "profile": ("profile",),
}
#: Cases profiled with cProfile (part 5).
PROFILE_CASES = [("1x1", m) for m in LABELS] + [
    ("unet2d", "PixelRISE-max"),
    ("unet2d", "HDM"),
    ("unet3d", "SegRISE"),
    ("unet3d", "PixelRISE-max"),
    ("unet3d", "HDM"),
]


def part_side3d(r: Runner, s: dict, peers_python: str | None) -> None:
    """Every tool on the 3D phantom with the 3D U-Net: which can run, and at what cost."""
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


def part_profile(r: Runner, s: dict) -> None:
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
        res = r.child("profile", cfg)
        if res:
            r.results.setdefault("profile", []).append(res)
            r.save()


def part_early(r: Runner, s: dict) -> None:
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
            r.results["early"].append(res)
            r.save()
    _correlations(r.results["early"])


def _correlations(rows: list[dict]) -> None:
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


# --------------------------------------------------------------------------------- report
def fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def side_summary(rows: list[dict]) -> dict:
    """(tool, model) → medians of wall, peak RSS and counts over repeats."""
    groups: dict = {}
    for x in rows:
        groups.setdefault((x["tool"], x["model"]), []).append(x)
    out = {}
    for key, xs in groups.items():
        med = {k: statistics.median(x[k] for x in xs) for k in ("wall", "peak_mb", "growth_mb")}
        out[key] = {**xs[0], **med, "repeats": len(xs)}
    return out


def _by(rows, **match):
    return [x for x in rows if all(x.get(k) == v for k, v in match.items())]


def check(target: str, measured: str, ok: bool | None) -> list:
    return [target, measured, "–" if ok is None else ("**pass**" if ok else "**FAIL**")]


def targets(res: dict) -> list[list]:
    rows = []
    for model in ("unet2d", "unet3d"):
        dim = "240² U-Net" if model == "unet2d" else "64×96×96 U-Net"
        for label in LABELS:
            x = _by(res["overhead"], model=model, method=label)
            if not x:
                continue
            lim = 1.10 if label in ("RISE", "SegRISE", "PixelRISE-mean") else 1.25
            seg = f" (segment {x[0]['segment_px']} px)" if label == "PixelRISE-max" else ""
            rows.append(
                check(
                    f"{label} wall ≤ {lim:.2f}× floor, {dim}{seg}",
                    f"{x[0]['ratio']:.3f}×",
                    x[0]["ratio"] <= lim,
                )
            )
    for label in LABELS:
        x = _by(res["overhead"], model="1x1", method=label)
        if x:
            lim = 0.5 if label in ("RISE", "SegRISE", "PixelRISE-mean") else 2.0
            ms = x[0]["engine_ms_per_mask"]
            rows.append(
                check(
                    f"{label} engine ≤ {lim} ms/mask (1×1 model, 240²)", f"{ms:.3f} ms", ms <= lim
                )
            )
    side = side_summary(res["side"])
    for model in ("unet2d", "1x1"):
        for peer, need in (
            ("interpret-segmentation:RISE", 3.0),
            ("muppet:SegRISE", 3.0),
            ("interpret-segmentation:HDM", 2.0),
        ):
            theirs = side.get((peer, model))
            for ours_label in PEERS[peer]:
                ours = side.get((f"maskscope:{ours_label}", model))
                if theirs and ours:
                    ratio = theirs["wall"] / ours["wall"]
                    rows.append(
                        check(
                            f"≥ {need:g}× faster than {peer} ({ours_label}, {model})",
                            f"{ratio:.2f}×",
                            ratio >= need,
                        )
                    )
                elif ours:
                    rows.append(
                        check(f"≥ {need:g}× faster than {peer} ({model})", "peer did not run", None)
                    )
        for peer, mine in PEERS.items():
            theirs = side.get((peer, model))
            for ours_label in mine:
                variants = [ours_label]
                if peer in UNBATCHED and ours_label in OURS_BATCH1:
                    variants.append(f"{ours_label}@1")
                for v in variants:
                    ours = side.get((f"maskscope:{v}", model))
                    if theirs and ours:
                        batch = "batch 1" if v.endswith("@1") else "batched"
                        rows.append(
                            check(
                                f"lower peak RSS than {peer} ({ours_label} {batch}, {model})",
                                f"{ours['peak_mb']:.0f} vs {theirs['peak_mb']:.0f} MB",
                                ours["peak_mb"] < theirs["peak_mb"],
                            )
                        )
    for label in ("SegRISE", "PixelRISE-max"):
        xs = {x["n"]: x for x in _by(res["n_scaling"], method=label)}
        if 500 in xs and 8000 in xs:
            q = xs[8000]["peak_mb"] / xs[500]["peak_mb"]
            rows.append(
                check(
                    f"{label} peak RSS flat in N (8000 / 500 ≤ 1.10, 1×1 model)",
                    f"{xs[8000]['peak_mb']:.0f} / {xs[500]['peak_mb']:.0f} MB = {q:.3f}",
                    q <= 1.10,
                )
            )
    for x in res["size"]:
        if x.get("target_check"):
            rows.append(
                check(
                    f"SegRISE on {x['size']}³ with the 3D U-Net < 2 GB (batch {x['batch_size']})",
                    f"{x['peak_mb']:.0f} MB peak RSS",
                    x["peak_mb"] < 2048,
                )
            )
    for x in res["snapshot"]:
        rows.append(
            check(
                f"first snapshot after ≤ 1 chunk: {x['method']} "
                f"({x['model']}, batch {x['batch_size']})",
                f"{x['first_n_done']} masks, {x['first_s']:.2f} s "
                f"(1 chunk: {x['one_chunk_floor_s']:.2f} s)",
                x["first_n_done"] <= x["batch_size"],
            )
        )
    return rows


def report(res: dict, s: dict) -> str:
    meta = res["meta"]
    parts = [
        "# maskscope benchmarks",
        "",
        f"{meta.get('date')} · {meta.get('mode')} run · torch {meta.get('torch')} · "
        f"{meta.get('threads')} torch thread(s) · device {meta.get('device')} · "
        f"{meta.get('cpu')} · maskscope {meta.get('git')} · "
        f"load average at start {meta.get('load_start')}, "
        f"at end {meta.get('load_end')} · total {meta.get('total_min', 0):.1f} min",
        "",
        "Every configuration ran in a fresh process. Times are wall-clock seconds; the "
        "machine is shared, so compare ratios measured in the same run.",
        *(
            [
                "",
                f"**Warning: the checkout changed during the run** ({meta.get('git')} at the "
                f"start, {meta.get('git_end')} at the end): parts measured different code.",
            ]
            if meta.get("git_end") and meta.get("git_end") != meta.get("git")
            else []
        ),
        *(["", f"Note: {meta['note']}"] if meta.get("note") else []),
        "",
        "## Targets",
        "",
        table(["target", "measured", "result"], targets(res), "llc"),
        "",
    ]
    if res["overhead"]:
        o = s["overhead"]
        parts += [
            "## 1. Overhead vs the physical floor",
            "",
            f"Wall time of `explain()` / time of the model alone on the same number of inputs at "
            f"the same batch size (under `inference_mode`); runs and floors interleaved, median "
            f"of {o['repeats']}. 2D: `shapes2d(seed=7)` 240×240, N={o['n_masks']}, grid 8, "
            f"batch {o['batch_size']} at most (maskscope's automatic limit of 2¹⁹ input voxels "
            f"per call on a CPU gives 9; the floor runs at the batch size used), HDM diameter 25 "
            f"stride {o['stride']:g}. 3D: "
            f"`phantom3d(seed=3)` 1×64×96×96, spacing (2, 1, 1), N={o['n_masks_3d']}, grid 6, "
            f"batch {o['batch_size_3d']} at most (2 used), HDM diameter 16 stride "
            f"{o['stride_3d']:g} (mm). "
            "engine ms/mask = (wall − floor) / forwards.",
            "",
            table(
                ["model", "method", "forwards", "wall (s)", "floor (s)", "ratio", "engine ms/mask"],
                [
                    [
                        x["model"],
                        x["method"],
                        x["forwards"],
                        x["wall"],
                        x["floor"],
                        f"{x['ratio']:.3f}",
                        f"{x['engine_ms_per_mask']:.3f}",
                    ]
                    for x in res["overhead"]
                ],
                "llrrrrr",
            ),
            "",
            "![overhead](images/bench-overhead.png)",
            "",
        ]
    parts += side_report(res, s)
    parts += side3d_report(res, s)
    parts += scaling_report(res)
    parts += early_report(res, s)
    parts += profile_report(res)
    if res["errors"]:
        parts += ["## Configurations that did not run", ""]
        parts += [f"- `{e['kind']}` {json.dumps(e['cfg'])}: {e['error']}" for e in res["errors"]]
        parts.append("")
    return "\n".join(parts)


def side_report(res: dict, s: dict) -> list[str]:
    if not res["side"]:
        note = res["meta"].get("side_note", "not run")
        return ["## 2. Side by side with the existing tools", "", note, ""]
    side = side_summary(res["side"])
    out = ["## 2. Side by side with the existing tools", ""]
    out.append(
        "Same model, same image (`shapes2d(seed=7)`, 240×240), same number of masks N (RISE "
        "family: grid 8, keep probability 0.5) or the same occluder sweep (diameter 25 px, "
        "offset as given below; captum and MONAI slide a square that must fit inside the "
        "image, so they make fewer evaluations and are compared per evaluation), batch 16 "
        "where the tool batches (maskscope: at most 16 and at most 2¹⁹ input voxels per call, "
        "its CPU default, i.e. 9 images of 240²; `@1`: maskscope at batch 1, as the peers "
        "that call the model once per image), each run in a fresh process of the peers' "
        "venv (same torch), one torch thread. `evaluations` = images through the model, "
        "counted by a wrapper module (including the unperturbed reference). interpret-"
        "segmentation's RISE gives the mean and the max merge from one run and re-runs all "
        "N masks for every 1000 pixels of its segment (pixels above the mean probability); "
        "its time includes `generate_masks`. Peak RSS is the "
        "process's `ru_maxrss` (imports, model and run); growth = peak − RSS just before the "
        "timed call. Peers run under `torch.no_grad()`; maskscope under its own "
        "`inference_mode`. Scalar-output tools (captum, captum-rise, MONAI) explain the mean "
        "target probability over the reference segment (maskscope's RISE score)."
    )
    out.append("")
    for model, c in s["side"].items():
        name = "bundled 2D U-Net" if model == "unet2d" else "near-free 1×1 convolution"
        out += [
            f"### {name} (N = {c['n']}, offset {c['offset']} px, median of {c['repeats']} run(s))",
            "",
        ]
        rows = []
        ours_tools = [f"maskscope:{m}" for m in LABELS] + [f"maskscope:{m}@1" for m in OURS_BATCH1]
        for tool in ours_tools + list(PEERS):
            x = side.get((tool, model))
            if not x:
                continue
            rows.append(
                [
                    tool,
                    x["evaluations"],
                    x["calls"],
                    x["wall"],
                    1000 * x["wall"] / max(x["evaluations"], 1),
                    x["peak_mb"],
                    x["growth_mb"],
                ]
            )
        out += [
            table(
                [
                    "tool",
                    "evaluations",
                    "model calls",
                    "wall (s)",
                    "ms / evaluation",
                    "peak RSS (MB)",
                    "growth (MB)",
                ],
                rows,
            ),
            "",
        ]
        rows = []
        for peer, mine in PEERS.items():
            theirs = side.get((peer, model))
            for ours_label in mine:
                ours = side.get((f"maskscope:{ours_label}", model))
                if not ours:
                    continue
                if not theirs:
                    err = next(
                        (
                            e["error"]
                            for e in res["errors"]
                            if e["kind"] == "side"
                            and e["cfg"].get("tool") == peer
                            and e["cfg"].get("model") == model
                        ),
                        "not run",
                    )
                    err = last_error_line(err)[:160]
                    rows.append([peer, ours_label, "–", "–", "–", f"did not run: `{err}`"])
                    continue
                same = theirs["wall"] / ours["wall"]
                per_eval = (theirs["wall"] / theirs["evaluations"]) / (
                    ours["wall"] / ours["evaluations"]
                )
                note = ""
                if theirs["evaluations"] != ours["evaluations"]:
                    note = f"{theirs['evaluations']} vs {ours['evaluations']} evaluations"
                    if "pixels" in theirs:
                        note += f" ({theirs['pixels']} px, re-run per 1000 px)"
                if "mask_generation_s" in theirs:
                    note += f"; their mask generation {theirs['mask_generation_s']:.1f} s"
                rows.append(
                    [
                        peer,
                        ours_label,
                        f"{same:.2f}×",
                        f"{per_eval:.2f}×",
                        f"{theirs['peak_mb'] / ours['peak_mb']:.2f}×",
                        note.strip("; "),
                    ]
                )
        out += [
            table(
                [
                    "peer",
                    "maskscope method",
                    "speed-up (same N)",
                    "speed-up per evaluation",
                    "peak RSS theirs / ours",
                    "notes",
                ],
                rows,
                "llrrrl",
            ),
            "",
        ]
    out += ["![side by side](images/bench-peers.png)", ""]
    return out


def side3d_report(res: dict, s: dict) -> list[str]:
    runs = res.get("side3d") or []
    errors = [e for e in res["errors"] if e["kind"] == "side3d"]
    if not runs and not errors:
        return []
    c = s.get("side3d", {})
    out = [
        "### 3D: the 3D U-Net on `phantom3d(seed=3)` (1×64×96×96)",
        "",
        f"N = {c.get('n')} masks (grid 6), or a ball / cube of {c.get('diameter')} voxels "
        f"every {c.get('offset')} voxels, batch {c.get('batch_size')} where the tool "
        "batches. Which tools can explain a volume at all, and at what cost per evaluation.",
        "",
    ]
    rows = []
    for x in runs:
        rows.append(
            [
                x["tool"],
                "yes",
                x["evaluations"],
                x["wall"],
                1000 * x["wall"] / max(x["evaluations"], 1),
                x["peak_mb"],
                "",
            ]
        )
    for e in errors:
        tool = e["cfg"]["tool"]
        why = NO_3D.get(tool, "")
        err = last_error_line(e["error"])[:160]
        rows.append([tool, "**no**", "–", "–", "–", "–", f"{why}{': ' if why else ''}`{err}`"])
    out += [
        table(
            [
                "tool",
                "runs in 3D",
                "evaluations",
                "wall (s)",
                "ms / evaluation",
                "peak RSS (MB)",
                "why not",
            ],
            rows,
            "lcrrrrl",
        ),
        "",
    ]
    return out


def scaling_report(res: dict) -> list[str]:
    out = ["## 3. Scaling", ""]
    if res["n_scaling"]:
        out += [
            "### vs the number of masks N (near-free 1×1 model, 240², batch ≤ 16; memory.py)",
            "",
            table(
                [
                    "method",
                    "N",
                    "wall (s)",
                    "ms / mask",
                    "peak RSS (MB)",
                    "growth over warm-up (MB)",
                ],
                [
                    [
                        x["method"],
                        x["n"],
                        x["wall"],
                        1000 * x["wall"] / x["n"],
                        x["peak_mb"],
                        x["growth_mb"],
                    ]
                    for x in res["n_scaling"]
                ],
            ),
            "",
        ]
    if res["size"]:
        out += [
            "### vs the image size (SegRISE, bundled U-Nets)",
            "",
            "3D volumes are `phantom3d(seed=3, shape=(s, s, s))` with the 3D U-Net "
            "(trained at 64×96×96).",
            "",
            table(
                [
                    "dims",
                    "size",
                    "voxels",
                    "N",
                    "batch",
                    "wall (s)",
                    "floor (s)",
                    "ratio",
                    "ms / mask",
                    "peak RSS (MB)",
                ],
                [
                    [
                        x["dims"],
                        f"{x['size']}{'²' if x['dims'] == 2 else '³'}",
                        x["voxels"],
                        x["n"],
                        x["batch_size"],
                        x["wall"],
                        x["floor"],
                        f"{x['ratio']:.3f}",
                        1000 * x["wall"] / x["n"],
                        x["peak_mb"],
                    ]
                    for x in res["size"]
                ],
            ),
            "",
        ]
    if res["batch"]:
        out += [
            "### vs the batch size (SegRISE, 2D U-Net, 240²; memory.py)",
            "",
            table(
                [
                    "batch",
                    "N",
                    "wall (s)",
                    "ms / mask",
                    "peak RSS (MB)",
                    "growth over warm-up (MB)",
                ],
                [
                    [
                        x["batch_size"],
                        x["n"],
                        x["wall"],
                        1000 * x["wall"] / x["n"],
                        x["peak_mb"],
                        x["growth_mb"],
                    ]
                    for x in res["batch"]
                ],
            ),
            "",
        ]
    if res["snapshot"]:
        out += [
            "### Time to the first streamed snapshot (`iter_explain`)",
            "",
            "One chunk = the unperturbed reference forward + one batch of perturbed inputs "
            "(model alone).",
            "",
            table(
                [
                    "model",
                    "method",
                    "batch",
                    "masks in first snapshot",
                    "of",
                    "first snapshot (s)",
                    "one chunk, model only (s)",
                ],
                [
                    [
                        x["model"],
                        x["method"],
                        x["batch_size"],
                        x["first_n_done"],
                        x["n_total"],
                        x["first_s"],
                        x["one_chunk_floor_s"],
                    ]
                    for x in res["snapshot"]
                ],
                "llrrrrr",
            ),
            "",
        ]
    out += ["![scaling](images/bench-scaling.png)", ""]
    return out


def early_report(res: dict, s: dict) -> list[str]:
    if not res["early"]:
        return []
    e = s["early"]
    rows = []
    for x in res["early"]:
        if x["name"] == "long_seed1":
            continue
        what = f"tol = {x['tol']}" if x["tol"] is not None else f"no tol (seed 0, N={x['n_max']})"
        rows.append(
            [what, x["masks_used"], x["wall"], fmt(x["rel_error"], 4), fmt(x.get("pearson"), 4)]
        )
    return [
        "## 4. Early stopping (SegRISE, 2D U-Net, 240²)",
        "",
        f"`SegRISE(...).explain(image, n_masks={e['n']}, tol=...)` with seed 0, compared "
        f"with an independent long run (seed 1, N={e['n']}): Pearson correlation of the "
        "maps. `rel. error` is the RMS standard error over the map's range when the run "
        "stopped.",
        "",
        table(["run", "masks used", "wall (s)", "rel. error", "Pearson r vs long run"], rows),
        "",
        "![early stopping](images/bench-early.png)",
        "",
    ]


def profile_report(res: dict) -> list[str]:
    rows = res.get("profile") or []
    if not rows:
        return []
    out = [
        "## 5. Where the time goes (cProfile)",
        "",
        "One `explain()` run per case under cProfile (which adds a little per Python call). "
        "Shares are of the profiled wall time; a function's cumulative time includes the "
        "functions it calls, so shares overlap. `floor` is the model alone on the same "
        "inputs, without the profiler.",
        "",
    ]
    for x in rows:
        wall = x["wall"]
        out += [
            f"### {x['method']}, {x['model']}: {x['forwards']} evaluations, wall "
            f"{wall:.2f} s, floor {x['floor']:.2f} s "
            f"(engine {1000 * (wall - x['floor']) / x['forwards']:.2f} ms/mask)",
            "",
        ]
        frows = [
            [
                "`{}:{} {}`".format(
                    *f["function"].split(":", 1)[:1], f["line"], f["function"].split(":", 1)[1]
                ),
                f["calls"],
                f["cum_s"],
                f"{100 * f['cum_s'] / wall:.1f} %",
                f"{100 * f['self_s'] / wall:.1f} %",
            ]
            for f in x["functions"][:10]
        ]
        brows = [
            [f"`{b['function']}`", b["calls"], b["self_s"], f"{100 * b['self_s'] / wall:.1f} %"]
            for b in x["builtins"][:6]
        ]
        out += [
            table(
                ["maskscope function", "calls", "cumulative (s)", "cum. share", "self share"], frows
            ),
            "",
            table(["torch built-in", "calls", "self (s)", "share"], brows),
            "",
        ]
    return out


# ---------------------------------------------------------------------------------- docs
DOCS_START = "<!-- results:start (written by benchmarks/run.py) -->"
DOCS_END = "<!-- results:end -->"


def write_docs(report_md: str, out: Path) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for png in out.glob("bench-*.png"):
        shutil.copy(png, images / png.name)
    body = report_md.split("\n", 1)[1].lstrip("\n")  # drop the report's own title
    body = re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M)  # one level below the page title
    text = docs.read_text() if docs.exists() else f"# Benchmarks\n\n{DOCS_START}\n{DOCS_END}\n"
    if DOCS_START not in text:
        text += f"\n{DOCS_START}\n{DOCS_END}\n"
    head, rest = text.split(DOCS_START, 1)
    tail = rest.split(DOCS_END, 1)[1] if DOCS_END in rest else "\n"
    docs.write_text(f"{head}{DOCS_START}\n\n{body}\n{DOCS_END}{tail}")
    print(f"wrote {docs.relative_to(ROOT)} and docs/images/bench-*.png")


def plots(out: Path, peers_python: str | None) -> None:
    python = peers_python
    if python is None:
        try:
            import matplotlib  # noqa: F401

            python = sys.executable
        except ImportError:
            print("no matplotlib (peers' venv missing): plots skipped")
            return
    proc = subprocess.run(
        [python, str(HERE / "plots.py"), str(out / "results.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        print("plots failed:", proc.stderr[-800:])


# ---------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--parts", default="overhead,side,side3d,scaling,early,profile")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--peers-python", default=None, help=f"python of the peers' venv (default {PEERS_PYTHON})"
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.5,
        help="wait while the 1-minute load average is above this",
    )
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait at most")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per process")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/ alone")
    parser.add_argument("--note", default=None, help="a remark printed under the report's header")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild report, plots and docs from OUT/results.json",
    )
    args = parser.parse_args()
    s = settings(args.quick)
    args.timeout = args.timeout or s["timeout"]
    args.out.mkdir(parents=True, exist_ok=True)
    peers = args.peers_python or (str(PEERS_PYTHON) if PEERS_PYTHON.exists() else None)
    r = Runner(args, args.out)
    if args.report_only:
        r.results = json.loads((args.out / "results.json").read_text())
    else:
        import torch

        load = wait_for_quiet(args.max_load, args.max_wait)
        r.results["meta"] = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "mode": "quick" if args.quick else "full",
            "torch": torch.__version__,
            "threads": args.threads,
            "device": args.device,
            "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_start": round(load, 2),
            "git": git_state(),
            "settings": s,
        }
        t0 = time.perf_counter()
        chosen = set(args.parts.split(","))
        unknown = chosen - set(PART_KEYS)
        if unknown:
            raise SystemExit(f"--parts: unknown {sorted(unknown)}; parts are {list(PART_KEYS)}")
        old = args.out / "results.json"
        if chosen != set(PART_KEYS) and old.exists():
            # a subset run: keep the other parts' results from the previous run
            prev = json.loads(old.read_text())
            rerun = {k for p in chosen for k in PART_KEYS[p]}
            for key, value in prev.items():
                if key not in ("meta", "errors") and key not in rerun:
                    r.results[key] = value
            r.results["errors"] = [
                e for e in prev.get("errors", []) if _error_key(e["kind"]) not in rerun
            ]
            r.results["meta"]["merged_from"] = prev.get("meta", {}).get("date")
        if "overhead" in chosen:
            wait_for_quiet(args.max_load, 180)
            print("1. overhead", flush=True)
            part_overhead(r, s)
        if "side" in chosen:
            wait_for_quiet(args.max_load, 180)
            print("2. side by side", flush=True)
            part_side(r, s, peers)
        if "scaling" in chosen:
            wait_for_quiet(args.max_load, 180)
            print("3. scaling", flush=True)
            part_scaling(r, s)
        if "early" in chosen:
            wait_for_quiet(args.max_load, 180)
            print("4. early stopping", flush=True)
            part_early(r, s)
        if "side3d" in chosen:
            wait_for_quiet(args.max_load, 180)
            print("2b. side by side in 3D", flush=True)
            part_side3d(r, s, peers)
        if "profile" in chosen:
            wait_for_quiet(args.max_load, 180)
            print("5. profiles", flush=True)
            part_profile(r, s)
        r.results["meta"]["load_end"] = round(load_average(), 2)
        r.results["meta"]["git_end"] = git_state()
        r.results["meta"]["total_min"] = (time.perf_counter() - t0) / 60
        r.save()
    plots(args.out, peers)
    if args.note:
        r.results["meta"]["note"] = args.note
        r.save()
    md = report(r.results, r.results["meta"].get("settings", s))
    (args.out / "report.md").write_text(md)
    print(f"wrote {args.out / 'report.md'}")
    if not args.no_docs:
        write_docs(md, args.out)


if __name__ == "__main__":
    main()
