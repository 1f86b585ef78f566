"""Output arrays that every call rewrites, instead of fresh ones (page faults) per chunk."""

from __future__ import annotations

import torch

__all__ = ["ReusedArray"]


class ReusedArray:
    """An output array rewritten by every call, reallocated only when the shape changes.

    With ``slots`` = 2 the calls take two arrays in turn, so that one call's result stays
    intact while the next call writes: for a loop that makes the next chunk while the model
    still reads this one (:mod:`~maskscope._engine.overlap`).
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = int(slots)
        self._arrays: list[torch.Tensor | None] = []
        self._turn = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
        """The next slot's array, of ``shape`` and ``dtype`` (its content is stale)."""
        if len(self._arrays) != self.slots:
            self._arrays = (self._arrays + [None] * self.slots)[: self.slots]
        i = self._turn % self.slots
        self._turn += 1
        out = self._arrays[i]
        if out is None or tuple(out.shape) != tuple(shape) or out.dtype != dtype:
            out = self._arrays[i] = torch.empty(shape, dtype=dtype, device=device)
        return out
