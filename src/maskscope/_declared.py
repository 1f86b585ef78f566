"""What a file declares it holds, checked before its array is read.

A file states its array's shape and type in a header, and the readers (numpy, nibabel,
tifffile) allocate that much memory before they read the data: a file of a few bytes that
declares a 1024³ volume, or a small compressed file of zeros, would use gigabytes before any
check of the array could run. The declared size is checked here against what the file can
hold (an uncompressed file's data cannot be shorter than its array; compression cannot
shrink data beyond about a thousandth) and against a share of this machine's memory.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MAX_COMPRESSION",
    "check_declared",
    "check_npy",
    "check_npy_members",
    "npy_header",
    "read_limit",
]

#: The largest ratio of data to its deflate / gzip stream (zlib's ideal is about 1032 : 1).
MAX_COMPRESSION = 1100

#: Environment variable that sets the largest array read at once, in GB.
LIMIT_VARIABLE = "MASKSCOPE_MAX_READ_GB"


def read_limit() -> tuple[float, str]:
    """The largest array (bytes) a file may declare, and where the limit comes from: half
    this machine's memory, or ``MASKSCOPE_MAX_READ_GB`` (``inf``: no limit)."""
    given = os.environ.get(LIMIT_VARIABLE, "").strip()
    if given:
        try:
            gb = float(given)
        except ValueError:
            gb = float("nan")
        if not gb > 0:
            raise ValueError(
                f"{LIMIT_VARIABLE} must be a positive number of GB (or inf), got {given!r}"
            )
        return gb * 1e9, f"{LIMIT_VARIABLE}={given}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on Linux or macOS
        total = 32 * 10**9
    return total / 2, "half this machine's memory"


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def check_declared(
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    stored: int | None = None,
    compressed: int | None = None,
) -> None:
    """Refuse an array that the file cannot hold, or that is too large to read.

    Parameters
    ----------
    name
        The file's name, for the message.
    shape, dtype
        What the file's header declares.
    stored
        Bytes of array data an uncompressed file holds after its header.
    compressed
        Bytes of a compressed stream that decompresses into the array.
    """
    nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    what = f"an array of shape {tuple(int(s) for s in shape)} ({np.dtype(dtype)}, {_gb(nbytes)})"
    if stored is not None and nbytes > stored:
        raise ValueError(
            f"{name} declares {what} but holds only {stored} bytes of data: the file is "
            "truncated or damaged"
        )
    if compressed is not None and nbytes > max(compressed, 1) * MAX_COMPRESSION:
        raise ValueError(
            f"{name} declares {what} from {compressed} compressed bytes, more than compression "
            "can give: the file is truncated or damaged"
        )
    limit, source = read_limit()
    if nbytes > limit:
        raise ValueError(
            f"{name} declares {what}, more than maskscope reads at once here ({_gb(limit)}, "
            f"{source}): refused before reading it; set {LIMIT_VARIABLE} to raise the limit"
        )


def npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the ``.npy`` stream ``fh`` (at its start)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), dtype, fh.tell()


def check_npy(path: Path) -> None:
    """Check a ``.npy`` file's declared array against its size (see :func:`check_declared`)."""
    with open(path, "rb") as fh:
        shape, dtype, header = npy_header(fh)
    if dtype.hasobject:
        return  # refused by np.load(allow_pickle=False), with its own message
    check_declared(path.name, shape, dtype, stored=path.stat().st_size - header)


def check_npy_members(path: Path) -> None:
    """Check every member of a ``.npz`` file before any is read.

    numpy reads a member as an array when it starts with the ``.npy`` magic, whatever its
    name, and any other as bytes: an array's declared size is checked, and a member of
    bytes is bounded by the limit and by what its compressed size can give.
    """
    magic = np.lib.format.MAGIC_PREFIX
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            packed = info.compress_size if info.compress_type == zipfile.ZIP_DEFLATED else None
            with zf.open(info) as fh:
                is_array = fh.read(len(magic)) == magic
            label = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            name = f"{path.name} (array {label!r})"
            if not is_array:
                check_declared(name, (info.file_size,), np.uint8, compressed=packed)
                continue
            with zf.open(info) as fh:
                shape, dtype, header = npy_header(fh)
            if dtype.hasobject:
                continue  # refused by np.load(allow_pickle=False), with its own message
            stored = info.file_size - header
            check_declared(name, shape, dtype, stored=stored, compressed=packed)
