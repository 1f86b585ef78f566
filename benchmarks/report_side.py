"""Report section 2: maskscope side by side with the peers, in 2D and in 3D."""

from __future__ import annotations

from common import LABELS, NO_3D, OURS_BATCH1, PEERS, last_error_line, side_summary
from md_tables import table

INTRO = (
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
RUN_HEADER = [
    "tool",
    "evaluations",
    "model calls",
    "wall (s)",
    "ms / evaluation",
    "peak RSS (MB)",
    "growth (MB)",
]
RATIO_HEADER = [
    "peer",
    "maskscope method",
    "speed-up (same N)",
    "speed-up per evaluation",
    "peak RSS theirs / ours",
    "notes",
]


def _runs_table(side: dict, model: str) -> str:
    ours = [f"maskscope:{m}" for m in LABELS] + [f"maskscope:{m}@1" for m in OURS_BATCH1]
    rows = []
    for tool in ours + list(PEERS):
        x = side.get((tool, model))
        if x:
            per_eval = 1000 * x["wall"] / max(x["evaluations"], 1)
            row = [tool, x["evaluations"], x["calls"], x["wall"], per_eval]
            rows.append([*row, x["peak_mb"], x["growth_mb"]])
    return table(RUN_HEADER, rows)


def _peer_error(res: dict, kind: str, peer: str, model: str) -> str:
    err = next(
        (
            e["error"]
            for e in res["errors"]
            if e["kind"] == kind and e["cfg"].get("tool") == peer and e["cfg"].get("model") == model
        ),
        "not run",
    )
    return last_error_line(err)[:160]


def _ratio_row(peer: str, label: str, theirs: dict, ours: dict) -> list:
    same = theirs["wall"] / ours["wall"]
    per_eval = (theirs["wall"] / theirs["evaluations"]) / (ours["wall"] / ours["evaluations"])
    note = ""
    if theirs["evaluations"] != ours["evaluations"]:
        note = f"{theirs['evaluations']} vs {ours['evaluations']} evaluations"
        if "pixels" in theirs:
            note += f" ({theirs['pixels']} px, re-run per 1000 px)"
    if "mask_generation_s" in theirs:
        note += f"; their mask generation {theirs['mask_generation_s']:.1f} s"
    memory = f"{theirs['peak_mb'] / ours['peak_mb']:.2f}×"
    return [peer, label, f"{same:.2f}×", f"{per_eval:.2f}×", memory, note.strip("; ")]


def _ratios_table(res: dict, side: dict, model: str) -> str:
    rows = []
    for peer, mine in PEERS.items():
        theirs = side.get((peer, model))
        for label in mine:
            ours = side.get((f"maskscope:{label}", model))
            if not ours:
                continue
            if not theirs:
                err = _peer_error(res, "side", peer, model)
                rows.append([peer, label, "–", "–", "–", f"did not run: `{err}`"])
                continue
            rows.append(_ratio_row(peer, label, theirs, ours))
    return table(RATIO_HEADER, rows, "llrrrl")


def side_report(res: dict, s: dict) -> list[str]:
    """Section 2: one runs table and one ratios table per model."""
    out = ["## 2. Side by side with the existing tools", ""]
    if not res["side"]:
        return [*out, res["meta"].get("side_note", "not run"), ""]
    side = side_summary(res["side"])
    out += [INTRO, ""]
    for model, c in s["side"].items():
        name = "bundled 2D U-Net" if model == "unet2d" else "near-free 1×1 convolution"
        title = f"### {name} (N = {c['n']}, offset {c['offset']} px, "
        out += [f"{title}median of {c['repeats']} run(s))", ""]
        out += [_runs_table(side, model), "", _ratios_table(res, side, model), ""]
    return [*out, "![side by side](images/bench-peers.png)", ""]


def side3d_report(res: dict, s: dict) -> list[str]:
    """Section 2b: which tools explain a volume at all, and at what cost per evaluation."""
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
        per_eval = 1000 * x["wall"] / max(x["evaluations"], 1)
        rows.append([x["tool"], "yes", x["evaluations"], x["wall"], per_eval, x["peak_mb"], ""])
    for e in errors:
        tool = e["cfg"]["tool"]
        why = NO_3D.get(tool, "")
        err = last_error_line(e["error"])[:160]
        rows.append([tool, "**no**", "–", "–", "–", "–", f"{why}{': ' if why else ''}`{err}`"])
    header = ["tool", "runs in 3D", "evaluations", "wall (s)", "ms / evaluation"]
    header += ["peak RSS (MB)", "why not"]
    return [*out, table(header, rows, "lcrrrrl"), ""]
