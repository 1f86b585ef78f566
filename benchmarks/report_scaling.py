"""Report sections 3–5: scaling, early stopping and where the time goes."""

from __future__ import annotations

from md_tables import fmt, table


def _n_rows(res: dict) -> list[str]:
    header = ["method", "N", "wall (s)", "ms / mask", "peak RSS (MB)", "growth over warm-up (MB)"]
    rows = [
        [x["method"], x["n"], x["wall"], 1000 * x["wall"] / x["n"], x["peak_mb"], x["growth_mb"]]
        for x in res["n_scaling"]
    ]
    title = "### vs the number of masks N (near-free 1×1 model, 240², batch ≤ 16; memory.py)"
    return [title, "", table(header, rows), ""]


def _size_rows(res: dict) -> list[str]:
    header = ["dims", "size", "voxels", "N", "batch", "wall (s)", "floor (s)", "ratio"]
    header += ["ms / mask", "peak RSS (MB)"]
    rows = [
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
    ]
    return [
        "### vs the image size (SegRISE, bundled U-Nets)",
        "",
        "3D volumes are `phantom3d(seed=3, shape=(s, s, s))` with the 3D U-Net "
        "(trained at 64×96×96).",
        "",
        table(header, rows),
        "",
    ]


def _batch_rows(res: dict) -> list[str]:
    header = ["batch", "N", "wall (s)", "ms / mask", "peak RSS (MB)", "growth over warm-up (MB)"]
    rows = [
        [
            x["batch_size"],
            x["n"],
            x["wall"],
            1000 * x["wall"] / x["n"],
            x["peak_mb"],
            x["growth_mb"],
        ]
        for x in res["batch"]
    ]
    return [
        "### vs the batch size (SegRISE, 2D U-Net, 240²; memory.py)",
        "",
        table(header, rows),
        "",
    ]


def _snapshot_rows(res: dict) -> list[str]:
    header = ["model", "method", "batch", "masks in first snapshot", "of", "first snapshot (s)"]
    header += ["one chunk, model only (s)"]
    rows = [
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
    ]
    return [
        "### Time to the first streamed snapshot (`iter_explain`)",
        "",
        "One chunk = the unperturbed reference forward + one batch of perturbed inputs "
        "(model alone).",
        "",
        table(header, rows, "llrrrrr"),
        "",
    ]


def scaling_report(res: dict) -> list[str]:
    """Section 3: vs N, the image size, the batch size; the first snapshot."""
    out = ["## 3. Scaling", ""]
    for key, rows in (
        ("n_scaling", _n_rows),
        ("size", _size_rows),
        ("batch", _batch_rows),
        ("snapshot", _snapshot_rows),
    ):
        if res[key]:
            out += rows(res)
    return [*out, "![scaling](images/bench-scaling.png)", ""]


def early_report(res: dict, s: dict) -> list[str]:
    """Section 4: early stopping against an independent long run."""
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


def _profile_case(x: dict) -> list[str]:
    wall = x["wall"]
    engine = 1000 * (wall - x["floor"]) / x["forwards"]
    frows = []
    for f in x["functions"][:10]:
        file, name = f["function"].split(":", 1)
        share, own = f"{100 * f['cum_s'] / wall:.1f} %", f"{100 * f['self_s'] / wall:.1f} %"
        frows.append([f"`{file}:{f['line']} {name}`", f["calls"], f["cum_s"], share, own])
    brows = [
        [f"`{b['function']}`", b["calls"], b["self_s"], f"{100 * b['self_s'] / wall:.1f} %"]
        for b in x["builtins"][:6]
    ]
    return [
        f"### {x['method']}, {x['model']}: {x['forwards']} evaluations, wall "
        f"{wall:.2f} s, floor {x['floor']:.2f} s (engine {engine:.2f} ms/mask)",
        "",
        table(["maskscope function", "calls", "cumulative (s)", "cum. share", "self share"], frows),
        "",
        table(["torch built-in", "calls", "self (s)", "share"], brows),
        "",
    ]


def profile_report(res: dict) -> list[str]:
    """Section 5: cProfile shares of the wall time per function, one case per block."""
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
        out += _profile_case(x)
    return out
