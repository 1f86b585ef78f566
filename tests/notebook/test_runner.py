"""BackgroundRun: throttled updates, a final push, cancellation and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from maskscope.explanation import Explanation
from maskscope.notebook import BackgroundRun


def snapshots(n: int, delay: float, state: dict, fail_at: int | None = None):
    """A fake engine: n snapshots, one every ``delay`` s; records whether it was closed."""
    try:
        for i in range(1, n + 1):
            time.sleep(delay)
            if i == fail_at:
                raise RuntimeError("model exploded")
            yield Explanation("X", np.full((2, 2), float(i)), n_done=i, n_total=n, done=i == n)
    finally:
        state["closed_at"] = state.get("closed_at", i)


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[float, Explanation]] = []
        self.finished: list[BackgroundRun] = []

    def update(self, snap: Explanation) -> None:
        self.updates.append((time.monotonic(), snap))

    def finish(self, run: BackgroundRun) -> None:
        self.finished.append(run)


def test_updates_are_throttled_and_the_last_snapshot_is_pushed():
    state: dict = {}
    rec = Recorder()
    t0 = time.monotonic()
    run = BackgroundRun(snapshots(150, 0.008, state), rec.update, rec.finish).start()
    assert run.wait(20)
    duration = time.monotonic() - t0
    assert run.error is None and not run.cancelled
    assert run.n_received == 150
    # far fewer display updates than snapshots, never more than 5 per second
    assert 2 <= len(rec.updates) <= 5 * duration + 1
    gaps = np.diff([t for t, _ in rec.updates])
    assert gaps.min() >= 0.2 - 0.01
    assert run.n_updates == len(rec.updates)
    # the final call sees the last snapshot
    assert len(rec.finished) == 1 and rec.finished[0].latest.done
    assert rec.finished[0].latest.n_done == 150
    assert not run.running


def test_slow_snapshots_are_all_shown():
    rec = Recorder()
    run = BackgroundRun(snapshots(4, 0.25, {}), rec.update, rec.finish).start()
    assert run.wait(10)
    shown = [s.n_done for _, s in rec.updates]
    assert shown[:3] == [1, 2, 3]  # the 4th may come with the final call only
    assert rec.finished[0].latest.n_done == 4


def test_cancel_closes_the_generator_and_keeps_the_partial_result():
    state: dict = {}
    rec = Recorder()
    run = BackgroundRun(snapshots(10_000, 0.005, state), rec.update, rec.finish).start()
    while run.latest is None or run.latest.n_done < 5:
        time.sleep(0.01)
    run.cancel()
    assert run.wait(5)
    assert run.cancelled and run.error is None
    assert 5 <= run.latest.n_done < 10_000 and not run.latest.done
    assert state["closed_at"] <= run.latest.n_done + 1  # stopped at the next snapshot
    assert rec.finished == [run]


def test_an_error_in_the_generator_is_kept_and_ends_the_run():
    rec = Recorder()
    run = BackgroundRun(snapshots(50, 0.002, {}, fail_at=20), rec.update, rec.finish).start()
    assert run.wait(5)
    assert isinstance(run.error, RuntimeError) and "exploded" in str(run.error)
    assert run.latest.n_done == 19
    assert rec.finished == [run]


def test_an_error_in_the_display_stops_the_run():
    state: dict = {}

    def bad_update(snap):
        raise KeyError("no display")

    finished = []
    run = BackgroundRun(snapshots(10_000, 0.002, state), bad_update, finished.append).start()
    assert run.wait(5)
    assert isinstance(run.error, KeyError)
    assert run.cancelled and state["closed_at"] < 10_000
    assert finished == [run]


def test_max_rate_must_be_positive():
    with pytest.raises(ValueError, match="max_rate"):
        BackgroundRun(iter(()), print, print, max_rate=0)
