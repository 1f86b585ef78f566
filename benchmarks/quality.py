"""Map quality: maskscope's methods and the peers' at equal forward budgets, scored alike.

Two cases (``cases.py``): the bundled 2D sample ``shapes2d(seed=1)`` with the bundled U-Net,
and nibabel's real MRI volume with a MONAI U-Net trained on it here. Every tool runs in
the peers' venv (``bash benchmarks/setup_peers.sh``; maskscope from ``src/``), one process
per (case, tool), two seeds when it is random; its maps go to ``.npy`` files. All scoring
then happens here, in one place, with the same settings for every map:

- seed agreement: Pearson correlation of the two seeds' maps (maskscope also reports the
  reliability it predicted for it);
- deletion and insertion AUC (``maskscope.evaluate.faithfulness``, zero substrate, the same
  ``--steps``; Dice of the perturbed prediction and mean target probability over the
  segment) and the random-order baseline;
- the share of the saliency on the segment (the model's prediction) and, on shapes2d, on
  the decisive shape: of the mass above the map's median, and of the top-5 % voxels.

Budgets: ``--n2d`` / ``--n3d`` masks for the RISE family; occlusion tools get the stride
whose number of occluder positions is closest to the same budget (printed: the forwards
counted per run).

    python benchmarks/quality.py                   # both cases (~15 min on 2 slow cores)
    python benchmarks/quality.py --markdown        # and write docs/benchmarks.md#map-quality
    python benchmarks/quality.py --cases shapes2d --tools maskscope:SegRISE muppet:SegRISE
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import quality_report  # noqa: E402  (benchmarks/quality_report.py)
from cases import Case, mri_case, shapes_case  # noqa: E402
from common import NEEDS_STUBS, NO_3D, PEERS_PYTHON, STUBS, last_error_line  # noqa: E402

from maskscope import RISEParams  # noqa: E402
from maskscope.evaluate import faithfulness, saliency_order, seed_agreement  # noqa: E402

#: Tools in report order; the stochastic ones run with two seeds.
TOOLS = (
    "maskscope:RISE",
    "maskscope:SegRISE",
    "maskscope:PixelRISE-mean",
    "maskscope:PixelRISE-max",
    "maskscope:HDM",
    "maskscope:HDM-hd95",
    "maskscope:HDM-dice",
    "interpret-segmentation:RISE",
    "interpret-segmentation:HDM",
    "muppet:SegRISE",
    "captum-rise",
    "captum:Occlusion",
    "monai:OcclusionSensitivity",
)
OCCLUSION = {
    "maskscope:HDM",
    "maskscope:HDM-hd95",
    "maskscope:HDM-dice",
    "interpret-segmentation:HDM",
    "captum:Occlusion",
    "monai:OcclusionSensitivity",
}
ONLY_2D = {"interpret-segmentation:RISE", "interpret-segmentation:HDM", "muppet:SegRISE"}
ONLY_2D |= {"captum-rise"}


# ------------------------------------------------------------------------------ budgets
def positions(tool: str, spatial: tuple[int, ...], diameter: int, stride: float) -> int:
    """Occluder positions a tool visits with this window and stride (voxels)."""
    if tool in ("captum:Occlusion", "monai:OcclusionSensitivity"):
        # windows that fit, every stride, and one more at the edge when the stride overshoots
        return math.prod(math.ceil((n - diameter) / int(stride)) + 1 for n in spatial)
    if tool == "interpret-segmentation:HDM":  # int(width / offset) per axis
        return math.prod(int(n / int(stride)) for n in spatial)
    from maskscope._engine.occlusion import CentreGrid

    return CentreGrid(spatial, float(diameter), float(stride), (1.0,) * len(spatial)).n_centres


def pick_stride(tool: str, spatial: tuple[int, ...], diameter: int, budget: int) -> float:
    """The stride whose position count is closest to ``budget`` (integers for the peers)."""
    step = 0.05 if tool.startswith("maskscope:") else 1.0
    strides = np.arange(1.0, max(spatial) + step, step)
    counts = [positions(tool, spatial, diameter, s) for s in strides]
    best = min(range(len(strides)), key=lambda i: (abs(counts[i] - budget), -strides[i]))
    return float(round(strides[best], 2))


# ------------------------------------------------------------------------------ processes
def save_case(case: Case, folder: Path) -> None:
    """What the child processes need of a case that they cannot rebuild themselves."""
    if case.name == "mri3d":
        torch.save(case.model.state_dict(), folder / "mri3d_model.pt")
        np.save(folder / "mri3d_image.npy", case.image)
        (folder / "mri3d.json").write_text(json.dumps({"spacing": list(case.spacing)}))


def child_env(stubs: bool, threads: int) -> dict:
    env = dict(os.environ)
    paths = [str(ROOT / "src")] + ([str(STUBS)] if stubs else [])
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("LOGURU_LEVEL", "WARNING")
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_tool(python: str, cfg: dict, timeout: float) -> dict:
    """One (case, tool) in a child process: its JSON line, or ``{"error": ...}``."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, str(HERE / "quality_maps.py"), json.dumps(cfg)],
            capture_output=True,
            text=True,
            env=child_env(cfg["tool"] in NEEDS_STUBS, cfg["threads"]),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-3:]
        return {"error": last_error_line(" / ".join(tail)) or f"exit code {proc.returncode}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------ scoring
def shares(saliency: np.ndarray, region: np.ndarray, top: float = 0.05) -> tuple[float, float]:
    """(share of the mass above the median, share of the top ``top`` voxels) in ``region``.

    The mass is that of ``max(map - median(map), 0)``: RISE-style maps carry an offset (the
    mean score) that differs between tools by convention; occlusion and HDM maps have a
    median near 0, where nothing changed.
    """
    pos = np.clip(saliency - np.median(saliency), 0.0, None)
    total = pos.sum()
    mass = float(pos[region].sum() / total) if total > 0 else float("nan")
    k = max(1, round(top * saliency.size))
    return mass, float(region.ravel()[saliency_order(saliency)[:k]].mean())


def aucs(result) -> dict[str, float]:
    """Deletion / insertion AUCs of the map (and of the random baseline when present)."""
    out = {}
    for kind in ("deletion", "insertion"):
        for score in ("dice", "probability"):
            out[f"{kind}_{score}"] = getattr(result, kind).auc(score)
            base = getattr(result, f"random_{kind}")
            if base is not None:
                out[f"random_{kind}_{score}"] = base.auc(score)
                out[f"random_{kind}_{score}_std"] = base.auc_std(score)
    return out


def score_map(case: Case, region: np.ndarray, saliency: np.ndarray, args, n_random: int):
    """AUCs and shares of one map, the same settings for every map."""
    res = faithfulness(
        saliency,
        model=case.model,
        image=case.image,
        steps=args.steps,
        n_random=n_random,
        seed=0,
        substrate="zero",
        batch_size=16,
    )
    row = aucs(res)
    row["eval_forwards"] = res.n_forward
    row["segment_mass"], row["segment_top"] = shares(saliency, region)
    if case.decisive is not None:
        row["decisive_mass"], row["decisive_top"] = shares(saliency, case.decisive)
    return row


def tool_rows(case: Case, region: np.ndarray, out: dict, args, first: bool) -> list[dict]:
    """One row per map name of a tool's child result (two for interpret-segmentation RISE)."""
    runs = out["runs"]
    rows = []
    for name in runs[0]["maps"]:
        maps = [np.load(r["maps"][name]) for r in runs]
        row = {
            "tool": name,
            "forwards": runs[0]["forwards"],
            "calls": runs[0]["calls"],
            "wall": runs[0]["wall"],
            "seeds": len(runs),
            "agreement": seed_agreement(maps[0], maps[1]).pearson if len(maps) > 1 else None,
            "reliability": runs[0]["reliability"],
        }
        row.update(score_map(case, region, maps[0], args, args.n_random if first else 0))
        first = False
        rows.append(row)
    return rows


def run_case(case: Case, folder: Path, args, python: str) -> dict:
    """Every tool on one case: rows, errors, budgets."""
    dims = case.image.ndim - 1
    spatial = tuple(case.image.shape[1:])
    budget = args.n2d if dims == 2 else args.n3d
    diameter = args.diameter2d if dims == 2 else args.diameter3d
    with torch.inference_mode():
        pred = case.model(torch.from_numpy(case.image)[None]).argmax(1)[0].numpy()
    region = pred == 1
    rows, errors, first = [], [], True
    for tool in args.tools:
        if dims == 3 and tool in ONLY_2D and not args.try_2d_only:
            errors.append({"tool": tool, "why": NO_3D.get(tool, "2D only"), "error": None})
            continue
        stride = pick_stride(tool, spatial, diameter, budget) if tool in OCCLUSION else 0.0
        stochastic = tool not in OCCLUSION
        cfg = {
            "case": case.name,
            "dir": str(folder),
            "tool": tool,
            "seeds": [0, 1] if stochastic else [0],
            "n": budget,
            "grid": args.grid,
            "diameter": diameter,
            "stride": stride,
            "batch": 16,
            "threads": args.threads,
        }
        print(f"  {case.name} {tool} (stride {stride})" if stride else f"  {case.name} {tool}")
        out = run_tool(python, cfg, args.timeout)
        if "error" in out:
            print(f"    ERROR: {out['error']}", flush=True)
            errors.append({"tool": tool, "why": NO_3D.get(tool, ""), "error": out["error"]})
            continue
        new = tool_rows(case, region, out, args, first)
        first = False
        for r in new:
            r["stride"] = stride
            print("    " + quality_report.one_line(r), flush=True)
        rows += new
    return {
        "case": case.name,
        "shape": list(case.image.shape),
        "budget": budget,
        "diameter": diameter,
        "segment_fraction": float(region.mean()),
        "decisive_fraction": None if case.decisive is None else float(case.decisive.mean()),
        "rows": rows,
        "errors": errors,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["shapes2d", "mri3d"])
    p.add_argument("--tools", nargs="+", default=list(TOOLS))
    p.add_argument("--n2d", type=int, default=500, help="RISE masks / occluders in 2D")
    p.add_argument("--n3d", type=int, default=1000, help="RISE masks / occluders in 3D")
    p.add_argument("--grid", type=int, default=RISEParams.grid, help="RISE grid (default: ours)")
    p.add_argument("--diameter2d", type=int, default=25, help="occluder size in 2D (px)")
    p.add_argument("--diameter3d", type=int, default=8, help="occluder size in 3D (voxels)")
    p.add_argument("--steps", type=int, default=200, help="deletion / insertion steps")
    p.add_argument("--n-random", type=int, default=3, help="random orders in the baseline")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per tool process")
    p.add_argument("--peers-python", default=str(PEERS_PYTHON))
    p.add_argument("--try-2d-only", action="store_true", help="run 2D-only peers on 3D too")
    p.add_argument("--markdown", action="store_true", help="write docs/benchmarks.md")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--from-json", default=None, help="only print (and write) a saved run")
    p.add_argument("--keep-maps", default=None, help="folder for the maps (default: temporary)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.peers_python).exists():
        raise SystemExit(f"peers' venv not found ({args.peers_python}): run setup_peers.sh")
    if args.from_json:  # tables and docs again from a saved run
        results = json.loads(Path(args.from_json).read_text())
        print(quality_report.tables(results, markdown=False))
        if args.markdown:
            quality_report.write_docs(ROOT / "docs" / "benchmarks.md", results)
        return
    t0 = time.perf_counter()
    results = {"meta": quality_report.machine(args), "cases": []}
    with tempfile.TemporaryDirectory(prefix="maskscope-quality-") as tmp:
        if args.keep_maps:
            tmp = args.keep_maps
            Path(tmp).mkdir(parents=True, exist_ok=True)
        for name in args.cases:
            case = shapes_case() if name == "shapes2d" else mri_case()
            save_case(case, Path(tmp))
            print(f"{case.name}: image {case.image.shape}", flush=True)
            results["cases"].append(run_case(case, Path(tmp), args, args.peers_python))
    results["meta"]["total_s"] = time.perf_counter() - t0
    results["meta"]["load_end"] = os.getloadavg()[0]
    text = quality_report.tables(results, markdown=False)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        quality_report.write_docs(ROOT / "docs" / "benchmarks.md", results)


if __name__ == "__main__":
    main()
