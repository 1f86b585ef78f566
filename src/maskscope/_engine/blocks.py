"""Fixed blocks of masks, so that sums split over machines merge to the same bits.

Floating-point addition is not associative: two halves of a sum, added, differ in the
last bits from one sum in order. So the running sums are kept by fixed blocks of
:data:`SUM_BLOCK` masks, whatever the batch size: the loop never lets a chunk straddle a
multiple of :data:`SUM_BLOCK`, an accumulator closes a block when a chunk reaches its end,
and its total is the ordered sum of the block sums (the open block is added last). Masks
``a .. b`` with ``a`` and ``b`` multiples of :data:`SUM_BLOCK` therefore give the same block
sums in any process of the same device type, and adding the blocks of consecutive ranges
in order gives the very total of one process that ran them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SUM_BLOCK", "GridBlock", "SumBlock", "block_end"]

#: Masks per block of the running sums (a multiple of the masks' random stream blocks).
SUM_BLOCK = 256


def block_end(index: int) -> int:
    """The first multiple of :data:`SUM_BLOCK` after mask ``index``."""
    return (index // SUM_BLOCK + 1) * SUM_BLOCK


@dataclass
class SumBlock:
    """The RISE sums of one block of masks (see :class:`~.weighted_sum.WeightedSum`).

    Attributes
    ----------
    index
        The block's number (masks ``index * SUM_BLOCK`` onwards).
    s1, s2
        First- and second-moment sums, flat.
    n, n_even
        Masks in the block, and those with an even index.
    w_sum, w_even
        Sum of the weights, and of the even-indexed masks' weights.
    complete
        Whether the block holds all its masks (False: the last, open block of a range).
    moments
        The covariate's scalar sums (``Σ φ``, ``Σ φ·even``, ``Σ φ²``, ``Σ φ²·even``,
        ``Σ w·φ``, ``Σ w·φ·even``); empty without a covariate.
    """

    index: int
    s1: torch.Tensor
    s2: torch.Tensor
    n: int
    n_even: int
    w_sum: float
    w_even: float
    complete: bool = True
    moments: tuple[float, ...] = ()


@dataclass
class GridBlock:
    """HDM's distances at the centres visited by a range of the sweep.

    Attributes
    ----------
    indices
        The centres (flat indices into the grid).
    values
        Their distances.
    """

    indices: torch.Tensor
    values: torch.Tensor
