"""Keep the memory a model frees between two calls on the CPU (glibc's malloc).

A model frees its activations at the end of every call and asks for the same sizes again
at the next. With its default, adaptive settings, glibc's ``malloc`` often hands such
memory back to the system in between: it trims the top of the heap once more than
``M_TRIM_THRESHOLD`` bytes are free there, and serves blocks above ``M_MMAP_THRESHOLD``
with fresh mappings. The next call then gets fresh pages, each zeroed by the kernel and
mapped on first touch (one page fault per 4 KiB). On a 2-core virtual machine the bundled
2D U-Net took 1 800 to 14 000 page faults per call this way and ran 5 to 50 % slower than
with the memory kept (``docs/speed.md``), the more so when a run's own arrays come and go
between the calls.

While a run holds :data:`HOST_MEMORY`, freed memory stays with the process: blocks up to
32 MiB (glibc's largest threshold on 64-bit systems) come from the heap, and the heap is
not trimmed. When the last run lets go, the trim threshold becomes 64 MiB (what glibc's
own adaptation sets after a 32 MiB block) and :func:`malloc_trim` gives the free memory
back at once. Both settings are process-wide. ``mallopt`` cannot be read back, so the
adaptive mode glibc starts in is not restored: the thresholds stay fixed afterwards, at
values that glibc's adaptation reaches on its own once a 32 MiB block has been freed.

Only glibc has these settings (``mallopt``, ``malloc_trim``, ``gnu_get_libc_version``);
elsewhere (macOS, Windows, musl) holding does nothing. A run chooses with
:attr:`~maskscope._engine.loop.RunOptions.host_memory`.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["HOST_MEMORY", "HOST_MEMORY_MODES", "HostMemory", "glibc"]

#: ``RunOptions.host_memory`` values: keep freed memory during a run, or leave malloc as is.
HOST_MEMORY_MODES = ("keep", "system")

#: mallopt parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on a 64-bit system (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD = 32 * 2**20
#: Free bytes at the top of the heap kept during a run (mallopt takes an int).
TRIM_WHILE_HELD = 2**31 - 1
#: The trim threshold after the last run: twice the mmap threshold, as glibc sets it.
TRIM_AFTER = 2 * MMAP_THRESHOLD


def glibc() -> Any | None:
    """The process's C library when it is glibc (it has ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    names = ("mallopt", "malloc_trim", "gnu_get_libc_version")
    return libc if all(hasattr(libc, n) for n in names) else None


class HostMemory:
    """Counts the runs that ask to keep freed memory, and sets glibc's malloc for them.

    Parameters
    ----------
    libc
        Something with glibc's ``mallopt(param, value)`` and ``malloc_trim(pad)``; None
        makes :meth:`hold` a no-op that returns False.
    """

    def __init__(self, libc: Any | None) -> None:
        self._libc = libc
        self._lock = threading.Lock()
        self.holders = 0

    @property
    def available(self) -> bool:
        """Whether holding changes anything here (glibc's malloc)."""
        return self._libc is not None

    def hold(self) -> bool:
        """A run starts that wants freed memory kept; True when it is (call :meth:`release`)."""
        if self._libc is None:
            return False
        with self._lock:
            if self.holders == 0:
                self._libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                self._libc.mallopt(M_TRIM_THRESHOLD, TRIM_WHILE_HELD)
            self.holders += 1
        return True

    def release(self) -> None:
        """A run that held ends; after the last one the free memory goes back to the system."""
        if self._libc is None:
            return
        with self._lock:
            if self.holders == 0:
                raise RuntimeError("HostMemory.release() without a matching hold()")
            self.holders -= 1
            if self.holders == 0:
                self._libc.mallopt(M_TRIM_THRESHOLD, TRIM_AFTER)
                self._libc.malloc_trim(0)

    @contextlib.contextmanager
    def kept_for(self, device: torch.device | str, mode: str = "keep") -> Iterator[bool]:
        """Hold while the block runs when ``device`` is a CPU and ``mode`` is ``"keep"``.

        Yields whether it holds. A generator that runs inside the block releases when it
        ends or is closed.
        """
        if mode not in HOST_MEMORY_MODES:
            raise ValueError(f"host_memory must be one of {HOST_MEMORY_MODES}, got {mode!r}")
        held = torch.device(device).type == "cpu" and mode == "keep" and self.hold()
        try:
            yield held
        finally:
            if held:
                self.release()


#: The process's one counter (glibc's settings are process-wide).
HOST_MEMORY = HostMemory(glibc())
