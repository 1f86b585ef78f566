"""A dataset of cases: a folder, a glob or a CSV of images, each case named after its input.

A case is an image file, with optionally a reference (ground-truth label) file and a region
of interest (ROI) file. Inputs are:

- a folder: every image file in it (``.npy .npz .tif .tiff .nii .nii.gz``), sorted by name;
- a glob such as ``"scans/*/t1.nii.gz"`` (``**`` searches sub-folders);
- a CSV file with an ``image`` column and optionally ``reference`` (or ``label``), ``roi``
  and ``name`` columns; relative paths are read from the CSV's folder;
- a single image file.

Cases are named after their image files without the format suffix (``case01.nii.gz`` →
``case01``). Two images with the same file name in different folders get their folders in
front (``sub-01/t1.nii.gz`` → ``sub-01_t1``); two images of one folder with the same stem
keep their suffix (``coins.png``, ``coins.jpg`` → ``coins_png``, ``coins_jpg``). A CSV's
``name`` column wins: with it, one image can be several cases (one per ROI, say).
"""

from __future__ import annotations

import csv
import glob
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import READ_FORMATS

__all__ = ["CSV_COLUMNS", "Case", "load_cases"]

#: Columns a dataset CSV may have (``image`` is required; ``label`` means ``reference``).
CSV_COLUMNS = ("name", "image", "reference", "label", "roi")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Case:
    """One input of a dataset.

    Attributes
    ----------
    name
        The case's name: its result files are called after it.
    image
        The image file.
    reference
        A reference segmentation file (a ground-truth label), or None: the model's own
        prediction is the reference.
    roi
        A region-of-interest file (a mask), a box as ``--roi`` writes it
        (``"z0:z1,y0:y1,x0:x1"``, a str), or None.
    """

    name: str
    image: Path
    reference: Path | None = None
    roi: Path | str | None = None


#: A box written as ``--roi`` takes it: ranges of digits separated by commas.
_BOX = re.compile(r"^\s*\d*\s*:\s*\d*(\s*,\s*\d*\s*:\s*\d*)*\s*$")


def is_box(text: str) -> bool:
    """Whether a CSV ``roi`` cell is a box (``10:20,5:30,0:``) rather than a file."""
    return bool(_BOX.match(str(text)))


def _roi_of(cell: Any) -> Path | str | None:
    if cell is None:
        return None
    return cell if isinstance(cell, str) and is_box(cell) else Path(cell).absolute()


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and any(name.endswith(f) for f in READ_FORMATS)


def _strip(name: str) -> str:
    lower = name.lower()
    for fmt in sorted(READ_FORMATS, key=len, reverse=True):
        if lower.endswith(fmt):
            return name[: -len(fmt)]
    return name


def _from_folder(folder: Path) -> list[dict[str, Path]]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p))
    if not files:
        raise ValueError(
            f"INPUTS: the folder {folder} holds no image files; expected files ending in "
            f"{', '.join(READ_FORMATS)}"
        )
    return [{"image": p} for p in files]


def _from_glob(pattern: str) -> list[dict[str, Path]]:
    found = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    files = [p for p in found if p.is_file() and _is_image(p)]
    if not files:
        what = f"only {len(found)} path(s) that are not image files" if found else "nothing"
        raise ValueError(
            f"INPUTS: the pattern {pattern!r} matched {what}; expected image files ending "
            f"in {', '.join(READ_FORMATS)}"
        )
    return [{"image": p} for p in files]


def _cell(row: dict[str, str], key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return value or None


def _from_csv(path: Path) -> list[dict[str, Path | str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "image" not in columns:
            raise ValueError(
                f"INPUTS: {path.name} needs an 'image' column (and optionally "
                f"{', '.join(c for c in CSV_COLUMNS if c != 'image')}), got columns "
                f"{', '.join(columns) or '(none)'}"
            )
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        if unknown:
            raise ValueError(
                f"INPUTS: {path.name} has unknown column(s) {', '.join(unknown)}; expected "
                f"{', '.join(CSV_COLUMNS)}"
            )
        if "reference" in columns and "label" in columns:
            raise ValueError(
                f"INPUTS: {path.name} has both 'reference' and 'label' columns; give one"
            )
        rows = [{k.strip(): v for k, v in row.items() if k} for row in reader]
    base = path.parent
    out: list[dict[str, Path | str]] = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        image = _cell(row, "image")
        if image is None:
            raise ValueError(f"INPUTS: {path.name} line {i} has an empty 'image' cell")
        entry: dict[str, Path | str] = {"image": base / image}
        ref = _cell(row, "reference") or _cell(row, "label")
        if ref is not None:
            entry["reference"] = base / ref
        roi = _cell(row, "roi")
        if roi is not None:
            entry["roi"] = roi if is_box(roi) else base / roi
        name = _cell(row, "name")
        if name is not None:
            entry["name"] = name
        out.append(entry)
    if not out:
        raise ValueError(f"INPUTS: {path.name} lists no case (only a header)")
    return out


def _expand(item: str | Path) -> list[dict[str, Path | str]]:
    text = str(item)
    path = Path(text)
    if path.is_dir():
        return _from_folder(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _from_csv(path)
    if path.is_file():
        if not _is_image(path):
            raise ValueError(
                f"INPUTS: {path.name} is neither a folder, a .csv nor an image file "
                f"({', '.join(READ_FORMATS)})"
            )
        return [{"image": path}]
    if glob.has_magic(text):
        return _from_glob(text)
    raise ValueError(f"INPUTS: {text} does not exist (expected a folder, a glob or a .csv file)")


def _key(path: Path) -> tuple[Path, str]:
    """The file as given: its folder resolved, its own name kept (a link is not its target)."""
    return path.parent.resolve(), path.name


def _auto_names(images: Sequence[Path]) -> list[str]:
    """Case names from the file names, unique among different files.

    The same file listed twice gets the same name twice (:func:`load_cases` refuses it
    unless a CSV ``name`` tells the cases apart).
    """
    keys = [_key(p) for p in images]
    files = list(dict.fromkeys(keys))
    stems = [(folder, _strip(name)) for folder, name in files]
    crowded = Counter(stems)  # one stem twice in one folder: keep the suffix
    bases = [
        stem if crowded[folder, stem] == 1 else _suffixed(name, stem)
        for (folder, name), (_, stem) in zip(files, stems, strict=True)
    ]
    parts = [[*folder.parts, base] for (folder, _), base in zip(files, bases, strict=True)]
    depth = [1] * len(parts)
    while True:
        names = ["_".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clashes = {n for n, k in Counter(names).items() if k > 1}
        if not clashes:
            by_file = dict(zip(files, names, strict=True))
            return [by_file[k] for k in keys]
        grown = False
        for i, n in enumerate(names):
            if n in clashes and depth[i] < len(parts[i]):
                depth[i] += 1
                grown = True
        if not grown:
            clash = next(n for n in names if n in clashes)
            first, second = [i for i, n in enumerate(names) if n == clash][:2]
            same = f" (both {bases[first]!r})" if bases[first] == bases[second] else ""
            raise ValueError(
                f"INPUTS: the case names of {Path(*files[first])} and {Path(*files[second])} "
                f"clash{same}; rename one of the files, or list the images in a CSV with a "
                "'name' column"
            )


def _suffixed(name: str, stem: str) -> str:
    """``stem`` and the format suffix of ``name``: ``coins.png`` → ``coins_png``."""
    return f"{stem}_{name[len(stem) :].lstrip('.').replace('.', '_')}"


def _safe(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("._")
    if not cleaned:
        raise ValueError(f"INPUTS: the case name {name!r} has no usable character")
    return cleaned


def load_cases(inputs: str | Path | Iterable[str | Path]) -> list[Case]:
    """The cases of one or more inputs (folders, globs, CSV files, image files).

    Parameters
    ----------
    inputs
        One input or several; their cases are concatenated in the order given.

    Returns
    -------
    list of Case
        Named after their images (unique; a CSV's ``name`` column wins, so one image may
        be several cases with distinct names), with absolute paths.

    Raises
    ------
    ValueError
        An input that does not exist, matches no image, a CSV without an ``image`` column,
        or two cases with the same name (one image listed twice without distinct names
        among them).
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise ValueError("INPUTS: give at least one folder, glob, .csv or image file")
    entries = [e for item in items for e in _expand(item)]
    images = [Path(e["image"]) for e in entries]
    auto = _auto_names(images)
    names = [_safe(str(e.get("name", a))) for e, a in zip(entries, auto, strict=True)]
    seen: dict[str, Path] = {}
    for name, image in zip(names, images, strict=True):
        if name in seen and _key(seen[name]) == _key(image):
            raise ValueError(
                f"INPUTS: the case names clash: the image {image} is listed twice, both "
                f"times as {name!r}; give each of its cases its own name in a CSV 'name' column"
            )
        if name in seen:
            raise ValueError(
                f"INPUTS: two cases are named {name!r} ({seen[name]} and {image}); give "
                "distinct names in a CSV 'name' column"
            )
        seen[name] = image
    return [  # absolute paths: workers may run in another folder
        Case(
            name=name,
            image=Path(e["image"]).absolute(),
            reference=Path(e["reference"]).absolute() if "reference" in e else None,
            roi=_roi_of(e.get("roi")),
        )
        for name, e in zip(names, entries, strict=True)
    ]
