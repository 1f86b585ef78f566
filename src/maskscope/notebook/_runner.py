"""Run a snapshot generator in a background thread and push throttled updates.

Two threads per run: the *producer* advances the engine's generator (so the model never
waits for the display), the *pusher* hands the latest snapshot to the display at most
``max_rate`` times per second, then once more when the run ends. Nothing here imports a
GUI package: the display is reached through two callbacks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import CancelToken, Explanation
from ..gui.status import check_rate

__all__ = ["BackgroundRun"]


class BackgroundRun:
    """One run of an explanation generator in the background.

    Parameters
    ----------
    snapshots
        The engine's generator of :class:`~maskscope.explanation.Explanation` snapshots
        (``iter_explain`` / :meth:`maskscope.gui.Session.start`). It is advanced in its own
        thread and closed there when the run is cancelled.
    on_update
        Called from the pusher thread with the latest snapshot, at most ``max_rate`` times
        per second while the run goes on.
    on_finish
        Called once from the pusher thread after the generator ended, was cancelled or
        raised, with this object (see :attr:`latest`, :attr:`error`, :attr:`cancelled`).
    max_rate
        Maximum number of ``on_update`` calls per second (the final ``on_finish`` comes on
        top).
    clock
        Monotonic clock in seconds (for tests).
    token
        The :class:`~maskscope.CancelToken` the generator was made with
        (``iter_explain(..., cancel=token)``): :meth:`cancel` sets it, so the engine stops
        after the chunk in progress even when no snapshot is due.
    after
        A previous run whose thread must end before this one starts calling the model (a
        new run never waits on the caller's thread, and never runs the model at the same
        time as the run it replaces).
    before
        Called in the run's thread before the first snapshot (e.g. a check that runs the
        model once); an exception it raises ends the run as the generator's would.

    Attributes
    ----------
    latest
        The last snapshot received from the generator (None before the first).
    error
        The exception raised by the generator or by a callback, if any.
    cancelled
        Whether :meth:`cancel` stopped the run before the generator finished.
    n_received
        Number of snapshots received from the generator so far.
    n_updates
        Number of ``on_update`` calls so far.
    update_times
        Clock time of each ``on_update`` call.
    """

    def __init__(
        self,
        snapshots: Iterator[Explanation],
        on_update: Callable[[Explanation], None],
        on_finish: Callable[[BackgroundRun], None],
        *,
        max_rate: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        token: CancelToken | None = None,
        after: BackgroundRun | None = None,
        before: Callable[[], None] | None = None,
    ) -> None:
        max_rate = check_rate(max_rate)
        self._gen = snapshots
        self._on_update = on_update
        self._on_finish = on_finish
        self._interval = 1.0 / max_rate
        self._clock = clock
        self._cond = threading.Condition()
        self._fresh = False
        self._ended = False
        self._cancel = threading.Event()
        self._token = token
        self._after = after
        self._before = before
        self._done = threading.Event()
        self.latest: Explanation | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.n_received = 0
        self.n_updates = 0
        self.update_times: list[float] = []
        self._producer = threading.Thread(target=self._produce, name="maskscope-run", daemon=True)
        self._pusher = threading.Thread(target=self._push, name="maskscope-display", daemon=True)

    # ------------------------------------------------------------------ control
    def start(self) -> BackgroundRun:
        """Start both threads; returns self."""
        self._producer.start()
        self._pusher.start()
        return self

    def cancel(self) -> None:
        """Ask the run to stop after the chunk in progress (the partial map is kept).

        Returns at once, from any thread: the run ends in its own thread.
        """
        self._cancel.set()
        if self._token is not None:
            self._token.cancel()

    @property
    def running(self) -> bool:
        """True until the final update has been delivered."""
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ended and its final update was delivered.

        Returns
        -------
        bool
            False when ``timeout`` seconds passed first.
        """
        return self._done.wait(timeout)

    # ------------------------------------------------------------------ threads
    def _produce(self) -> None:
        try:
            if self._after is not None:
                self._after._producer.join()  # the replaced run ends after its chunk
                self._after = None
            if self._cancel.is_set():
                return  # cancelled before it started: the model is never called
            if self._before is not None:
                self._before()
            for snap in self._gen:
                with self._cond:
                    self.latest = snap
                    self.n_received += 1
                    self._fresh = True
                    self._cond.notify_all()
                # with a token the engine ends the run itself, with a cancelled snapshot
                if getattr(snap, "cancelled", False) or (
                    self._cancel.is_set() and self._token is None
                ):
                    self.cancelled = not snap.done
                    break
        except Exception as exc:
            self.error = exc
        finally:
            try:
                self._gen.close()  # runs the engine's clean-up; cancels when we broke out
            except Exception as exc:  # pragma: no cover - a generator failing to close
                self.error = self.error or exc
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _push(self) -> None:
        last = -math.inf
        try:
            while True:
                with self._cond:
                    while not (self._fresh or self._ended):
                        self._cond.wait()
                    if self._ended:
                        break
                    delay = last + self._interval - self._clock()
                    if delay > 0:
                        self._cond.wait_for(lambda: self._ended, timeout=delay)
                        if self._ended:
                            break
                    snap, self._fresh = self.latest, False
                last = self._clock()
                self.n_updates += 1
                self.update_times.append(last)
                try:
                    self._on_update(snap)
                except Exception as exc:
                    self._fail(exc)
        finally:
            try:
                self._on_finish(self)
            except Exception as exc:
                self.error = self.error or exc
            finally:
                self._done.set()

    def _fail(self, exc: BaseException) -> None:
        """A display callback failed: keep the exception and stop the run."""
        if self.error is None:
            self.error = exc
        self._cancel.set()

    def __repr__(self) -> str:
        state = "running" if self.running else ("cancelled" if self.cancelled else "ended")
        extra: Any = f", error={self.error!r}" if self.error is not None else ""
        return f"BackgroundRun({state}, {self.n_updates} updates{extra})"
