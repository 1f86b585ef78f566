"""A thread-safe cancel token: stop a run from any thread, after the chunk in progress."""

from __future__ import annotations

import threading

__all__ = ["CancelToken"]


class CancelToken:
    """Ask a running explanation to stop, from any thread.

    Pass it to ``iter_explain(..., cancel=token)`` (or ``explain``); the loop checks it
    before each chunk and before each image or slice, so a cancel takes effect once the
    chunk in progress is done. The run then ends normally: its last snapshot has
    ``cancelled=True`` and ``done=False`` and holds the map of the finished chunks.

    Closing the generator (``gen.close()``) cancels too, but only from the thread that
    advances it: from another thread it raises ``ValueError: generator already executing``
    while a chunk runs. The token is the way to stop a run from elsewhere (a GUI, a timer,
    a signal handler).

    Examples
    --------
    >>> token = CancelToken()
    >>> token.cancelled
    False
    >>> token.cancel()
    >>> token.cancelled
    True
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop after the chunk in progress (safe from any thread)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds passed; returns :attr:`cancelled`."""
        return self._event.wait(timeout)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"
