"""One chunk of masks and what the fast paths know about it, travelling together.

A mask source (:class:`~maskscope._engine.masks.RiseMasks`,
:class:`~maskscope._engine.occlusion.CentreGrid`) hands the loop a :class:`MaskBatch`;
the perturbation and the accumulator receive that same object. Whatever a fast path
needs (the factors of separable RISE masks, the voxels of HDM's disks) is a field of the
batch, never looked up from the tensor's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MaskBatch"]


@dataclass(frozen=True)
class MaskBatch:
    """Masks ``start .. start + len - 1`` of a run.

    Attributes
    ----------
    start
        Index of the first mask in the run (masks are numbered from 0).
    masks
        ``(b, 1, *spatial)`` values in [0, 1]: 1 keeps the input, 0 replaces it.
    factors
        For RISE masks, ``(L, Y)`` with ``L (b, size0, g0)`` and ``Y (b, g0, rest)`` such
        that ``masks[i]`` is ``L[i] @ Y[i]`` flattened (each row of ``L`` has at most two
        adjacent non-zero weights); None otherwise.
    holes
        For occlusion masks of zeros and ones, ``(rows, voxels)``: the flat indices of
        every zero (batch row and voxel); None otherwise.
    """

    start: int
    masks: torch.Tensor
    factors: tuple[torch.Tensor, torch.Tensor] | None = None
    holes: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def stop(self) -> int:
        """One past the index of the last mask."""
        return self.start + len(self)

    def without_fast_paths(self) -> MaskBatch:
        """The same masks with no factors or holes (for code that must read the masks)."""
        return MaskBatch(self.start, self.masks)
