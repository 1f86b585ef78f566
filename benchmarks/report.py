"""The markdown report of a ``benchmarks/run.py`` run: header, targets and every section."""

from __future__ import annotations

import json

from md_tables import table
from report_floor import floor_report
from report_scaling import early_report, profile_report, scaling_report
from report_side import side3d_report, side_report
from targets import check_rows


def header(meta: dict) -> list[str]:
    """Title, what the run measured on, and warnings about the run itself."""
    out = [
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
    ]
    if meta.get("git_end") and meta.get("git_end") != meta.get("git"):
        out += [
            "",
            f"**Warning: the checkout changed during the run** ({meta.get('git')} at the "
            f"start, {meta.get('git_end')} at the end): parts measured different code.",
        ]
    if meta.get("note"):
        out += ["", f"Note: {meta['note']}"]
    return out


def overhead_report(res: dict, s: dict) -> list[str]:
    """Section 1: wall time / forward floor per model and method."""
    if not res["overhead"]:
        return []
    o = s["overhead"]
    rows = [
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
    ]
    head = ["model", "method", "forwards", "wall (s)", "floor (s)", "ratio", "engine ms/mask"]
    return [
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
        table(head, rows, "llrrrrr"),
        "",
        "![overhead](images/bench-overhead.png)",
        "",
    ]


def errors_report(res: dict) -> list[str]:
    """The configurations that did not run, with their error."""
    if not res["errors"]:
        return []
    out = ["## Configurations that did not run", ""]
    out += [f"- `{e['kind']}` {json.dumps(e['cfg'])}: {e['error']}" for e in res["errors"]]
    return [*out, ""]


def report(res: dict, s: dict) -> str:
    """The whole report of ``results.json`` (``res``) measured with settings ``s``."""
    parts = [*header(res["meta"]), "", "## Targets", ""]
    parts += [table(["target", "measured", "result"], check_rows(res), "llc"), ""]
    parts += overhead_report(res, s)
    parts += side_report(res, s)
    parts += side3d_report(res, s)
    parts += scaling_report(res)
    parts += early_report(res, s)
    parts += profile_report(res)
    parts += floor_report(res)
    parts += errors_report(res)
    return "\n".join(parts)
