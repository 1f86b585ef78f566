"""``maskscope evaluate``: deletion / insertion AUC of a map against the random baseline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_evaluate_parser", "run_evaluate"]


def add_evaluate_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to the ``maskscope`` parser's subparsers."""
    from .cli import CLI_METHODS, _add_params, add_call_flags, add_data_flags, add_input_flags
    from .cli_roi import add_crop_flag, add_roi_flag
    from .evaluate.substrates import SUBSTRATES

    ev = sub.add_parser(
        "evaluate",
        help="deletion / insertion curves of a saliency map, with a random-order baseline",
        description="Score how faithful a saliency map is: remove (deletion) or insert "
        "(insertion) the image's voxels in saliency order and in random order, and compare "
        "the areas under the Dice and probability curves.",
    )
    add_input_flags(ev)
    add_data_flags(ev)
    ev.add_argument("--map", help="saliency map file, e.g. written by 'maskscope explain --out'")
    ev.add_argument(
        "--method", choices=list(CLI_METHODS), help="compute the map with this method instead"
    )
    ev.add_argument("--target", type=int, help="class to score (default: all foreground)")
    add_roi_flag(
        ev,
        "score inside this region only, as 'explain --roi' does (what the model segments "
        "outside it is no false positive): a box z0:z1,y0:y1,x0:x1 or a mask file",
    )
    add_crop_flag(ev)
    ev.add_argument(
        "--slice",
        type=int,
        metavar="Z",
        help="a 2D model on a volume: evaluate slice Z (the image normalised over the volume, "
        "as 'explain' normalises it; with --method only that slice is explained)",
    )
    ev.add_argument(
        "--window",
        metavar="BOX|full",
        help="order, remove and insert only the voxels of this box z0:z1,y0:y1,x0:x1 (the "
        "others stay as they are); 'full': every voxel. Default: the crop window of a map "
        "that --method computes for an --roi, else every voxel",
    )
    ev.add_argument("--outputs", default="logits", choices=["logits", "probabilities"])
    ev.add_argument("--spatial-dims", type=int, choices=[2, 3])
    add_call_flags(ev)
    ev.add_argument("--substrate", default="zero", choices=list(SUBSTRATES))
    ev.add_argument("--blur-sigma", type=float, default=5.0, help="blur substrate sigma (voxels)")
    ev.add_argument("--steps", type=int, default=50, help="steps per curve")
    ev.add_argument("--random-orders", type=int, default=1, help="random orders in the baseline")
    ev.add_argument("--random-seed", type=int, default=0, help="seed of the random orders")
    ev.add_argument("--png", help="write a plot of the curves to this .png file")
    ev.add_argument("--json", help="write the curves and AUCs to this .json file")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_params(ev)
    return ev


def _check_args(args: argparse.Namespace) -> None:
    if (args.map is None) == (args.method is None):
        given = "both" if args.map else "neither"
        raise ValueError(
            f"give --map FILE (a saliency map) or --method NAME (to compute one), got {given}"
        )
    if args.steps <= 0:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    if args.random_orders < 0:
        raise ValueError(f"--random-orders must be 0 or more, got {args.random_orders}")
    if not args.blur_sigma > 0:
        raise ValueError(f"--blur-sigma must be a positive number of voxels, got {args.blur_sigma}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    for flag, value in (("--png", args.png), ("--json", args.json)):
        suffix = {"--png": ".png", "--json": ".json"}[flag]
        if value is not None and Path(value).suffix.lower() != suffix:
            raise ValueError(f"{flag} needs a file name ending in {suffix}, got {value}")
    from ._outpaths import check_outputs

    inputs = [
        (f, Path(v))
        for f, v in (("--image", args.image), ("--reference", args.reference), ("--map", args.map))
        if v
    ]
    outputs = [(f, Path(v)) for f, v in (("--png", args.png), ("--json", args.json)) if v]
    check_outputs(outputs, inputs)  # before the run: no input overwritten, folders exist


def _compute_map(args: argparse.Namespace, model: Any, image: np.ndarray, reference: Any, roi):
    from . import METHODS
    from .cli import CLI_METHODS, call_options, method_values

    values = method_values(args)
    cls = METHODS[CLI_METHODS[args.method]]
    explainer = cls(
        model, outputs=args.outputs, spatial_dims=args.spatial_dims, **call_options(args)
    )
    values.update(roi)  # roi= and crop=
    if args.slice is not None:
        values["slices"] = [args.slice]
    return explainer.explain(
        image, reference=reference, target=args.target, progress=not args.quiet, **values
    )


def _read_map(path: str, spatial: tuple[int, ...], axes: str = "ijk") -> np.ndarray:
    from .io import read_image

    key = "map" if path.lower().endswith(".npz") else None
    data = np.asarray(read_image(path, key=key, axes=axes).data)
    if data.shape != spatial:
        raise ValueError(
            f"--map must have the --image's spatial shape {spatial}, got {data.shape} "
            f"from {Path(path).name}"
        )
    return data


def _normalized(image: np.ndarray, spatial: tuple[int, ...], args: argparse.Namespace):
    """The image normalised as ``--normalize`` says (each channel on its own)."""
    from .cli import normalizer

    fn = normalizer(args)
    if image.ndim == len(spatial):  # one channel, no channel axis
        return fn(np.asarray(image)[None])[0]
    return fn(image)


def _spatial(model: Any, volume: Any, args: argparse.Namespace) -> tuple[tuple[int, ...], bool]:
    """The image's spatial shape, and whether a 2D model takes it slice by slice (then
    ``--slice`` is needed and checked)."""
    from .gui.inputs import prepare_image
    from .gui.models import model_layout
    from .io import check_colour

    dims, in_ch = model_layout(model)
    layout = prepare_image(volume.data, args.spatial_dims or dims, in_ch)
    check_colour(volume, layout.slice_by_slice, f"--image {Path(args.image).name}")
    spatial = tuple(layout.spatial)
    if not layout.slice_by_slice:
        if args.slice is not None:
            raise ValueError(
                f"--slice is for a 2D model on a volume; the model takes the --image "
                f"{spatial} whole: leave --slice out"
            )
        return spatial, False
    if args.slice is None:
        raise ValueError(
            f"--image is a volume {spatial} for a 2D model: give --slice Z to evaluate one "
            "slice (normalised over the volume, as 'explain' normalises it)"
        )
    if not 0 <= args.slice < spatial[0]:
        raise ValueError(
            f"--slice must be a slice of the volume, in [0, {spatial[0] - 1}], got {args.slice}"
        )
    return spatial, True


def _one_slice(image: np.ndarray, spatial: tuple[int, ...], z: int) -> np.ndarray:
    """Slice ``z`` of an image laid out as ``(D, H, W)`` or ``(C, D, H, W)``."""
    image = np.asarray(image)
    return image[z] if image.ndim == len(spatial) else image[:, z]


def _check_reference(reference: np.ndarray, target: int | None, roi: Any) -> None:
    region = reference == target if target is not None else reference > 0
    where = ""
    if roi is not None:
        from .roi import as_roi

        region = region & as_roi(roi).resolve(reference.shape)
        where = " inside --roi"
    if not region.any():
        what = f"class {target} (--target)" if target is not None else "foreground (labels > 0)"
        raise ValueError(
            f"--reference has no voxel of {what}{where}: expected at least one voxel to score "
            "the curves on"
        )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``maskscope evaluate``: print the AUC table, write ``--png`` / ``--json``."""
    from .cli import call_options, image_axes
    from .evaluate import iter_faithfulness
    from .io import read_companion, read_image
    from .models import UntrustedModelError, load_model

    _check_args(args)
    args.axes = image_axes(args)
    volume = read_image(args.image, axes=args.axes)
    image = volume.data
    reference = None
    if args.reference:
        reference = read_companion(args.reference, volume, "--reference", axes=args.axes).data
    try:
        model = load_model(args.model, trusted=args.trust_model)
    except UntrustedModelError as exc:
        raise UntrustedModelError(exc.path, "--trust-model") from None
    spatial, sliced = _spatial(model, volume, args)
    image = _normalized(image, spatial, args)
    if reference is not None and tuple(reference.shape) != spatial:
        raise ValueError(
            f"--reference must have the --image's spatial shape {spatial}, "
            f"got {tuple(reference.shape)}"
        )
    window = _window_flag(args.window, spatial[1:] if sliced else spatial)  # before any run
    roi = _roi_flags(args, spatial, volume)
    if reference is not None:
        _check_reference(np.asarray(reference), args.target, roi.get("roi"))
    source, options = _source(args, model, image, reference, roi, spatial, sliced)
    gen = iter_faithfulness(
        source,
        model=model,
        window=window,
        target=args.target,
        substrate=args.substrate,
        blur_sigma=args.blur_sigma,
        steps=args.steps,
        n_random=args.random_orders,
        seed=args.random_seed,
        batch_size=args.batch_size or 16,
        outputs=args.outputs,
        spatial_dims=2 if sliced else args.spatial_dims,
        **options,
        **call_options(args),
    )
    _report(_drain(gen, args), args)
    return 0


def _roi_flags(args: argparse.Namespace, spatial: tuple[int, ...], volume: Any) -> dict:
    """``roi=`` (and, for ``--method``, ``crop=``) from ``--roi`` and ``--crop``."""
    from .cli_roi import roi_kwargs

    if args.crop is not None and args.map:
        raise ValueError("--crop says how --method computes the map: a --map is made already")
    if args.window not in (None, "full") and args.roi is None and args.map:
        print(
            "maskscope: warning: --window without --roi: the curves score the whole image's "
            "segmentation; a map made for an ROI is evaluated with the same --roi",
            file=sys.stderr,
            flush=True,
        )
    return roi_kwargs(args, spatial, volume)


def _source(args, model, image, reference, roi, spatial, sliced):
    """The map to evaluate and the arguments that go with it (one slice of each for a 2D
    model on a volume)."""
    if args.method:
        expl = _compute_map(args, model, image, reference, roi)
        options = {"slice_index": args.slice} if sliced else {}
        return expl, {"image": None, "reference": None, **options}
    source = _read_map(args.map, spatial, args.axes)
    region = roi.get("roi")
    if not sliced:
        return source, {"image": image, "reference": reference, "roi": region}
    z = args.slice
    if region is not None:
        from .roi import as_roi

        region = as_roi(region).resolve(spatial)[z]
        if not region.any():
            raise ValueError(f"--roi has no voxel in --slice {z}: give a slice of the ROI")
    sliced_ref = None if reference is None else np.asarray(reference)[z]
    options = {"image": _one_slice(image, spatial, z), "reference": sliced_ref, "roi": region}
    return source[z], options


def _window_flag(text: str | None, spatial: tuple[int, ...]) -> Any:
    """``window=`` from ``--window``: ``"auto"``, None (``full``) or a checked box."""
    if text is None:
        return "auto"
    if text.strip().lower() == "full":
        return None
    from .roi import ROI

    try:
        box = ROI.from_box(text)
        box.resolve(spatial)
    except ValueError as exc:
        text = str(exc).replace("the ROI", "the window")
        raise ValueError(f"--window: {text} ('full' orders every voxel)") from None
    return box


def _report(result: Any, args: argparse.Namespace) -> None:
    what = Path(args.map).name if args.map else f"{result.method} map"
    print(
        f"{what}: {args.substrate} substrate, {result.steps} steps, {result.n_random} random "
        f"order(s), {result.n_forward} forward passes, {result.elapsed:.1f} s"
    )
    if result.slice_index is not None or args.slice is not None:
        print(f"slice {args.slice} of the volume")
    if result.window is not None:
        print(f"curves over {result.window_text()}")
    print(result.table())
    if args.png:
        result.to_png(args.png)
        print(f"wrote {args.png}")
    if args.json:
        given = ("model", "image", "map", "method", "reference", "roi", "slice", "target")
        inputs = {name: getattr(args, name) for name in given}
        Path(args.json).write_text(json.dumps({"inputs": inputs, **result.to_dict()}, indent=2))
        print(f"wrote {args.json}")


def _drain(gen: Any, args: argparse.Namespace):
    bar, last = None, None
    total = (args.steps + 1) * (1 + args.random_orders) * 2
    if not args.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="evaluate", unit="input", leave=True)
    try:
        done = 0
        for last in gen:
            n = sum(c.n_done for c in last.curves().values())
            if bar is not None:
                bar.update(n - done)
            done = n
    finally:
        if bar is not None:
            bar.close()
    return last
