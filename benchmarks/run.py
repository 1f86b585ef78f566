"""Run maskscope's benchmark suite and write a markdown report with plots.

    python benchmarks/run.py                       # full run (about 30 minutes on 2 cores)
    python benchmarks/run.py --quick               # smaller sizes and fewer repeats
    python benchmarks/run.py --device cuda         # on a GPU
    python benchmarks/run.py --parts overhead,scaling --out /tmp/bench
    python benchmarks/run.py --report-only         # rebuild report, plots, docs

Parts (every configuration runs in a fresh process, ``benchmarks/parts.py``; the order and
the configurations are in ``suite.py``, the sizes in ``settings.py``):

1. overhead  wall time / pure batched forward time per method (``overhead.py``), 2D and 3D,
             and the engine's own ms per mask with a near-free 1×1-convolution model;
2. side      side by side with interpret-segmentation, muppet-xai, captum, captum-rise and
             MONAI on the same model, image and number of evaluations (needs the peers'
             venv: ``bash benchmarks/setup_peers.sh``);
   side3d    every tool on the 3D phantom with the 3D U-Net: which can run, at what cost;
3. scaling   time and peak memory vs N (``memory.py``), image size and batch size; time
             to the first streamed snapshot;
4. early     early stopping: masks used and correlation with a long-run map;
5. profile   cProfile of one run per method: shares of the wall time per function;
6. floor     default settings vs the best fixed batch's pure forward time, and each peer's
             speed-up beside its floor bound (``floor.py``).

``--parts`` runs a subset and keeps the other parts' results from ``OUT/results.json``.
The pass/fail targets are one table, ``targets.py``.

Writes ``OUT/results.json``, ``OUT/report.md`` and ``OUT/bench-*.png`` (matplotlib from the
peers' venv; matplotlib is not a maskscope dependency), then copies the tables into
``docs/benchmarks.md`` and the plots into ``docs/images/`` (``--no-docs`` to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PEERS_PYTHON, cpu_name  # noqa: E402
from publish import plots, write_docs  # noqa: E402
from report import report  # noqa: E402
from runner import Runner, git_state, load_average, wait_for_quiet  # noqa: E402
from settings import settings  # noqa: E402
from suite import DEFAULT_PARTS, PART_KEYS, keep_previous, run_parts  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--parts", default=DEFAULT_PARTS, help=f"comma-separated; {DEFAULT_PARTS}")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument(
        "--peers-python", default=None, help=f"python of the peers' venv (default {PEERS_PYTHON})"
    )
    p.add_argument(
        "--max-load", type=float, default=1.5, help="wait while the 1-minute load is above this"
    )
    p.add_argument("--max-wait", type=float, default=600, help="seconds to wait at most")
    p.add_argument("--timeout", type=float, default=None, help="seconds per process")
    p.add_argument("--no-docs", action="store_true", help="leave docs/ alone")
    p.add_argument("--note", default=None, help="a remark printed under the report's header")
    p.add_argument(
        "--report-only", action="store_true", help="rebuild report, plots and docs from results"
    )
    return p.parse_args(argv)


def measure(args: argparse.Namespace, r: Runner, s: dict, peers: str | None) -> None:
    """Run the chosen parts into ``r.results`` (keeping the others' previous results)."""
    import torch

    chosen = set(args.parts.split(","))
    unknown = chosen - set(PART_KEYS)
    if unknown:
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; parts are {list(PART_KEYS)}")
    load = wait_for_quiet(args.max_load, args.max_wait)
    r.results["meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "mode": "quick" if args.quick else "full",
        "torch": torch.__version__,
        "threads": args.threads,
        "device": args.device,
        "cpu": f"{cpu_name()}, {os.cpu_count()} cores",
        "load_start": round(load, 2),
        "git": git_state(),
        "settings": s,
    }
    t0 = time.perf_counter()
    old = args.out / "results.json"
    if chosen != set(PART_KEYS) and old.exists():
        keep_previous(r, json.loads(old.read_text()), chosen)
    run_parts(r, s, chosen, peers)
    r.results["meta"]["load_end"] = round(load_average(), 2)
    r.results["meta"]["git_end"] = git_state()
    r.results["meta"]["total_min"] = (time.perf_counter() - t0) / 60
    r.save()


def main(argv: list[str] | None = None) -> None:
    """Measure (or reload), then write the report, the plots and the docs."""
    args = parse_args(argv)
    s = settings(args.quick)
    args.timeout = args.timeout or s["timeout"]
    args.out.mkdir(parents=True, exist_ok=True)
    peers = args.peers_python or (str(PEERS_PYTHON) if PEERS_PYTHON.exists() else None)
    r = Runner(args, args.out)
    if args.report_only:
        r.results = json.loads((args.out / "results.json").read_text())
    else:
        measure(args, r, s, peers)
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
