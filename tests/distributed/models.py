"""Model factories for the batch tests, loaded by spec in worker processes.

``tests.distributed.models:counted2d`` (and ``counted3d``, ``slow2d``) append one line per
load to the file named by ``MASKSCOPE_TEST_LOAD_LOG`` (set before the workers start), so a
test can count how often each worker built its model.
"""

from __future__ import annotations

import os
import threading
import time

import torch

from tests.conftest import ThresholdNet

#: Environment variable naming the load log.
LOG_VAR = "MASKSCOPE_TEST_LOAD_LOG"


def _log(kind: str) -> None:
    path = os.environ.get(LOG_VAR)
    if path:
        with open(path, "a") as fh:
            fh.write(f"{os.getpid()} {kind}\n")


class Slow(ThresholdNet):
    """ThresholdNet that takes 50 ms per call (cases last long enough to be in flight)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.05)
        return super().forward(x)


#: Most forward calls seen at once, per model made by :func:`concurrent2d`.
CONCURRENCY: dict[int, int] = {}


class Concurrent(ThresholdNet):
    """ThresholdNet that records how many of its forward calls overlap (each takes 50 ms)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.active = 0
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            self.active += 1
            CONCURRENCY[id(self)] = max(CONCURRENCY.get(id(self), 0), self.active)
        try:
            time.sleep(0.05)
            return super().forward(x)
        finally:
            with self.lock:
                self.active -= 1


def concurrent2d() -> ThresholdNet:
    """A 2D ThresholdNet recording its overlapping calls in :data:`CONCURRENCY`."""
    return Concurrent()


def counted2d() -> ThresholdNet:
    """A 2D ThresholdNet; logs its load."""
    _log("2d")
    return ThresholdNet(2)


def counted3d() -> ThresholdNet:
    """A 3D ThresholdNet; logs its load."""
    _log("3d")
    return ThresholdNet(3)


def slow2d() -> ThresholdNet:
    """A 2D ThresholdNet taking 50 ms per call; logs its load."""
    _log("slow2d")
    return Slow(2)


def loads(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    """The ``(pid, kind)`` lines of a load log (empty when it does not exist)."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        return []
    return [(int(p), k) for p, k in (line.split() for line in text.splitlines())]
