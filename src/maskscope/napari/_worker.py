"""Run the engine's snapshot generator in a napari thread worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker

from .. import Explanation

__all__ = ["RunFailure", "start_worker"]


@dataclass(frozen=True)
class RunFailure:
    """What a worker returns when the run raised (the exception never leaves the thread).

    Attributes
    ----------
    error
        The exception.
    """

    error: BaseException


def _drive(snapshots: Iterator[Explanation]) -> Iterator[Explanation]:
    """Yield the snapshots; return a :class:`RunFailure` instead of raising."""
    try:
        yield from snapshots
    except Exception as exc:  # reported by the widget as a notification
        return RunFailure(exc)
    return None


def start_worker(
    snapshots: Iterator[Explanation],
    *,
    on_snapshot: Callable[[Explanation], Any],
    on_returned: Callable[[RunFailure | None], Any],
    on_finished: Callable[[], Any],
) -> GeneratorWorker:
    """Start a thread that advances ``snapshots`` and reports on the GUI thread.

    Parameters
    ----------
    snapshots
        The engine's generator (from :meth:`maskscope.gui.Session.start`).
    on_snapshot
        Receives every snapshot (``yielded``).
    on_returned
        Receives None at the end of a run or after a cancel, or a :class:`RunFailure`.
    on_finished
        Called last, whatever happened; the generator is closed just before.

    Returns
    -------
    GeneratorWorker
        The running worker; ``worker.quit()`` cancels at the next snapshot.
    """
    worker = create_worker(_drive, snapshots, _start_thread=False)
    worker.yielded.connect(on_snapshot)
    worker.returned.connect(on_returned)

    # The thread is done with the generator by then: close it to release the engine's state.
    worker.finished.connect(snapshots.close)
    worker.finished.connect(on_finished)
    worker.start()
    return worker
