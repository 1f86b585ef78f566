"""``explain_dataset``: explain every case of a dataset, on Dask or in parts, resumably."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dataset import Case, load_cases
from .job import Job
from .model_source import ModelSource
from .serial import check_part, part_of, run_serial
from .store import BatchStore

#: Seconds between the summaries written while a batch runs (a killed run keeps one).
SUMMARY_EVERY_S = 10.0

__all__ = ["BatchResult", "explain_dataset"]


@dataclass
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    out
        The output folder.
    cases
        Every case of the dataset (or of this part).
    computed
        Names of the cases finished by this run.
    skipped
        Names of the cases already finished before it (a restart).
    failed
        Name → message of the cases that failed (after their retries).
    rows
        The records of the cases this run finished or failed, in the order they ended.
    summary
        The content of ``summary.json``.
    """

    out: Path
    cases: list[Case]
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _method_name(method: str) -> str:
    from .. import METHODS

    folded = {k.lower().replace("-", ""): k for k in METHODS}
    key = str(method).lower().replace("-", "").replace("_", "")
    if key not in folded:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return folded[key]


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    return retries


def _progress(total: int, done: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="cases", unit="case", leave=True)


def explain_dataset(
    inputs: str | Path | Iterable[str | Path],
    *,
    model: Any,
    out: str | Path,
    method: str = "SegRISE",
    scheduler: Any = None,
    n_workers: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    num_parts: int | None = None,
    part_id: int | None = None,
    retries: int = 1,
    overwrite: bool = False,
    trusted: bool = False,
    progress: bool = True,
    on_case: Callable[[dict[str, Any]], None] | None = None,
    job: Job | None = None,
    **settings: Any,
) -> BatchResult:
    """Explain every case of a dataset and write a result per case plus a summary.

    Parameters
    ----------
    inputs
        Folders, globs, CSV files or image files (see :func:`maskscope.batch.load_cases`).
    model
        A model spec for :func:`maskscope.models.load_model` (a bundled name, a file,
        ``"package.module:factory"``), loaded once per worker; or a picklable model object,
        sent once to each worker.
    out
        The output folder (see :mod:`maskscope.batch.store` for its layout).
    method
        ``"SegRISE"``, ``"RISE"``, ``"PixelRISE"`` or ``"HDM"`` (any case, ``"pixel-rise"``).
    scheduler
        None: a new :class:`distributed.LocalCluster` (one worker per GPU, or a few CPU
        workers); an address ``"tcp://host:port"`` or a :class:`distributed.Client`: an
        existing cluster.
    n_workers
        Workers of the new local cluster (default: one per GPU, else up to 4 sharing the
        cores).
    device
        ``"auto"`` (a GPU when the worker has one), ``"cpu"``, ``"cuda"``.
    threads
        Torch threads per worker (default: the cores shared among the local workers).
    num_parts, part_id
        Instead of Dask: compute every ``num_parts``-th case starting at ``part_id``, in
        this process (for SLURM arrays). ``num_parts=1, part_id=0`` runs all cases here.
    retries
        Extra attempts of a failing case before it is recorded as failed.
    overwrite
        Compute every case again, even in a folder that holds other settings' results.
    trusted
        Allow a model file (TorchScript or ``.pt2``): its code runs when it is loaded and
        called (see :func:`maskscope.models.load_model`).
    progress
        Show a bar over cases (and print the Dask dashboard's address).
    on_case
        Called with each case's record as it ends (finished or failed).
    job
        A prepared :class:`~maskscope.batch.Job` instead of ``settings``.
    **settings
        Fields of :class:`~maskscope.batch.Job` (``target``, ``slices``, ``normalize``,
        ``axes``, ``outputs``, ``spatial_dims``, ``model_options``, ``evaluate``,
        ``eval_steps``, ``map_format``); any other name is a method parameter or run
        option (``n_masks=500``, ``seed=1``, ``batch_size=8``).

    Returns
    -------
    BatchResult
        The cases computed, skipped (finished before) and failed, and the summary.
    """
    job = job or _job(method, settings)
    job.check()
    retries = _check_retries(retries)
    cases = listed = load_cases(inputs)  # listed: every case of the dataset, for the summary
    if scheduler is not None and num_parts is not None:
        raise ValueError("--scheduler and --num-parts exclude each other: choose one")
    if (num_parts is None) != (part_id is None):
        raise ValueError("--num-parts and --part-id go together: give both or neither")
    if num_parts is not None:
        check_part(num_parts, part_id)
        cases = part_of(cases, num_parts, part_id)
    store = BatchStore(Path(out).absolute())
    label = model if isinstance(model, str) else f"<{type(model).__name__}>"
    batch_settings = {"model": label, **job.settings()}
    store.check_settings(batch_settings, overwrite=overwrite)
    done = [] if overwrite else [c.name for c in cases if store.is_finished(c.name, c.image)]
    todo = [c for c in cases if c.name not in set(done)]
    result = BatchResult(out=Path(out), cases=cases, skipped=done)
    source = ModelSource(model, trusted=trusted, device=device, threads=threads)
    bar = _progress(len(cases), len(done), progress)
    rows = _rows(
        todo, job, store, source, scheduler, n_workers, num_parts, part_id, retries, not progress
    )
    written = None  # when the summary was last written
    try:
        with contextlib.closing(rows):  # an interruption stops the workers' cases at once
            for row in rows:
                _note(result, row, bar)
                # a killed run keeps a summary: after the first case, then every so often
                if written is None or time.monotonic() - written > SUMMARY_EVERY_S:
                    store.write_summary(listed, batch_settings)
                    written = time.monotonic()
                if on_case is not None:
                    on_case(row)
    finally:
        if bar is not None:
            bar.close()
        result.summary = store.write_summary(listed, batch_settings)
    return result


def _job(method: str, settings: dict[str, Any]) -> Job:
    import dataclasses

    fields = {f.name for f in dataclasses.fields(Job)} - {"method", "values"}
    own = {k: v for k, v in settings.items() if k in fields}
    values = {k: v for k, v in settings.items() if k not in fields}
    return Job(method=_method_name(method), values=values, **own)


def _rows(todo, job, store, source, scheduler, n_workers, num_parts, part_id, retries, quiet):
    """The records of the cases as they end, from the engine chosen (a generator)."""
    if num_parts is not None:
        worker = f"part {part_id}/{num_parts}"
        yield from run_serial(todo, job, store, source, retries=retries, worker=worker)
        return
    if not todo:
        return
    from .dask_engine import run_on_dask

    def started(link: str, n: int) -> None:
        if not quiet:
            print(f"maskscope: {n} Dask worker(s); dashboard: {link}", file=sys.stderr)

    yield from run_on_dask(
        todo,
        job,
        store,
        source,
        scheduler=scheduler,
        n_workers=n_workers,
        retries=retries,
        on_start=started,
    )


def _note(result: BatchResult, row: dict[str, Any], bar: Any) -> None:
    result.rows.append(row)
    if row.get("status") == "ok":
        result.computed.append(row["name"])
    else:
        result.failed[row["name"]] = str(row.get("error"))
    if bar is not None:
        bar.update(1)
