"""``maskscope batch``: explain a whole dataset on Dask, or in parts without a cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_batch_parser", "run_batch"]

_EPILOG = """\
INPUTS are folders, globs ("scans/*.nii.gz") or CSV files with an 'image' column and
optionally 'reference' (or 'label'), 'roi' and 'name'. Results go to OUT/maps,
OUT/explanations and OUT/summary.csv; running the same command again skips the finished
cases. The exit status is 1 when a case failed (the others are still computed)."""


class _ModelFlags:
    """Passes on the model flags of ``explain`` (the batch reads images from INPUTS)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_argument(self, *names: str, **kwargs: Any) -> Any:
        if names[0] in ("--image", "--reference"):
            return None
        return self.parser.add_argument(*names, **kwargs)


def add_batch_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to the ``maskscope`` parser's subparsers."""
    from .cli import CLI_METHODS, _add_params, add_call_flags, add_data_flags, add_input_flags
    from .cli_roi import add_patch_flags
    from .io import FORMATS

    ba = sub.add_parser(
        "batch",
        help="explain every image of a folder, glob or CSV (Dask workers, or --num-parts)",
        description="Explain every case of a dataset with one model and method, on a Dask "
        "cluster (a local one by default) or in parts without one; resumable.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ba.add_argument("inputs", nargs="+", metavar="INPUTS", help="folders, globs or .csv files")
    add_input_flags(_ModelFlags(ba))
    ba.add_argument("--method", default="segrise", choices=list(CLI_METHODS))
    ba.add_argument("--out", required=True, help="output folder")
    ba.add_argument("--target", type=int, help="class to explain")
    ba.add_argument("--slices", help="2D model on volumes: 'all' or indices like 10,11,12")
    ba.add_argument("--outputs", default="logits", choices=["logits", "probabilities"])
    ba.add_argument("--spatial-dims", type=int, choices=[2, 3])
    add_call_flags(ba)
    add_patch_flags(ba)
    add_data_flags(ba)
    ba.add_argument(
        "--map-format",
        choices=list(FORMATS),
        help="default: the input's format (.tif for a picture)",
    )
    ba.add_argument("--evaluate", action="store_true", help="deletion / insertion AUC of every map")
    ba.add_argument("--eval-steps", type=int, default=20, help="steps per curve (--evaluate)")
    eng = ba.add_argument_group("where it runs")
    eng.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler")
    eng.add_argument("--workers", type=int, help="workers of the local cluster")
    eng.add_argument("--threads", type=int, help="torch threads per worker")
    eng.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    eng.add_argument("--num-parts", type=int, metavar="K", help="no Dask: every K-th case")
    eng.add_argument("--part-id", type=int, metavar="I", help="which part, 0 .. K-1")
    eng.add_argument("--retries", type=int, default=1, help="extra attempts of a failing case")
    eng.add_argument("--overwrite", action="store_true", help="compute every case again")
    ba.add_argument("--quiet", action="store_true", help="no progress bar")
    ba.add_argument("--debug", action="store_true", help="show the traceback of an error")
    _add_params(ba)
    return ba


def _job(args: argparse.Namespace):
    from .batch import Job
    from .cli import CLI_METHODS, _slices, call_options, method_values
    from .cli_roi import patch_options

    method, values = CLI_METHODS[args.method], method_values(args)
    options = {k: v for k, v in call_options(args).items() if v is not None}
    if not isinstance(args.percentiles, tuple) or len(args.percentiles) != 2:
        raise ValueError(f"--percentiles takes two numbers like 0.5,99.5, got {args.percentiles}")
    return Job(
        method=method,
        values=values,
        target=args.target,
        slices=_slices(args.slices),
        normalize=args.normalize,
        percentiles=tuple(args.percentiles),
        axes=args.axes or "ijk",
        outputs=args.outputs,
        spatial_dims=args.spatial_dims,
        model_options=options,
        patch=patch_options(args),
        evaluate=args.evaluate,
        eval_steps=args.eval_steps,
        map_format=args.map_format,
    )


def run_batch(args: argparse.Namespace) -> int:
    """Run ``maskscope batch``; 0 when every case is done, 1 when some failed."""
    from .batch import explain_dataset

    if args.retries < 0:
        raise ValueError(f"--retries must be 0 or more, got {args.retries}")
    for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    result = explain_dataset(
        args.inputs,
        model=args.model,
        out=args.out,
        job=_job(args),
        scheduler=args.scheduler,
        n_workers=args.workers,
        threads=args.threads,
        device=args.device,
        num_parts=args.num_parts,
        part_id=args.part_id,
        retries=args.retries,
        overwrite=args.overwrite,
        trusted=args.trust_model,
        progress=not args.quiet,
    )
    n = len(result.cases)
    print(
        f"{n} case(s): {len(result.computed)} computed, {len(result.skipped)} finished "
        f"before, {len(result.failed)} failed; summary: {result.out / 'summary.csv'}"
    )
    for name, message in result.failed.items():
        print(f"maskscope: case {name} failed: {message}", file=sys.stderr)
    return 1 if result.failed else 0
