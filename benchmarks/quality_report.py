"""Tables of ``quality.py``: printed, and as the "Map quality" section of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

from maskscope import HDMParams, RISEParams

SECTION = "## Map quality"

#: What a high value of each tool's map means (all oriented so that high = important).
ORIENTATION = {
    "maskscope:RISE": "score kept (covariate)",
    "maskscope:SegRISE": "Dice kept (covariate)",
    "maskscope:PixelRISE-mean": "score kept (covariate)",
    "maskscope:PixelRISE-max": "score kept, max over px",
    "maskscope:HDM": "Hausdorff increase",
    "maskscope:HDM-hd95": "HD95 increase",
    "maskscope:HDM-dice": "1 − Dice increase",
    "interpret-segmentation:RISE-mean": "score kept (Σ w·m)",
    "interpret-segmentation:RISE-max": "score kept, max over px",
    "interpret-segmentation:HDM": "row-wise 'Hausdorff' increase",
    "muppet:SegRISE": "damage: Σ (1 − Dice)·hidden",
    "captum-rise": "score kept (Σ w·m / N·p)",
    "captum:Occlusion": "score drop",
    "monai:OcclusionSensitivity": "score drop (base − map)",
}

HEADER = [
    "tool",
    "map: high =",
    "forwards",
    "wall (s)",
    "seed agreement r",
    "reliability",
    "deletion AUC Dice ↓",
    "deletion AUC prob ↓",
    "insertion AUC Dice ↑",
    "insertion AUC prob ↑",
    "on segment: mass",
    "on segment: top 5 %",
    "on decisive: mass",
    "on decisive: top 5 %",
]


def machine(args) -> dict:
    """Date, CPU, torch, threads and load: what the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        found = re.search(r"Model name:\s*(.+)", out)
        cpu = found.group(1).strip() if found else cpu
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": args.threads,
        "load_start": os.getloadavg()[0],
        "hdm_defaults": {"fill": HDMParams.fill, "distance": HDMParams.distance},
        "settings": {
            k: getattr(args, k)
            for k in ("n2d", "n3d", "grid", "diameter2d", "diameter3d", "steps", "n_random")
        },
    }


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n.a."
    if isinstance(v, float) and v != v:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def one_line(r: dict) -> str:
    """A progress line for one map."""
    agree = fmt(r["agreement"], 2) if r["agreement"] is not None else "det."
    return (
        f"{r['tool']:34s} {r['forwards']:5d} fw {r['wall']:6.1f} s  r={agree:5s}  "
        f"del {r['deletion_dice']:.3f}/{r['deletion_probability']:.3f}  "
        f"ins {r['insertion_dice']:.3f}/{r['insertion_probability']:.3f}  "
        f"seg {r['segment_mass']:.2f}/{r['segment_top']:.2f}"
    )


def _row(r: dict) -> list[str]:
    agree = "1 (det.)" if r["agreement"] is None else fmt(r["agreement"], 2)
    return [
        r["tool"],
        ORIENTATION.get(r["tool"], ""),
        str(r["forwards"]),
        fmt(r["wall"], 1),
        agree,
        fmt(r["reliability"], 2),
        fmt(r["deletion_dice"]),
        fmt(r["deletion_probability"]),
        fmt(r["insertion_dice"]),
        fmt(r["insertion_probability"]),
        fmt(r["segment_mass"], 2),
        fmt(r["segment_top"], 2),
        fmt(r.get("decisive_mass"), 2),
        fmt(r.get("decisive_top"), 2),
    ]


def _random_row(c: dict) -> list[str]:
    base = next((r for r in c["rows"] if "random_deletion_dice" in r), None)
    if base is None:
        return []

    def pm(key: str) -> str:
        return f"{base[key]:.3f} ± {base[key + '_std']:.3f}"

    seg, dec = c["segment_fraction"], c["decisive_fraction"]
    return [
        "*random order (baseline)*",
        "",
        "",
        "",
        "",
        "",
        pm("random_deletion_dice"),
        pm("random_deletion_probability"),
        pm("random_insertion_dice"),
        pm("random_insertion_probability"),
        fmt(seg, 2),
        fmt(seg, 2),
        fmt(dec, 2),
        fmt(dec, 2),
    ]


def _grid(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] * len(HEADER)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(x[i]) for x in [HEADER, *rows]) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)).rstrip()
        for x in [HEADER, *rows]
    )


def case_title(c: dict) -> str:
    shape = "×".join(str(s) for s in c["shape"][1:])
    decisive = c["decisive_fraction"]
    seg = c["segment_fraction"]
    where, cap = "", f"{min(1.0, seg / 0.05):.2f} on the segment"
    if decisive is not None:
        where = f", decisive shape {100 * decisive:.1f} %"
        cap += f", {min(1.0, decisive / 0.05):.2f} on the decisive shape"
    return (
        f"{c['case']} ({shape}): budget {c['budget']} masks or occluder positions, occluder "
        f"{c['diameter']} voxels; segment {100 * seg:.1f} % of the image{where} (a top-5 % "
        f"share can be at most {cap})"
    )


#: Columns of the AUCs (index in HEADER) and whether lower is better.
AUC_COLUMNS = {6: True, 7: True, 8: False, 9: False}


def _mark_best(rows: list[list[str]]) -> None:
    """Bold the best AUC of each column (ties all bold)."""
    for col, lower in AUC_COLUMNS.items():
        values = [float(r[col]) for r in rows]
        best = min(values) if lower else max(values)
        for r, v in zip(rows, values, strict=True):
            if v == best:
                r[col] = f"**{r[col]}**"


def case_table(c: dict, markdown: bool) -> str:
    rows = [_row(r) for r in c["rows"]]
    if markdown and rows:
        _mark_best(rows)
    rnd = _random_row(c)
    if rnd:
        rows.append(rnd)
    for e in c["errors"]:
        rows.append([f"{e['tool']} (see below)", *(["n.a."] * (len(HEADER) - 1))])
    return _grid(rows, markdown)


def not_run(c: dict, markdown: bool) -> list[str]:
    """Why each tool that did not run did not (2D-only peers on a volume)."""
    if not c["errors"]:
        return []
    out = [
        "Not run here (2D only; their errors are in the 3D side-by-side table above, "
        "`--try-2d-only` reproduces them):",
        "",
    ]
    for e in c["errors"]:
        why = (e["why"] or "failed") + (f": `{e['error']}`" if e["error"] else "")
        out.append(f"- {e['tool']}: {why}" if markdown else f"  {e['tool']}: {why}")
    return [*out, ""]


def findings(c: dict) -> list[str]:
    """Where maskscope is worse than the best peer (deletion AUC, seed agreement)."""
    ours = [r for r in c["rows"] if r["tool"].startswith("maskscope:")]
    theirs = [r for r in c["rows"] if not r["tool"].startswith("maskscope:")]
    if not ours or not theirs:
        return []
    out = []
    for score in ("dice", "probability"):
        key = f"deletion_{score}"
        best = min(theirs, key=lambda r: r[key])
        worse = [f"{r['tool'][10:]} {r[key]:.4f}" for r in ours if r[key] > best[key]]
        out.append(
            f"- deletion AUC ({score}): best peer {best['tool']} {best[key]:.4f}; maskscope "
            + (f"above it: {', '.join(worse)}" if worse else "at or below it everywhere")
        )
    base = next((r for r in c["rows"] if "random_deletion_dice" in r), None)
    if base is not None:
        above = [r["tool"][10:] for r in ours if r["deletion_dice"] >= base["random_deletion_dice"]]
        out.append(
            "- every maskscope map deletes faster than random order (Dice)"
            if not above
            else f"- not below the random baseline (Dice): {', '.join(above)}"
        )
    peers = [r for r in theirs if r["agreement"] is not None]
    if peers:
        top = max(peers, key=lambda r: r["agreement"])
        low = [
            f"{r['tool'][10:]} {r['agreement']:.3f}"
            for r in ours
            if r["agreement"] is not None and r["agreement"] < top["agreement"]
        ]
        out.append(
            f"- seed agreement: best peer {top['tool']} {top['agreement']:.3f}; maskscope "
            + (f"below it: {', '.join(low)}" if low else "at or above it everywhere")
        )
    off = [
        f"{r['tool'][10:]} (predicted {r['reliability']:.2f}, measured {r['agreement']:.2f})"
        for r in ours
        if r["reliability"] is not None and abs(r["reliability"] - r["agreement"]) > 0.05
    ]
    if off:
        out.append(f"- reliability off by more than 0.05: {', '.join(off)}")
    return ["Where maskscope is behind (computed from the table):", "", *out, ""]


def tables(results: dict, markdown: bool) -> str:
    out = []
    for c in results["cases"]:
        title = case_title(c)
        out += [f"### {title}" if markdown else title, "", case_table(c, markdown), ""]
        out += not_run(c, markdown)
        out += findings(c)
    return "\n".join(out)


def notes(results: dict) -> str:
    m = results["meta"]
    s = m["settings"]
    hdm = m["hdm_defaults"]
    return f"""Measured {m["date"]} on a {m["cores"]}-core VM ({m["cpu"]}), \
torch {m["torch"]} CPU, {m["threads"]} torch thread, a machine shared with other jobs \
(load average {m["load_start"]:.1f} at the start, {m.get("load_end", 0):.1f} at the end): \
wall times are indicative only. The whole run took {m.get("total_s", 0) / 60:.0f} min \
(`python benchmarks/quality.py --markdown`): the budgets below are smaller than maskscope's \
default (N = {RISEParams.n_masks}) to keep it near 20 min here; PixelRISE max in 3D is the \
slowest single run.

Same model, image and budget for every tool: RISE-family tools get N = {s["n2d"]} masks in 2D \
and {s["n3d"]} in 3D (grid {s["grid"]}, keep probability 0.5); occlusion tools get the stride \
whose number of occluder positions is closest to the same budget ({s["diameter2d"]} px disks \
or squares in 2D, {s["diameter3d"]}-voxel balls or cubes in 3D; captum and MONAI slide a window \
that must fit in the image, interpret-segmentation takes `int(size / offset)` positions per \
axis). `forwards` = images through the model in one run, counted by a wrapper (the \
unperturbed input included); interpret-segmentation's RISE re-runs all N masks for every \
1000 pixels of its segment and gives the mean and the max merge from one run. maskscope runs \
at its defaults of the day otherwise (covariate estimator; HDM fill `{hdm["fill"]}`, distance \
`{hdm["distance"]}`; `HDM-hd95` and `HDM-dice` are the HD95 and 1 − Dice options). Each \
tool runs in its own process in the peers' venv; its maps are saved and scored here, \
identically:

- **seed agreement**: Pearson correlation of the maps of seeds 0 and 1 (deterministic \
tools: the same map for every seed, shown as 1). *reliability* is the two-seed correlation \
that maskscope predicted from one run.
- **deletion / insertion AUC**: `maskscope.evaluate.faithfulness` on the seed-0 map, zero \
substrate, {s["steps"]} steps, scored by the Dice of the perturbed prediction against the \
unperturbed one and by the mean target probability over that segment. Lower deletion and \
higher insertion AUC are better (the best of each column in bold); the random-order row is \
the mean (± std) of {s["n_random"]} random voxel orders.
- **share on segment / decisive shape**: of the map's mass above its median \
(`max(map − median, 0)`: RISE-style maps carry an offset, the mean score, that differs \
between tools by convention; occlusion and HDM maps have a median near 0), and of its top-5 % \
voxels, inside the model's predicted segment and (shapes2d) inside the shape whose kind \
decides which shape is segmented. The random row shows the region's share of the image, \
which a map that knows nothing gets.
- **orientation**: every map is used so that high = important. HDM maps are distance \
increases, captum's Occlusion a score drop, MONAI's map (the score with the occluder over a \
voxel) is turned into the drop, base score − map; muppet weights the hidden parts by \
1 − Dice.
"""


def write_docs(path: Path, results: dict) -> None:
    """Replace (or append) the "Map quality" section of docs/benchmarks.md."""
    body = f"{SECTION}\n\n{notes(results)}\n{tables(results, markdown=True)}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        nxt = re.search(r"^## ", rest, flags=re.M)
        tail = rest[nxt.start() :] if nxt else ""
    else:
        head, tail = text.rstrip("\n") + "\n\n", ""
    path.write_text(head + body.rstrip("\n") + "\n" + ("\n" + tail if tail else ""))
    print(f"wrote {path}")
