"""Plots of a benchmark run: ``python benchmarks/plots.py RESULTS.json OUTDIR``.

Run by ``benchmarks/run.py`` with the peers' venv python, which has matplotlib
(matplotlib is not a maskscope dependency). Writes ``bench-overhead.png``,
``bench-peers.png``, ``bench-scaling.png`` and ``bench-early.png``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LABELS

OURS, THEIRS = "#1f77b4", "#d62728"


def overhead(res: dict, out: Path) -> None:
    rows = res["overhead"]
    if not rows:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    models = [m for m in ("unet2d", "unet3d") if any(r["model"] == m for r in rows)]
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        vals = [
            next((r["ratio"] for r in rows if r["model"] == model and r["method"] == lab), 0)
            for lab in LABELS
        ]
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(LABELS))]
        ax1.bar(
            xs, vals, width, label={"unet2d": "2D U-Net 240²", "unet3d": "3D U-Net 64×96×96"}[model]
        )
    for j, lab in enumerate(LABELS):
        lim = 1.10 if lab in ("RISE", "SegRISE", "PixelRISE-mean") else 1.25
        ax1.hlines(lim, j - 0.45, j + 0.45, colors="k", linestyles="--", linewidth=1)
    ax1.axhline(1.0, color="grey", linewidth=0.8)
    ax1.set_xticks(range(len(LABELS)), LABELS, rotation=20)
    ax1.set_ylabel("wall / forward floor")
    ax1.set_title("Overhead vs the model alone (dashed: target)")
    ax1.legend(fontsize=8)
    near = [
        next(
            (r["engine_ms_per_mask"] for r in rows if r["model"] == "1x1" and r["method"] == lab), 0
        )
        for lab in LABELS
    ]
    ax2.bar(range(len(LABELS)), near, color=OURS)
    for j, lab in enumerate(LABELS):
        lim = 0.5 if lab in ("RISE", "SegRISE", "PixelRISE-mean") else 2.0
        ax2.hlines(lim, j - 0.45, j + 0.45, colors="k", linestyles="--", linewidth=1)
    ax2.set_xticks(range(len(LABELS)), LABELS, rotation=20)
    ax2.set_ylabel("ms per mask")
    ax2.set_title("Engine cost, near-free 1×1 model, 240²")
    fig.tight_layout()
    fig.savefig(out / "bench-overhead.png", dpi=110)
    plt.close(fig)


def _side(rows, model):
    groups: dict = {}
    for r in rows:
        if r["model"] == model:
            groups.setdefault(r["tool"], []).append(r)
    return {
        t: {
            "wall": statistics.median(x["wall"] for x in xs),
            "peak": statistics.median(x["peak_mb"] for x in xs),
            "evals": xs[0]["evaluations"],
        }
        for t, xs in groups.items()
    }


def peers(res: dict, out: Path) -> None:
    rows = res["side"]
    if not rows:
        return
    models = [m for m in ("unet2d", "1x1") if any(r["model"] == m for r in rows)]
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 3.6 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        side = _side(rows, model)
        tools = [t for t in side if t.startswith("maskscope:")]
        tools += [t for t in side if not t.startswith("maskscope:")]
        colors = [OURS if t.startswith("maskscope:") else THEIRS for t in tools]
        names = [
            t.replace("maskscope:", "ours ")
            .replace("interpret-segmentation", "is")
            .replace(":OcclusionSensitivity", "")
            for t in tools
        ]
        ax = axes[i][0]
        ax.barh(names, [1000 * side[t]["wall"] / side[t]["evals"] for t in tools], color=colors)
        ax.set_xscale("log")
        ax.set_xlabel("ms per model evaluation (log)")
        ax.set_title(f"{'2D U-Net' if model == 'unet2d' else 'near-free 1×1 model'}: time")
        ax.invert_yaxis()
        ax = axes[i][1]
        ax.barh(names, [side[t]["peak"] for t in tools], color=colors)
        ax.set_xlabel("peak RSS (MB)")
        ax.set_title("peak memory")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "bench-peers.png", dpi=110)
    plt.close(fig)


def _ticks(ax, values, fmt=str) -> None:
    values = sorted(set(values))
    ax.set_xticks(values, [fmt(v) for v in values])
    ax.minorticks_off()


def _vs_n(ax, res: dict, key: str, log_y: bool) -> None:
    ns = [r["n"] for r in res["n_scaling"]]
    for method in ("SegRISE", "PixelRISE-max"):
        xs = sorted((r for r in res["n_scaling"] if r["method"] == method), key=lambda r: r["n"])
        if xs:
            plot = ax.loglog if log_y else ax.plot
            plot([r["n"] for r in xs], [r[key] for r in xs], "o-", label=method)
    if not log_y:
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
    if ns:
        _ticks(ax, ns)
    ax.set_xlabel("N masks")
    ax.set_ylabel("wall (s)" if log_y else "peak RSS (MB)")
    ax.set_title(f"{'time' if log_y else 'memory'} vs N (1×1 model)")
    ax.legend(fontsize=8)


def _vs_size(ax, res: dict) -> None:
    for dims in (2, 3):
        xs = sorted(
            (r for r in res["size"] if r["dims"] == dims and not r.get("target_check")),
            key=lambda r: r["voxels"],
        )
        if xs:
            ms = [1000 * r["wall"] / r["n"] for r in xs]
            ax.loglog([r["voxels"] for r in xs], ms, "o-", label=f"{dims}D ms/mask")
            for r, y in zip(xs, ms, strict=True):
                ax.annotate(
                    f"{r['size']}{'²' if dims == 2 else '³'}",
                    (r["voxels"], y),
                    fontsize=8,
                    textcoords="offset points",
                    xytext=(4, -10),
                )
    ax.set_xlabel("voxels")
    ax.set_ylabel("ms per mask")
    ax.set_title("SegRISE vs image size (U-Nets)")
    ax.legend(fontsize=8)


def _vs_batch(ax, res: dict) -> None:
    xs = sorted(res["batch"], key=lambda r: r["batch_size"])
    if not xs:
        return
    sizes = [r["batch_size"] for r in xs]
    ax.plot(sizes, [1000 * r["wall"] / r["n"] for r in xs], "o-", label="ms / mask")
    ax.set_xscale("log", base=2)
    _ticks(ax, sizes)
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per mask")
    ax2 = ax.twinx()
    ax2.plot(sizes, [r["peak_mb"] for r in xs], "s--", color="grey")
    ax2.set_ylabel("peak RSS (MB)", color="grey")
    ax.set_title("SegRISE vs batch (2D U-Net)")


def scaling(res: dict, out: Path) -> None:
    """Memory and time vs N, time vs image size, time and memory vs batch size."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.2))
    axes = axes.ravel()
    _vs_n(axes[0], res, "peak_mb", log_y=False)
    _vs_n(axes[1], res, "wall", log_y=True)
    _vs_size(axes[2], res)
    _vs_batch(axes[3], res)
    fig.tight_layout()
    fig.savefig(out / "bench-scaling.png", dpi=110)
    plt.close(fig)


def early(res: dict, out: Path) -> None:
    xs = [r for r in res["early"] if r.get("tol") is not None and "pearson" in r]
    if not xs:
        return
    xs.sort(key=lambda r: -r["tol"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([r["masks_used"] for r in xs], [r["pearson"] for r in xs], "o-", color=OURS)
    for r in xs:
        ax.annotate(
            f"tol {r['tol']}",
            (r["masks_used"], r["pearson"]),
            fontsize=8,
            textcoords="offset points",
            xytext=(4, -10),
        )
    full = [r for r in res["early"] if r["name"] == "long_seed0" and "pearson" in r]
    if full:
        ax.axhline(
            full[0]["pearson"],
            color="grey",
            linestyle="--",
            label=f"no early stop, N={full[0]['masks_used']}",
        )
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    _ticks(ax, [r["masks_used"] for r in xs])
    ax.set_xlabel("masks used")
    ax.set_ylabel("Pearson r vs independent long run")
    ax.set_title("SegRISE early stopping (2D U-Net)")
    fig.tight_layout()
    fig.savefig(out / "bench-early.png", dpi=110)
    plt.close(fig)


def main() -> None:
    res = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    for fn in (overhead, peers, scaling, early):
        try:
            fn(res, out)
        except Exception as exc:  # one broken plot should not lose the others
            print(f"{fn.__name__}: {exc!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
