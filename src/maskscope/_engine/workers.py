"""Work after the last model call, on the cores torch's threads leave free.

PixelRISE max's final pass (:meth:`~maskscope._engine.pixel_max.PixelMax.finish`) is a set
of independent products, each written to its own part of the map or merged by a maximum,
which is exact. :class:`Workers` runs them in threads, each running torch's ops at the
user's thread count: ``usable cores // torch threads`` of them (:func:`final_workers`).
The parts are those of a run in one thread, computed alike, so the map is the same bit for
bit. Raising torch's own thread count instead would be faster on an idle machine but slow
on a busy one: its threads wait for each other at the end of every op, so one that loses
its core holds up the rest (docs/speed.md gives both). Here a thread that is held up keeps
only the part it is on; the others take the parts left.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from . import pipeline

__all__ = ["Workers", "final_workers"]

T = TypeVar("T")
R = TypeVar("R")

#: The threads' names: ``maskscope-final_0``, ...
THREAD_NAME = "maskscope-final"


def final_workers(mode: str, device: torch.device) -> int:
    """Threads for the work after the last model call.

    ``mode`` is ``RunOptions.pipeline``: ``"off"`` keeps it in the calling thread, as on a
    GPU (whose kernels queue on one stream anyway); otherwise as many threads as the usable
    cores (:func:`~.pipeline.usable_cores`) hold at torch's thread count, at least one.
    """
    if mode == "off" or device.type != "cpu":
        return 1
    return max(1, pipeline.usable_cores() // max(1, torch.get_num_threads()))


class Workers:
    """Up to ``n`` threads for independent parts; one runs them in the calling thread.

    A context manager: the threads end with the block, after the parts they hold.
    """

    def __init__(self, n: int) -> None:
        self.n = max(1, int(n))
        self._pool: ThreadPoolExecutor | None = None
        self._gate = threading.BoundedSemaphore(self.n)
        self.owner = True

    def __enter__(self) -> Workers:
        if self.n > 1:
            self._pool = ThreadPoolExecutor(self.n, thread_name_prefix=THREAD_NAME)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None and self.owner:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def limited(self, at_most: int) -> Workers:
        """These threads, ``at_most`` of them at once (at least one): for parts whose
        memory the budget holds only so many times."""
        view = Workers(min(self.n, max(1, int(at_most))))
        view._pool = self._pool if view.n > 1 else None
        view.owner = False
        return view

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]``, in these threads.

        The parts are taken in order by whichever thread is free; the first error is raised
        once the parts before it are done, and the parts not started are dropped.
        """
        items = list(items)
        if self._pool is None or len(items) <= 1:
            return [fn(x) for x in items]
        gate = self._gate

        def gated(x: T) -> R:
            with gate:
                return fn(x)

        futures = [self._pool.submit(gated, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
