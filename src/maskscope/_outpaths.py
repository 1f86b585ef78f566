"""Checks on output paths made before a run starts: nothing is written over an input.

Used by the command line: a run can take minutes, so a missing folder, an unwritable file
or an output that is one of the inputs is reported before the first model call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .io import FORMATS, PICTURE_FORMATS, READ_FORMATS

__all__ = ["check_format", "check_outputs", "cli_outputs", "png_sidecar", "strip_format"]


def strip_format(path: Path) -> str:
    """The file name without its format suffix (``run.v2.nii.gz`` → ``run.v2``)."""
    name = path.name
    for fmt in sorted(READ_FORMATS, key=len, reverse=True):
        if name.lower().endswith(fmt):
            return name[: -len(fmt)]
    return path.stem


def png_sidecar(path: Path) -> Path:
    """The overlay PNG next to a map, keeping the whole stem (``run.v2.npy`` → ``run.v2.png``)."""
    return path.with_name(strip_format(path) + ".png")


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _check_writable(flag: str, path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: the folder {folder} does not exist; create it first")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path} exists and is not writable")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {folder} is not writable")


def check_outputs(outputs: Sequence[tuple[str, Path]], inputs: Sequence[tuple[str, Path]]) -> None:
    """Refuse outputs that are inputs, or that cannot be written; before any work.

    Parameters
    ----------
    outputs
        ``(what, path)`` of every file the run will write (``what`` names the flag, e.g.
        ``"--out"`` or ``"--png (writes the overlay)"``).
    inputs
        ``(flag, path)`` of every file the run reads.

    Raises
    ------
    ValueError
        Naming the flag, the output and the input it would overwrite, or why the output
        cannot be written.
    """
    for what, out in outputs:
        for flag, src in inputs:
            if _same(out, src):
                raise ValueError(
                    f"{what} {out} is the {flag} file {src}: it would be overwritten; "
                    "choose another output name"
                )
        if Path(out).is_symlink():  # writing through it would overwrite what it points to
            raise ValueError(
                f"{what} {out} is a symbolic link (to {os.readlink(out)}): maskscope does not "
                "write through links; remove the link or choose another output name"
            )
        _check_writable(what, out)
    for i, (what, out) in enumerate(outputs):
        for other, out2 in outputs[i + 1 :]:
            if _same(out, out2):
                raise ValueError(f"{what} and {other} both write {out}: choose another --out")


def check_format(out: Path, input_format: str) -> None:
    """``--out`` must end in a known format (and stay NIfTI for a NIfTI input)."""
    name = out.name.lower()
    if input_format.startswith(".nii") and not name.endswith((".nii", ".nii.gz")):
        raise ValueError(
            "a NIfTI --image gives a NIfTI map, in the image's space (its affine and header): "
            f"--out needs a file name ending in .nii.gz or .nii, got {out.name}"
        )
    if input_format in PICTURE_FORMATS and not any(name.endswith(f) for f in FORMATS):
        raise ValueError(
            f"a {input_format} --image gives a map of floats, which a picture cannot hold: "
            f"--out needs a file name ending in .tif (or one of {', '.join(FORMATS)}), "
            f"got {out.name}; --png adds a figure"
        )
    if not any(name.endswith(f) for f in FORMATS):
        raise ValueError(
            f"--out needs a file name ending in {input_format} (or one of "
            f"{', '.join(FORMATS)}), got {out.name}"
        )


def cli_outputs(out: str, png: bool, image: str, reference: str | None) -> tuple[Path, Path | None]:
    """The command line's output paths, checked against its inputs before the run.

    Returns
    -------
    out, png
        The map's path and the overlay PNG's (None without ``--png``).
    """
    out_path = Path(out)
    png_path = png_sidecar(out_path) if png else None
    inputs = [("--image", Path(image))]
    if reference:
        inputs.append(("--reference", Path(reference)))
    outputs = [("--out", out_path)]
    if png_path is not None:
        outputs.append(("--png (the overlay)", png_path))
    check_outputs(outputs, inputs)
    return out_path, png_path
