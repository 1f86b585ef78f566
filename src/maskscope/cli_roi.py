"""The explain command's flags for regions of interest, crop mode and patch-based models.

``--roi`` is a box ``z0:z1,y0:y1,x0:x1`` or a mask file (any image format maskscope
reads; non-zero voxels are the ROI). ``--crop`` runs the model on the ROI's box plus a
margin (``--crop`` alone: estimated from the model's receptive field; ``--crop 12``: 12
voxels). ``--patch-size`` runs the model by sliding window.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import numpy as np

__all__ = [
    "add_crop_flag",
    "add_patch_flags",
    "add_roi_flags",
    "patch_options",
    "roi_kwargs",
    "wrap_patch_model",
]

_BOX = re.compile(r"^\s*-?\d*\s*:\s*-?\d*\s*(,\s*-?\d*\s*:\s*-?\d*\s*)*$")


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(",", " ").split())


def add_roi_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--roi``, ``--crop`` and the ``--patch-*`` flags to the explain parser."""
    group = parser.add_argument_group("region of interest and large volumes")
    add_roi_flag(
        group,
        "explain only this region: a box z0:z1,y0:y1,x0:x1 (y0:y1,x0:x1 in 2D; 10: runs to "
        "the end) or a mask file of the image's shape (non-zero voxels)",
    )
    add_crop_flag(group)
    add_patch_flags(group)


def add_crop_flag(parser: Any) -> None:
    """Add ``--crop [MARGIN]``."""
    parser.add_argument(
        "--crop",
        nargs="?",
        const="auto",
        metavar="MARGIN",
        help="with --roi: run the model on the ROI's box plus a margin only (no value: the "
        "model's receptive field, estimated; or voxels, e.g. 12 or 12,12,8; 'off': the "
        "whole image). Default: the RISE family crops when the receptive field can be "
        "estimated and the window is smaller than the image",
    )


def add_patch_flags(parser: Any) -> None:
    """Add the ``--patch-*`` (sliding window) flags."""
    parser.add_argument(
        "--patch-size",
        metavar="P",
        help="run the model by sliding window on patches of P voxels per axis (or P1,P2,P3)",
    )
    parser.add_argument(
        "--patch-overlap", type=float, help="sliding-window overlap in [0, 1) (default 0.25)"
    )
    parser.add_argument(
        "--patch-blend", choices=["constant", "gaussian"], help="blending (default constant)"
    )
    parser.add_argument("--patch-batch", type=int, help="patches per model call (default 4)")


def add_roi_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Add ``--roi BOX|FILE``."""
    parser.add_argument("--roi", metavar="BOX|FILE", help=help_text)


def roi_flag(args: argparse.Namespace, spatial: tuple[int, ...], image: Any) -> Any:
    """``--roi`` as a box text or a boolean mask, checked against ``spatial`` (and, for a
    NIfTI mask, against the NIfTI ``image``'s space: a :class:`~maskscope.io.Volume`)."""
    from .roi import as_roi

    if _BOX.match(args.roi):
        roi: Any = args.roi
    else:
        from .io import read_companion

        try:
            axes = getattr(args, "axes", None) or "ijk"
            mask = read_companion(args.roi, image, "--roi", axes=axes).data
        except FileNotFoundError:
            raise ValueError(
                f"--roi must be a box like 10:42,0:64,5:37 (10: runs to the end) or a mask "
                f"file, got {args.roi!r} (no such file)"
            ) from None
        mask = np.asarray(mask)
        while mask.ndim > len(spatial) and mask.shape[0] == 1:
            mask = mask[0]
        roi = mask != 0
    try:
        as_roi(roi).resolve(spatial)
    except ValueError as exc:
        raise ValueError(f"--roi: {exc}") from None
    return roi


def roi_kwargs(args: argparse.Namespace, spatial: tuple[int, ...], image: Any) -> dict[str, Any]:
    """The ``roi=`` and ``crop=`` arguments of ``explain`` from the flags.

    The ROI is checked against the image's ``spatial`` shape here, so that its errors
    name the flag.
    """
    out: dict[str, Any] = {}
    if args.roi is None:
        if args.crop is not None:
            raise ValueError("--crop needs --roi (the region whose box is cropped)")
        return out
    out["roi"] = roi_flag(args, spatial, image)
    if args.crop is not None:
        if args.crop == "auto":
            out["crop"] = True
        elif args.crop == "off":
            out["crop"] = False
        else:
            try:
                margin = _int_list(args.crop)
            except ValueError:
                raise ValueError(
                    f"--crop takes no value, 'off' or a margin in voxels like 12 or 12,12,8, got "
                    f"{args.crop!r}"
                ) from None
            out["crop"] = margin[0] if len(margin) == 1 else margin
    return out


#: The sliding-window flags that need ``--patch-size``, and their defaults.
_PATCH_DEFAULTS = {"patch_overlap": 0.25, "patch_blend": "constant", "patch_batch": 4}


def patch_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The sliding window's settings from ``--patch-*`` (checked), or None without
    ``--patch-size``: ``SlidingWindow``'s keyword arguments."""
    given = [k for k in _PATCH_DEFAULTS if getattr(args, k, None) is not None]
    if getattr(args, "patch_size", None) is None:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ValueError(
                f"{flags} only tune(s) the sliding window of --patch-size: give --patch-size too"
            )
        return None
    for k, default in _PATCH_DEFAULTS.items():
        if getattr(args, k, None) is None:
            setattr(args, k, default)
    try:
        size = _int_list(args.patch_size)
    except ValueError:
        raise ValueError(
            f"--patch-size must be voxels like 64 or 64,64,32, got {args.patch_size!r}"
        ) from None
    options = {
        "patch_size": size[0] if len(size) == 1 else tuple(size),
        "overlap": args.patch_overlap,
        "blend": args.patch_blend,
        "patch_batch": args.patch_batch,
    }
    sliding_window(lambda x: x, options)  # checks the values, naming the flags
    return options


def sliding_window(model: Any, options: dict[str, Any]) -> Any:
    """``SlidingWindow(model, **options)``, its errors naming the ``--patch-*`` flags."""
    from . import SlidingWindow

    try:
        return SlidingWindow(model, **options)
    except ValueError as exc:
        text = str(exc)
        for name, flag in (
            ("patch_size", "--patch-size"),
            ("overlap", "--patch-overlap"),
            ("patch_batch", "--patch-batch"),
        ):
            text = text.replace(name, flag, 1) if text.startswith(name) else text
        raise ValueError(text) from None


def wrap_patch_model(model: Any, args: argparse.Namespace) -> Any:
    """The model run by sliding window when ``--patch-size`` is given."""
    options = patch_options(args)
    return model if options is None else sliding_window(model, options)


def check_patch_axes(args: argparse.Namespace, model_dims: int) -> None:
    """``--patch-size`` has one value, or one per spatial axis of the model."""
    if getattr(args, "patch_size", None) is None:
        return
    n = len(_int_list(args.patch_size))
    if n not in (1, model_dims):
        raise ValueError(
            f"--patch-size needs one value or {model_dims} (one per spatial axis of the "
            f"{model_dims}D model), got {n}: {args.patch_size}"
        )
