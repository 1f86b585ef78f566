"""PixelRISE max's final pass from the masks' two factors, for many masks.

A RISE mask is ``mᵢ = L_{s(i)} @ Yᵢ`` (see :class:`~maskscope._engine.masks.RiseMasks`):
``L_s (size0, g0)`` interpolates the first axis at shift ``s`` (one of ``cell0``) and
``Yᵢ (g0, rest)`` holds the other axes. A half's product for pixel ``j`` is then

    ``Σᵢ aᵢⱼ mᵢ = Σ_s L_s @ Z_s[j]``  with  ``Z_s[j] = Σ_{i: s(i) = s} aᵢⱼ Yᵢ``

(``aᵢⱼ`` the centred scores of :class:`~maskscope._engine.pixel_slabs.CentredHalves`). The
first stage costs ``g0 / size0`` of the per-mask products and the second ``2 · cell0 · g0 / n``
of them (two halves): with the default 2000 masks in 3D, about a sixth. The voxels are
processed in slabs along axis 1 (the masks' ``Y`` of a slab rendered once), blocks of
columns (the first stages of a block at once, large enough for efficient products) and
tiles of a block's columns: each tile's ``(size0 · columns, P)`` sums are reduced to their
three maxima while in the caches, as in the per-mask pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .pixel_slabs import CentredHalves
from .workers import Workers

__all__ = ["FactoredPass", "factored_flops", "pass_sizes"]

_F32 = 4

#: Elements of one block's first stages ``(groups · g0, columns · P)``, per half at most.
TILE_ELEMENTS = 2**22

#: Rows ``g0 · columns`` of a first-stage product (large enough for an efficient product).
FIRST_ROWS = 192

#: Elements of one tile's ``(size0 · columns, P)`` sums, small enough for the caches.
SUM_ELEMENTS = 2**18

#: The same three bounds on a GPU, where every block and tile costs a few kernel launches
#: and there are no caches of that size to stay in: with the CPU's, the bundled 3D U-Net's
#: final pass (64×96×96, 4096 pixels) is some 80 000 launches, about a second.
GPU_TILE_ELEMENTS = 2**26
GPU_FIRST_ROWS = 2**12
GPU_SUM_ELEMENTS = 2**24


def pass_sizes(device: torch.device) -> tuple[int, int, int]:
    """(block elements, first-stage rows, sum elements) of the factored pass on ``device``."""
    if device.type == "cpu":
        return TILE_ELEMENTS, FIRST_ROWS, SUM_ELEMENTS
    return GPU_TILE_ELEMENTS, GPU_FIRST_ROWS, GPU_SUM_ELEMENTS


def factored_flops(n: int, size0: int, g0: int, cells0: int) -> float:
    """Multiply-adds per voxel and pixel of the factored pass, relative to the per-mask one."""
    return (n * g0 + 2 * cells0 * g0 * size0) / max(n * size0, 1)


class FactoredPass:
    """The factored final pass over a volume, slab by slab along axis 1.

    Parameters
    ----------
    halves
        The centred product matrices (scores of the pixels done here).
    shift0
        ``(n,)`` each mask's shift along axis 0.
    first_factors
        ``(cell0, size0, g0)``: ``L`` for each shift.
    side
        ``(start, stop, side=(lo, hi)) -> (shift0, Y (b, g0, rest))``: the masks' second
        factor on indices ``lo .. hi-1`` of axis 1.
    spatial
        The masks' spatial shape.
    chunk
        Masks rendered at a time.
    """

    def __init__(
        self,
        halves: CentredHalves,
        shift0: torch.Tensor,
        first_factors: torch.Tensor,
        side: Callable[..., tuple[torch.Tensor, torch.Tensor]],
        spatial: tuple[int, ...],
        chunk: int,
        tile_elements: int | None = None,
    ) -> None:
        self.halves = halves
        self.g0 = int(first_factors.shape[2])
        default_tile, self.first_rows, self.sum_elements = pass_sizes(first_factors.device)
        self.tile_elements = max(1, int(tile_elements or default_tile))
        self.spatial = spatial
        self.side = side
        self.chunk = max(1, int(chunk))
        #: Blocks :meth:`slab` computes at once at most (each holds :meth:`tile_bytes`).
        self.at_once = 1
        n = halves.n
        shift0 = shift0.long()
        # rows of the slab's Y buffer: the even masks sorted by shift, then the odd
        cells0, size0 = first_factors.shape[0], first_factors.shape[1]
        key = torch.arange(n, device=shift0.device) % 2 * cells0 + shift0  # half, then shift
        order = torch.argsort(key, stable=True)
        self.pos = torch.empty_like(order)
        self.pos[order] = torch.arange(n, device=order.device)
        keys, counts = torch.unique_consecutive(key[order], return_counts=True)
        a = (halves.a_even.T, halves.a_odd.T)  # (n_e, P), (n_o, P): rows in mask order
        #: per half, the groups of masks of one shift: (first row, end row, their scores)
        self.groups: tuple[list, list] = ([], [])
        lo = 0
        for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
            half = k // cells0  # mask i's row in its half's scores is i // 2
            self.groups[half].append((lo, lo + c, a[half][order[lo : lo + c] // 2]))
            lo += c
        empty = first_factors.new_zeros(size0, 0)
        shifts = [[k % cells0 for k in keys.tolist() if k // cells0 == h] for h in (0, 1)]
        #: per half, ``(size0, groups · g0)``: the groups' first factors side by side
        self.lcat = [torch.cat([empty, *(first_factors[s] for s in sh)], dim=1) for sh in shifts]

    def bytes_per_side_index(self) -> int:
        """Memory per index of axis 1 in a slab: the masks' ``Y`` there, one chunk rendering."""
        return (self.halves.n + self.chunk) * self.g0 * math.prod(self.spatial[2:]) * _F32

    def tile_bytes(self) -> int:
        """Memory of one block's first stages and one tile's sums."""
        return (2 * self.tile_elements + 3 * self._sum_elements()) * _F32

    def _sum_elements(self) -> int:
        return min(self.sum_elements, self.tile_elements)

    def _widths(self, size0: int) -> tuple[int, int]:
        """Columns per block of first stages and per tile of sums (see module notes)."""
        p, n_groups = self.halves.n_pixels, max(len(self.groups[0]) + len(self.groups[1]), 1)
        per_block = self.tile_elements // (n_groups * self.g0 * p)
        block = max(1, min(self.first_rows // self.g0, per_block))
        return block, max(1, min(block, self._sum_elements() // max(size0 * p, 1)))

    def slab(self, lo: int, hi: int, weights: torch.Tensor, workers=None) -> torch.Tensor:
        """The three maxima ``(3, size0, cols)`` of the voxels with axis-1 index in [lo, hi).

        ``weights (3, size0, cols)``: ones, the even and the odd masks' coverage there.
        ``workers``: a :class:`~.workers.Workers` sharing the blocks of columns, at most
        :attr:`at_once` at a time (the same maxima for any number).
        """
        y = self._gather(lo, hi)  # (n, g0, cols)
        size0, cols = weights.shape[1], weights.shape[2]
        out = torch.empty(3, size0, cols, dtype=torch.float32, device=y.device)
        block, tile = self._widths(size0)

        def one_block(b0: int) -> None:
            b1 = min(b0 + block, cols)
            z = self._first_stages(y[:, :, b0:b1].contiguous())
            for c0 in range(b0, b1, tile):
                c1 = min(c0 + tile, b1)
                maxima = self._maxima(z, c0 - b0, c1 - b0, weights[:, :, c0:c1])
                out[:, :, c0:c1] = maxima.view(3, size0, c1 - c0)

        (workers or Workers(1)).limited(self.at_once).map(one_block, range(0, cols, block))
        for row, scale in zip(out, self.halves.scale, strict=True):
            row.mul_(scale)
        return out

    def _gather(self, lo: int, hi: int) -> torch.Tensor:
        n = self.halves.n
        y = None
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            _, part = self.side(start, stop, side=(lo, hi))
            if y is None:
                y = part.new_empty(n, *part.shape[1:])
            y[self.pos[start:stop]] = part.float()
        return y

    def _first_stages(self, y: torch.Tensor) -> list[torch.Tensor | None]:
        """Per half, ``Z (groups · g0, w · P)``: ``Σ aᵢⱼ Yᵢ`` per group, of ``y (n, g0, w)``."""
        n, g0, w = y.shape
        p = self.halves.n_pixels
        flat = y.view(n, g0 * w)
        out = []
        for mine in self.groups:
            if not mine:  # no mask in this half (n = 1)
                out.append(None)
                continue
            z = y.new_empty(len(mine), g0 * w, p)
            for k, (g_lo, g_hi, a) in enumerate(mine):
                torch.mm(flat[g_lo:g_hi].T, a, out=z[k])
            out.append(z.view(len(mine) * g0, w * p))
        return out

    def _maxima(self, z, c0: int, c1: int, weights: torch.Tensor) -> torch.Tensor:
        """The three maxima ``(3, size0 · (c1 - c0))`` of columns ``c0 .. c1-1`` of a block."""
        h = self.halves
        p, w = h.n_pixels, c1 - c0
        sums = []
        for half, bias in ((0, h.b_even), (1, h.b_odd)):
            lcat = self.lcat[half]
            size0 = lcat.shape[0]
            row = bias[:, 0].repeat(w)  # (w·P,): the bias of every column's pixels
            if z[half] is None:
                sums.append(row.expand(size0, w * p).reshape(size0 * w, p))
                continue
            sums.append(torch.addmm(row, lcat, z[half][:, c0 * p : c1 * p]).view(size0 * w, p))
        even, odd = sums
        out = even.new_empty(3, even.shape[0])
        torch.amax(even, dim=1, out=out[1])
        torch.amax(odd, dim=1, out=out[2])
        even.add_(odd).addmm_(weights.reshape(3, -1).T, h.u.T)
        torch.amax(even, dim=1, out=out[0])
        return out
