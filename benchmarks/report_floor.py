"""Report section 6: default batch vs the best fixed batch, and each peer vs its floor."""

from __future__ import annotations

from floor import BOUND_SHARE, TARGET_RATIO
from md_tables import table

_NAMES = {"unet2d": "2D U-Net, 240²", "unet3d": "3D U-Net, 64×96×96"}


def _forwards_table(run: dict) -> list[str]:
    """Pure forward per batch size: malloc's own settings and, beside, the memory kept."""
    rows = []
    for model, f in run["forwards"].items():
        best = (f["best"]["batch"], f["best"].get("host_memory", "system"))
        by_mode: dict[int, dict[str, float]] = {}
        for x in f["rows"]:
            by_mode.setdefault(x["batch"], {})[x.get("host_memory", "system")] = x["s_per_image"]
        for b, ms in by_mode.items():
            cells = []
            for mode in ("system", "keep"):
                mark = " **best**" if (b, mode) == best else ""
                cells.append(f"{1000 * ms[mode]:.2f}{mark}" if mode in ms else "–")
            rows.append([_NAMES.get(model, model), b, *cells])
    header = ["model", "batch", "pure forward, malloc as is (ms / image)"]
    return [table([*header, "with freed memory kept (ms / image)"], rows, "lrrr"), ""]


def _methods_table(run: dict) -> list[str]:
    rows = []
    for x in run["methods"]:
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(x.get("batch_params", {}).items()))
        ms, floor = 1000 * x["s_per_evaluation"], 1000 * x["floor_s"]
        ok = "**pass**" if x["ratio"] <= TARGET_RATIO else "**FAIL**"
        row = [_NAMES.get(x["model"], x["model"]), x["method"], x["forwards"], f"{x['wall']:.2f}"]
        row += [f"{ms:.2f}", f"{floor:.2f}", f"{1000 * x['sweep_floor_s']:.2f}"]
        rows.append([*row, f"{x['ratio']:.3f}", ok, chosen or "–"])
    header = ["model", "method", "evaluations", "wall (s)", "ms / evaluation"]
    header += ["floor (ms / image)", "sweep's best (ms / image)", "ratio", f"≤ {TARGET_RATIO:.2f}"]
    return [table([*header, "batch params"], rows, "llrrrrrrcl"), ""]


def _peers_table(run: dict) -> list[str]:
    rows = []
    for x in run["peers"]:
        if x.get("speed_up") is None:
            rows.append([x["peer"], x["method"], "–", "–", "–", "–", "–", x.get("note", "")])
            continue
        ok = "**pass**" if x["speed_up"] >= x["bound"] else "**FAIL**"
        peer = f"{x['peer_wall']:.2f} ({x['peer_evaluations']})"
        ours = f"{x['wall']:.2f} ({x['evaluations']})"
        rows.append(
            [
                x["peer"],
                x["method"],
                peer,
                f"{x['peer_over_floor']:.2f}×",
                ours,
                f"{x['speed_up']:.2f}×",
                f"{x['bound']:.2f}×",
                ok,
            ]
        )
    header = ["peer", "maskscope", "peer wall s (evaluations)", "peer wall ÷ floor"]
    header += ["maskscope wall s (evaluations)", "speed-up", "bound", "speed-up ≥ bound"]
    return [table(header, rows, "llrrrrrc"), ""]


#: The section's heading in the report of ``run.py``; ``floor.py --docs`` uses ``DOCS_HEADING``.
HEADING = "## 6. Default batch and the floor"
DOCS_HEADING = "## Default batch and the floor"


def floor_report(res: dict, heading: str = HEADING) -> list[str]:
    """Section 6 from ``res["floor"]`` (empty when the part did not run)."""
    runs = res.get("floor") or []
    if not runs:
        return []
    run = runs[-1]
    c = run["settings"]
    out = [
        heading,
        "",
        f"{run['date']} · {run['machine']} · took {run['minutes']:.1f} min · medians of "
        f"{c['repeats']}, every configuration in its own process.",
        "",
        "Pure forward time per image of the bundled U-Nets at fixed batch sizes "
        "(`shapes2d(seed=7)` and `phantom3d(seed=3)`, under `inference_mode`), first with "
        "glibc's malloc as it is, then with the memory the model frees kept between calls, as "
        "maskscope keeps it during a run (`host_memory`): the best time per image of either "
        "is the floor.",
        "",
        *_forwards_table(run),
        f"Every method at default settings (no `batch_size`: the engine's choice), "
        f"N = {c['n']['unet2d']} in 2D and {c['n']['unet3d']} in 3D (grid 8 / 6), HDM "
        f"stride {c['stride']['unet2d']:g} / {c['stride']['unet3d']:g}{_max_rows(c)}; its "
        "wall time per "
        "model evaluation (including the unperturbed one) beside the floor: the model alone "
        "on as many inputs at the sweep's best batch, measured in the same process right "
        "after each run (so that both see the same load); ratio = median wall ÷ median "
        "floor.",
        "",
        *_methods_table(run),
        f"Peers on the 2D U-Net at equal forwards (N = {c['peers_n']}, occluder 25 px every "
        f"{c['peers_offset']} px; they call the model one image at a time), maskscope at "
        f"default settings, runs taking turns. bound = {BOUND_SHARE} × (peer wall ÷ its "
        "floor), the floor being the model alone on the peer's evaluations at the best "
        "batch, in the peer's process right after its run: the speed-up that batching well "
        "could give, less 5 %.",
        "",
        *_peers_table(run),
    ]
    return out


def _max_rows(c: dict) -> str:
    """How the PixelRISE-max rows differ from the others, when they do."""
    if not c.get("n_max"):
        return ""
    repeats = c.get("max_repeats") or c["repeats"]
    return f", PixelRISE max at N = {c['n_max']} (medians of {repeats})"
