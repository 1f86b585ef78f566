"""The output folder of a batch: results per case, written safely, and the summary table.

Layout of ``OUT``::

    batch.json              the settings of the batch (a restart must use the same)
    maps/NAME.<format>      the map, in the input's format (NIfTI keeps the affine)
    explanations/NAME.npz   the saved explanation (:meth:`maskscope.Explanation.save`)
    cases/NAME.json         the case's record: written last, so it marks the case finished
    summary.csv             one row per case
    summary.json            the same rows, with the settings and the counts

Every file is written under a temporary name in its folder and renamed when complete, so
an interrupted run leaves either a whole result or none; a restart skips the cases whose
record says ``"ok"`` and whose files are there.
"""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import FORMATS
from .dataset import Case

__all__ = [
    "SUMMARY_COLUMNS",
    "BatchStore",
    "atomic_write",
]

#: Columns of ``summary.csv``, in order (evaluation columns only when asked for).
SUMMARY_COLUMNS = (
    "name",
    "status",
    "image",
    "reference",
    "roi",
    "method",
    "target",
    "n_done",
    "n_total",
    "prediction_voxels",
    "prediction_volume",
    "reference_dice",
    "reliability",
    "rel_error",
    "stopped_early",
    "deletion_auc",
    "insertion_auc",
    "random_deletion_auc",
    "random_insertion_auc",
    "evaluation_window",
    "evaluation_note",
    "n_forward",
    "explain_seconds",
    "seconds",
    "worker",
    "host",
    "device",
    "attempts",
    "map",
    "explanation",
    "error",
)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` through ``write(tmp)`` under a temporary name, then rename it.

    The temporary name is in the same folder and ends like ``path`` (writers choose the
    format from the suffix). A failed write leaves no file behind.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _csv_cell(value: Any) -> Any:
    """A summary cell: empty for None; text a spreadsheet would run as a formula, quoted."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class BatchStore:
    """Paths, records and summary of one batch's output folder.

    Parameters
    ----------
    out
        The output folder (created with its sub-folders).
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"--out {self.out} is a file; give a folder")
        for sub in ("maps", "explanations", "cases"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    def map_path(self, name: str, fmt: str) -> Path:
        """Where the map of case ``name`` goes, in format ``fmt`` (e.g. ``.nii.gz``)."""
        return self.out / "maps" / f"{name}{fmt}"

    def explanation_path(self, name: str) -> Path:
        """Where the saved explanation of case ``name`` goes."""
        return self.out / "explanations" / f"{name}.npz"

    def record_path(self, name: str) -> Path:
        """The record that marks case ``name`` finished (or failed)."""
        return self.out / "cases" / f"{name}.json"

    # ------------------------------------------------------------------ settings
    def check_settings(self, settings: dict[str, Any], *, overwrite: bool = False) -> None:
        """Record the batch's settings, or refuse a restart with other settings.

        Raises
        ------
        ValueError
            ``OUT/batch.json`` holds other settings (naming those that differ), unless
            ``overwrite`` is set (then the new settings replace them and every case is
            computed again).
        """
        path = self.out / "batch.json"
        settings = json.loads(json.dumps(settings, default=str))
        if path.is_file() and not overwrite:
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict) and old != settings:
                keys = sorted(k for k in {*old, *settings} if old.get(k) != settings.get(k))
                raise ValueError(
                    f"--out {self.out} holds results made with other settings "
                    f"({', '.join(keys)} differ): use another --out, or --overwrite to "
                    "compute every case again"
                )
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(settings, indent=2)))

    # ------------------------------------------------------------------ records
    def read_record(self, name: str) -> dict[str, Any] | None:
        """The record of case ``name`` (None when missing or unreadable)."""
        try:
            record = json.loads(self.record_path(name).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def is_finished(self, name: str, image: Any = None) -> bool:
        """Whether case ``name`` has an ``"ok"`` record of its own and its files.

        A record counts only as this store writes it: its name, its image (when given),
        and its map and explanation where the store puts them (``maps/NAME…``,
        ``explanations/NAME.npz``), so that a record placed in ``OUT/cases`` by someone
        else cannot mark a case finished with files from elsewhere.
        """
        record = self.read_record(name)
        if record is None or record.get("status") != "ok" or record.get("name") != name:
            return False
        if image is not None and record.get("image") != str(image):
            return False
        map_file, expl_file = record.get("map"), record.get("explanation")
        if not isinstance(map_file, str) or not isinstance(expl_file, str):
            return False
        own_map = any(Path(map_file) == Path("maps") / f"{name}{fmt}" for fmt in FORMATS)
        if not own_map or Path(expl_file) != Path("explanations") / f"{name}.npz":
            return False
        root = self.out.resolve()
        for f in (map_file, expl_file):
            path, folder = self.out / f, self.out / Path(f).parent
            if folder.is_symlink() or path.is_symlink() or not path.is_file():
                return False
            if path.resolve().parent != root / Path(f).parent:  # inside OUT, not elsewhere
                return False
        return True

    def write_record(self, row: dict[str, Any]) -> dict[str, Any]:
        """Write a case's record (atomically); returns the row as written."""
        row = {k: _json_value(v) for k, v in row.items()}
        text = json.dumps(row, indent=2, default=str)
        atomic_write(self.record_path(row["name"]), lambda tmp: tmp.write_text(text))
        return row

    def failure(self, case: Case, message: str, attempts: int, **extra: Any) -> dict[str, Any]:
        """Record case ``case`` as failed with ``message``."""
        row = {
            "name": case.name,
            "status": "failed",
            "image": str(case.image),
            "reference": str(case.reference) if case.reference else None,
            "roi": str(case.roi) if case.roi else None,
            "attempts": attempts,
            "error": message,
            **extra,
        }
        return self.write_record(row)

    # ------------------------------------------------------------------ summary
    def write_summary(self, cases: Sequence[Case], settings: dict[str, Any]) -> dict[str, Any]:
        """Write ``summary.csv`` and ``summary.json`` from the records of ``cases``.

        Cases without a record of their own yet (an ``"ok"`` one only with its files, as
        :meth:`is_finished` checks) are listed as ``"pending"``. In ``summary.csv`` a text
        cell that a spreadsheet would read as a formula (``= + - @``) starts with ``'``.
        Returns the JSON content.
        """
        rows = []
        for case in cases:
            record = self.read_record(case.name)
            if record is not None and (
                record.get("name") != case.name
                or (record.get("status") == "ok" and not self.is_finished(case.name, case.image))
            ):
                record = None  # not a record this store wrote for this case
            rows.append(record or {"name": case.name, "status": "pending", "image": case.image})
        rows = [{k: _json_value(v) for k, v in r.items()} for r in rows]
        extra = sorted({k for r in rows for k in r} - set(SUMMARY_COLUMNS))
        used = {k for r in rows for k, v in r.items() if v is not None}
        columns = [c for c in SUMMARY_COLUMNS if c in used or c in ("name", "status")] + extra
        counts = {s: sum(r.get("status") == s for r in rows) for s in ("ok", "failed", "pending")}

        def write_csv(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                for r in rows:
                    writer.writerow({k: _csv_cell(r.get(k)) for k in columns})

        content = {"settings": settings, "counts": counts, "cases": rows}
        atomic_write(self.out / "summary.csv", write_csv)
        text = json.dumps(content, indent=2, default=str)
        atomic_write(self.out / "summary.json", lambda tmp: tmp.write_text(text))
        return content
