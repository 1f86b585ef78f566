"""Out-of-memory errors: recognised on every device, and the batch halved after one."""

from __future__ import annotations

import warnings

import torch

__all__ = ["back_off", "is_out_of_memory"]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is a device running out of memory (CUDA, MPS, XPU, CPU)."""
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def back_off(size: int, exc: BaseException) -> int:
    """Halve the batch after an out-of-memory error; the same masks are recomputed."""
    new = max(1, size // 2)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    warnings.warn(
        f"out of memory with a batch of {size} ({str(exc).splitlines()[0][:120]}); "
        f"continuing with batches of {new}: the same masks, so the map changes by float "
        "rounding at most",
        RuntimeWarning,
        stacklevel=4,
    )
    return new
