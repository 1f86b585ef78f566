"""Running cases one after another in this process: ``--num-parts K --part-id I``, no Dask.

Part ``I`` of ``K`` takes every K-th case (cases ``I, I + K, I + 2K, ...`` in dataset
order), so that K jobs of a SLURM array (``--part-id $SLURM_ARRAY_TASK_ID``) share a
dataset without a scheduler. Each writes into the same output folder; a case's result is
complete or absent, so the parts never see each other's half-written files.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import Any

from .dataset import Case
from .job import Job, fails_again, run_case
from .model_source import ModelSource
from .store import BatchStore

__all__ = ["check_part", "part_of", "run_serial"]


def check_part(num_parts: Any, part_id: Any) -> tuple[int, int]:
    """Validated ``(num_parts, part_id)``; ``ValueError`` in the flags' words."""
    for flag, value in (("--num-parts", num_parts), ("--part-id", part_id)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{flag} must be an integer, got {value!r}")
    if num_parts < 1:
        raise ValueError(f"--num-parts must be at least 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise ValueError(
            f"--part-id must be in [0, {num_parts - 1}] for --num-parts {num_parts}, got {part_id}"
        )
    return num_parts, part_id


def part_of(cases: Sequence[Case], num_parts: int, part_id: int) -> list[Case]:
    """Every ``num_parts``-th case, starting at ``part_id``."""
    num_parts, part_id = check_part(num_parts, part_id)
    return list(cases[part_id::num_parts])


def run_serial(
    todo: Sequence[Case],
    job: Job,
    store: BatchStore,
    source: ModelSource,
    *,
    retries: int = 1,
    worker: str = "local",
) -> Iterator[dict[str, Any]]:
    """Yield each case's record; a case failing ``retries + 1`` times is recorded as failed.

    An error that would come back (:func:`~maskscope.batch.job.fails_again`: bad input) is
    recorded at once, without the retries.
    """
    from ..wording import failure_line

    if not todo:
        return
    model, _ = source.load()
    for case in todo:
        error: Exception | None = None
        attempts = 0
        for attempts in range(1, retries + 2):
            try:
                yield run_case(case, job, model, store, worker=worker, attempt=attempts)
                error = None
                break
            except Exception as exc:  # retried, then recorded; KeyboardInterrupt stops
                error = exc
                if fails_again(exc):
                    break
        if error is not None:
            yield store.failure(
                case, failure_line(error), attempts, worker=worker, host=socket.gethostname()
            )
