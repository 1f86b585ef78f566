"""The ``maskscope`` command: ``maskscope demo``, ``maskscope explain``, ``maskscope evaluate``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import METHODS, RunOptions, describe_params
from .cli_roi import add_roi_flags, check_patch_axes, roi_kwargs, wrap_patch_model
from .gui import PAD_MODES
from .gui.fields import field_kinds
from .gui.inputs import prepare_image
from .gui.models import parse_output_key
from .intensity import NORMALIZATIONS, PERCENTILES, Normalizer
from .io import AXES, READ_FORMATS
from .wording import for_cli

__all__ = ["main"]

#: Command-line method names → method names.
CLI_METHODS: dict[str, str] = {
    "segrise": "SegRISE",
    "rise": "RISE",
    "pixel-rise": "PixelRISE",
    "hdm": "HDM",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _number_list(kind: type):
    def parse(text: str):
        parts = [p for p in text.replace(",", " ").split() if p]
        try:
            vals = [kind(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or a list, got {text!r}") from None
        return vals[0] if len(vals) == 1 else tuple(vals)

    return parse


def _parser_type(cls: type, name: str):
    """The argparse type of a parameter, from the kinds its annotation accepts."""
    hint = " | ".join(field_kinds(cls)[name])
    if "tuple" in hint:
        return _number_list(float if "float" in hint else int)
    if "str" in hint and ("float" in hint or "int" in hint):
        return _str_or_number
    if "int" in hint and "float" not in hint:
        return int
    if "float" in hint:
        return float
    return str


def _str_or_number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _add_params(parser: argparse.ArgumentParser) -> None:
    """Options for every method's parameters (each method ignores the others')."""
    seen: set[str] = set()
    group = parser.add_argument_group("method parameters (defaults depend on the method)")
    for cls in [*[m.Params for m in METHODS.values()], RunOptions]:
        for spec in describe_params(cls):
            if spec.name in seen or spec.name == "yield_every":
                continue
            seen.add(spec.name)
            help_text = spec.help + (
                f" Choices: {', '.join(spec.choices)}." if spec.choices else ""
            )
            group.add_argument(
                _flag(spec.name),
                dest=spec.name,
                type=_parser_type(cls, spec.name),
                default=None,
                help=help_text.replace("%", "%%"),
            )


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    """The model and image flags of every subcommand that runs a model on a file."""
    parser.add_argument(
        "--model", required=True, help="bundled name, .pt/.pt2 file or pkg.mod:factory"
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="allow a model file (TorchScript .pt/.ts..., torch.export .pt2): loading and "
        "calling it runs the code it holds, which can read and write any file (use only for "
        "files you trust)",
    )
    parser.add_argument("--image", required=True, help=f"image file ({' '.join(READ_FORMATS)})")
    parser.add_argument("--reference", help="reference segmentation file (default: the prediction)")


def add_call_flags(p: Any) -> None:
    """How the model is called: ``--output-key``, ``--pad-multiple``, ``--pad-mode``."""
    p.add_argument(
        "--output-key",
        metavar="KEY|INDEX",
        help="the segmentation in the model's output: a dict key (logits) or a tuple index (0); "
        "default: the tensor, a dict's out/logits/pred, .logits, a tuple's first element; "
        "'channel 2' (or 'logits/channel 2'): that channel alone, as a binary output (a "
        "multi-label model's overlapping sigmoid channels, e.g. BraTS)",
    )
    p.add_argument(
        "--pad-multiple",
        metavar="K",
        type=_number_list(int),
        help="pad inputs to a multiple of K per axis (or K1,K2,K3) and crop outputs back "
        "(U-Nets need 2**levels, e.g. 16)",
    )
    p.add_argument("--pad-mode", default="zeros", choices=list(PAD_MODES))


def call_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`add_call_flags`' flags, for a method or an evaluation."""
    return {
        "output_key": parse_output_key(args.output_key),
        "pad_multiple": args.pad_multiple,
        "pad_mode": args.pad_mode,
    }


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """``--axes``, ``--normalize`` and ``--percentiles``: the data as the model was trained."""
    parser.add_argument(
        "--axes",
        default=None,
        choices=list(AXES),
        help="NIfTI array order the model was trained on: ijk (nibabel, MONAI; the file's "
        "own order) or kji (SimpleITK, nnU-Net). NIfTI images only. Default: ijk",
    )
    parser.add_argument(
        "--normalize",
        default="none",
        choices=list(NORMALIZATIONS),
        help="intensity normalisation the model was trained with: zscore (MONAI "
        "NormalizeIntensity), zscore-nonzero (nonzero=True, nnU-Net MRI), percentile (clip to "
        "--percentiles, rescale to [0, 1]), minmax. Default: none",
    )
    parser.add_argument(
        "--percentiles",
        type=_number_list(float),
        default=PERCENTILES,
        help="low and high percentile of --normalize percentile (default 0.5,99.5)",
    )


def image_axes(args: argparse.Namespace) -> str:
    """The ``--axes`` choice (default ``"ijk"``); refused for an ``--image`` that is not NIfTI.

    A ``.npy``, ``.npz`` or TIFF array has no voxel order other than its own, so an
    ``--axes`` given with one would change nothing, and the user who gave it expects a
    transposition that would not happen.
    """
    if args.axes is None:
        return "ijk"
    name = Path(args.image).name
    if not name.lower().endswith((".nii", ".nii.gz")):
        raise ValueError(
            f"--axes applies to NIfTI images (.nii, .nii.gz) only, got --image {name}: an "
            "array file is read in its own axis order; leave --axes out (and transpose the "
            "array if the model was trained on another order)"
        )
    return args.axes


def normalizer(args: argparse.Namespace) -> Normalizer:
    """The ``--normalize`` / ``--percentiles`` choice as a callable on ``(C, *spatial)``."""
    if not isinstance(args.percentiles, tuple) or len(args.percentiles) != 2:
        raise ValueError(f"--percentiles takes two numbers like 0.5,99.5, got {args.percentiles}")
    return Normalizer(args.normalize, args.percentiles)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskscope", description="Explain image segmentation models by perturbation."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="explain the bundled samples with every method")
    demo.add_argument("--out", default="maskscope-demo", help="output folder")
    demo.add_argument("--quick", action="store_true", help="small settings (under a minute)")
    demo.add_argument("--no-3d", action="store_true", help="skip the 3D phantom")
    demo.add_argument("--napari", action="store_true", help="open the results in napari")

    ex = sub.add_parser("explain", help="explain one image with a model")
    add_input_flags(ex)
    ex.add_argument("--method", default="segrise", choices=list(CLI_METHODS))
    ex.add_argument("--out", required=True, help="output map; same format as the image")
    ex.add_argument(
        "--png",
        action="store_true",
        help="also write a PNG figure: the map over the image (a 3D map's slice through the "
        "reference's centre), enlarged to at least 512 px, with a colour bar",
    )
    ex.add_argument("--target", type=int, help="class to explain")
    ex.add_argument("--slices", help="2D model on a volume: 'all' or indices like 10,11,12")
    ex.add_argument("--spacing", type=_number_list(float), help="voxel spacing per axis")
    ex.add_argument("--outputs", default="logits", choices=["logits", "probabilities"])
    ex.add_argument("--spatial-dims", type=int, choices=[2, 3])
    add_data_flags(ex)
    add_call_flags(ex)
    ex.add_argument("--debug", action="store_true", help="show the traceback of an error")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    add_roi_flags(ex)
    _add_params(ex)
    from .cli_evaluate import add_evaluate_parser

    add_evaluate_parser(sub)
    from .cli_batch import add_batch_parser

    add_batch_parser(sub)
    return parser


def _spacing_for(explainer, data, spacing, *, given: bool) -> tuple[float, ...]:
    """One spacing per spatial axis: ``--spacing`` must fit, a file's may have extra axes."""
    n_spatial = len(prepare_image(data, explainer.spatial_dims, explainer.in_channels).spatial)
    if given and len(spacing) not in (1, n_spatial):
        raise ValueError(
            f"--spacing needs {n_spatial} values (one per spatial axis of the image) or "
            f"one for all, got {len(spacing)}: {', '.join(f'{v:g}' for v in spacing)}"
        )
    if len(spacing) == 1:
        spacing = tuple(spacing) * n_spatial
    return tuple(spacing[-n_spatial:]) if len(spacing) >= n_spatial else tuple(spacing)


def _report_prediction(explainer, image, reference, args, normalize, slices, roi=None) -> None:
    """Print what the model segments before explaining it; warn when it looks failed."""
    from .prediction import CLI_FIELDS, check_prediction

    summary = check_prediction(
        explainer,
        image,
        reference=reference,
        target=args.target,
        normalize=normalize,
        slices=slices,
        fields=CLI_FIELDS,
    )
    if summary is None:
        return
    line = summary.line()
    if roi is not None:  # what the run explains: the segment inside the ROI
        from .roi import as_roi

        pred = np.asarray(summary.prediction)
        inside = pred[as_roi(roi).resolve(pred.shape, pred)]
        found = [(int(k), int((inside == k).sum())) for k in np.unique(inside) if k != 0]
        counts = ", ".join(f"class {k} {n}" for k, n in found) or "no foreground"
        line += f"; inside --roi: {counts}"
    print(line, flush=True)
    if summary.warning:
        print(f"maskscope: warning: {summary.warning}", file=sys.stderr, flush=True)


def method_values(args: argparse.Namespace) -> dict:
    """The method's parameters and run options given as flags (the others are left out)."""
    cls = METHODS[CLI_METHODS[args.method]]
    names = {f.name for f in dataclasses.fields(cls.Params)}
    names |= {f.name for f in dataclasses.fields(RunOptions)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def check_values(method_name: str, values: dict) -> None:
    """Validate the method's flags before any file is read or the model runs (the run
    validates them again: this only moves the error ahead of the prediction pass)."""
    from .gui import split_values

    split_values(method_name, values)


def _slices(text: str | None):
    if not text or text == "all":
        return "all"
    try:
        return [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(
            f"--slices must be 'all' or slice indices like 10,11,12, got {text!r}"
        ) from None


def _load_model(args: argparse.Namespace):
    from .models import UntrustedModelError, load_model
    from .wording import load_for_frontend

    try:
        return load_for_frontend(load_model, args.model, trusted=args.trust_model)
    except UntrustedModelError as exc:
        raise UntrustedModelError(exc.path, "--trust-model") from None


def _explain(args: argparse.Namespace) -> int:
    from ._outpaths import check_format, cli_outputs
    from .io import check_colour, read_companion, read_image, write_map

    method_name = CLI_METHODS[args.method]
    values = method_values(args)
    check_values(method_name, values)
    out, png = cli_outputs(args.out, args.png, args.image, args.reference)
    args.axes = image_axes(args)
    image = read_image(args.image, axes=args.axes)
    reference = None
    if args.reference:
        reference = read_companion(args.reference, image, "--reference", axes=args.axes).data
    spacing = args.spacing or image.voxel_spacing
    if isinstance(spacing, float):
        spacing = (spacing,)
    check_format(out, image.format)
    slices = _slices(args.slices)
    explainer = METHODS[method_name](
        wrap_patch_model(_load_model(args), args),
        outputs=args.outputs,
        spatial_dims=args.spatial_dims,
        **call_options(args),
    )
    if spacing is not None:
        spacing = _spacing_for(explainer, image.data, spacing, given=args.spacing is not None)
    normalize = normalizer(args)
    layout = prepare_image(image.data, explainer.spatial_dims, explainer.in_channels)
    check_colour(image, layout.slice_by_slice, f"--image {Path(args.image).name}")
    spatial = layout.spatial
    check_patch_axes(args, len(spatial) - (1 if layout.slice_by_slice else 0))
    values.update(roi_kwargs(args, spatial, image))
    _report_prediction(explainer, image.data, reference, args, normalize, slices, values.get("roi"))
    expl = explainer.explain(
        image.data,
        reference=reference,
        target=args.target,
        slices=slices,
        voxel_spacing=spacing,
        progress=not args.quiet,
        normalize=normalize,
        **values,
    )
    write_map(out, expl.map, like=image, spacing=expl.voxel_spacing or None)
    _report_result(out, png, method_name, expl, args)
    return 0


#: explain's flags that say what a map's curves score, as ``maskscope evaluate`` takes them.
_SCORED_FLAGS = (
    ("reference", "--reference", None),
    ("target", "--target", None),
    ("outputs", "--outputs", "logits"),
    ("spatial_dims", "--spatial-dims", None),
    ("output_key", "--output-key", None),
    ("pad_multiple", "--pad-multiple", None),
)


def _report_crop(expl, out: Path, args: argparse.Namespace) -> None:
    """Where the model ran for an ROI, and the evaluate flags that score the map there."""
    if expl.params.get("crop_skipped"):
        print(f"  not cropped, the model ran on the whole image: {expl.params['crop_skipped']}")
    window = expl.params.get("crop_window")
    if window is None or args.roi is None:
        return
    sliced = expl.slices is not None and len(window) == 3
    from .roi import box_text

    box = box_text(window[1:] if sliced else window)
    where = f"the window {box}" + (" of each slice" if sliced else "")
    flags = [f"--map {out}", f"--roi {args.roi}", f"--window {box}"]
    flags += [
        f"{flag} {value}"
        for name, flag, default in _SCORED_FLAGS
        if (value := getattr(args, name, None)) is not None and value != default
    ]
    if getattr(args, "axes", "ijk") != "ijk":
        flags.append(f"--axes {args.axes}")
    if sliced:
        shown = ",".join(map(str, expl.slices[:8])) + ("…" if len(expl.slices) > 8 else "")
        flags.append(f"--slice Z (Z one of the explained slices {shown})")
    print(
        f"  the model ran on {where} (the ROI's box and a margin); to evaluate the map there: "
        f"maskscope evaluate {' '.join(flags)} (with the same --model, --image and "
        "--normalize)"
    )


def _report_result(out: Path, png: Path | None, method_name: str, expl, args) -> None:
    print(f"wrote {out} ({method_name}, {expl.n_forward} forward passes, {expl.elapsed:.1f} s)")
    if expl.stopped_early:
        per_task = int(expl.params.get("n_masks", expl.n_total))
        tasks = len(expl.slices) if expl.slices is not None else 1
        of = f"{per_task * tasks} masks" + (f" ({per_task} per slice)" if tasks > 1 else "")
        print(
            f"  stopped early: the reliability target (--tol) was reached after {expl.n_done} "
            f"of {of}"
        )
    print(f"  {for_cli(expl.reliability_text())}")
    _report_crop(expl, out, args)
    if png is not None:
        from .figure import figure_png

        figure_png(expl, png)
        print(f"wrote {png}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (bad input: one line on stderr, status 2)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("MASKSCOPE_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        return _run_command(args, debug)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """maskscope's own warnings as one line in the command line's words; others as usual."""
    if not str(filename).startswith(str(Path(__file__).parent)):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    from .wording import for_cli

    print(f"maskscope: warning: {for_cli(str(message))}", file=sys.stderr, flush=True)


def _run_command(args: argparse.Namespace, debug: bool) -> int:
    """Run the parsed command; bad input: one line on stderr, status 2."""
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(Path(args.out), quick=args.quick, with_3d=not args.no_3d, napari=args.napari)
            return 0
        if args.command == "evaluate":
            from .cli_evaluate import run_evaluate

            return run_evaluate(args)
        if args.command == "batch":
            from .cli_batch import run_batch

            return run_batch(args)
        return _explain(args)
    except KeyboardInterrupt:
        print("maskscope: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # bad input, a model that fails, a file that does not load
        if debug:
            raise
        from .wording import failure_line

        print(f"maskscope: error: {failure_line(exc, frontend='cli')}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
