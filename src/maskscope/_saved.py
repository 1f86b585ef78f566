"""Reading a saved explanation (``.npz``) without trusting it.

The file is opened with ``allow_pickle=False`` (an object array is refused, never
unpickled), and every entry is checked for its type and shape before an
:class:`~maskscope.explanation.Explanation` is built, so that a damaged or tampered file
fails here with a message naming the file and the entry, not later in a plot.
"""

from __future__ import annotations

import json
import numbers
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._declared import check_npy_members, read_limit

__all__ = ["SavedFileError", "read_saved"]


class SavedFileError(ValueError):
    """A saved explanation that cannot be used; the message names the file and entry."""


def _fail(path: Path, key: str, what: str) -> SavedFileError:
    return SavedFileError(f"{path}: entry {key!r} {what}")


def _read_entries(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    read_limit()  # a bad MASKSCOPE_MAX_READ_GB is not the file's fault
    try:
        if zipfile.is_zipfile(path):
            check_npy_members(path)  # before any array is read
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if str(exc).startswith(path.name):  # the declared size refused: its own words
            raise SavedFileError(f"{path}: {exc}") from None
        raise SavedFileError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise SavedFileError(f"{path}: not a maskscope explanation (a single array, not .npz)")
    out = {}
    with data:
        for key in data.files:
            try:
                out[key] = data[key]
            except ValueError as exc:  # object arrays need pickle: refused
                raise _fail(path, key, f"cannot be read without unpickling ({exc})") from None
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                raise _fail(path, key, f"is damaged ({exc})") from None
    return out


def _check_array(path: Path, key: str, arr: np.ndarray, kind: str) -> np.ndarray:
    ok = {"float": "fc", "int": "iub", "number": "fiub", "bool": "b"}[kind]
    if arr.dtype.kind == "c" or arr.dtype.kind not in ok:
        expected = {
            "float": "floats",
            "int": "integer labels",
            "number": "numbers",
            "bool": "true/false voxels",
        }[kind]
        raise _fail(path, key, f"must hold {expected}, got dtype {arr.dtype}")
    return arr


_META_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "method": ((str,), "a string"),
    "params": ((dict,), "an object"),
    "n_done": ((numbers.Integral,), "an integer"),
    "n_total": ((numbers.Integral,), "an integer"),
    "n_forward": ((numbers.Integral,), "an integer"),
    "elapsed": ((numbers.Real,), "a number"),
    "done": ((bool,), "true or false"),
    "cancelled": ((bool,), "true or false"),
    "stopped_early": ((bool,), "true or false"),
    "rel_error": ((numbers.Real, type(None)), "a number or null"),
    "target": ((numbers.Integral, type(None)), "an integer or null"),
    "voxel_spacing": ((list,), "a list of numbers"),
    "slices": ((list, type(None)), "a list of integers or null"),
}


def _read_meta(path: Path, entry: np.ndarray) -> dict[str, Any]:
    if entry.dtype.kind != "U" or entry.ndim != 0:
        raise _fail(path, "meta", f"must be a JSON string, got {entry.dtype} {entry.shape}")
    try:
        meta = json.loads(str(entry))
    except json.JSONDecodeError as exc:
        raise _fail(path, "meta", f"is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _fail(path, "meta", f"must be a JSON object, got {type(meta).__name__}")
    if "method" not in meta:
        raise _fail(path, "meta", "has no 'method' field")
    for name, (types, expected) in _META_TYPES.items():
        if name not in meta:
            continue
        value = meta[name]
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            raise _fail(path, f"meta.{name}", f"must be {expected}, got {value!r}")
    for name, item_type, what in (
        ("voxel_spacing", numbers.Real, "numbers"),
        ("slices", numbers.Integral, "integers"),
    ):
        items = meta.get(name) or []
        if any(isinstance(v, bool) or not isinstance(v, item_type) for v in items):
            raise _fail(path, f"meta.{name}", f"must hold {what}, got {items!r}")
    return meta


def _check_shapes(path: Path, arrays: dict[str, np.ndarray]) -> None:
    shape = arrays["map"].shape
    if len(shape) not in (2, 3):
        raise _fail(path, "map", f"must be (H, W) or (D, H, W), got shape {shape}")
    for key in ("stderr", "reference", "prediction", "roi"):
        if key in arrays and arrays[key].shape != shape:
            raise _fail(path, key, f"must have the map's shape {shape}, got {arrays[key].shape}")
    image = arrays.get("image")
    if image is not None and (image.ndim != len(shape) + 1 or image.shape[1:] != shape):
        raise _fail(path, "image", f"must be (C, *{shape}), got shape {image.shape}")


def read_saved(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict]:
    """Read and check a file written by :meth:`Explanation.save`.

    Returns
    -------
    meta, arrays, extras
        The JSON fields, the named arrays (``map``, ``stderr``, ``reference``,
        ``prediction``, ``roi``, ``image``) and the extra maps.

    Raises
    ------
    SavedFileError
        A ``ValueError`` naming the file and the entry that is missing, of the wrong type
        or shape, or not readable without unpickling.
    FileNotFoundError
        When there is no such file.
    """
    path = Path(path)
    entries = _read_entries(path)
    missing = [k for k in ("meta", "map") if k not in entries]
    if missing:
        raise SavedFileError(
            f"{path}: not a maskscope explanation (missing {', '.join(map(repr, missing))}; "
            f"it holds {sorted(entries)})"
        )
    meta = _read_meta(path, entries["meta"])
    kinds = {"map": "float", "stderr": "float", "image": "number"}
    kinds.update(reference="int", prediction="int", roi="bool")
    arrays = {k: _check_array(path, k, entries[k], t) for k, t in kinds.items() if k in entries}
    extras = {
        k[len("extra__") :]: _check_array(path, k, v, "number")
        for k, v in entries.items()
        if k.startswith("extra__")
    }
    _check_shapes(path, arrays)  # extras have shapes of their own (e.g. HDM's grid)
    spacing = meta.get("voxel_spacing") or []
    if spacing and len(spacing) != arrays["map"].ndim:
        raise _fail(
            path, "meta.voxel_spacing", f"must have {arrays['map'].ndim} values, got {spacing}"
        )
    return meta, arrays, extras
