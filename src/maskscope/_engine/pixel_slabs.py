"""PixelRISE max's final pass: the max over pixels taken straight from the products.

For the pixels whose scores were kept (see :class:`~maskscope._engine.pixel_max.PixelMax`),
every score is known when the final pass starts, so the centring of each pixel's map can
go into the product itself:

    ``map_j = c_j + sc · Σᵢ (s_ij − c_j) mᵢ = sc · (Σᵢ (s_ij − c_j) mᵢ + c_j / sc)``

with ``c_j`` the pixel's mean score (0 for the paper's estimator) and ``sc = 1 / (n p)``;
a gain (``max_of="gain"``) subtracts the mean score from each map, which changes only
that bias.
Each half of the masks (even and odd indices) is one product ``A (P, n/2) @ M (n/2, V)``
plus a bias per pixel, and since ``sc > 0`` the max over pixels of a map is ``sc`` times
the max of that product. The map of all masks is the sum of the two halves' products plus
a rank-3 correction (their means differ from the overall mean):

    ``map_j / sc_a = E_j + O_j + u0_j + u1_j · cov_e + u2_j · cov_o``

(``cov_e``, ``cov_o``: the even and the odd masks' coverage ``Σ mᵢ``). The products are
done on tiles of voxels small enough for the caches, and each tile is reduced to its three
maxima at once: the ``P × voxels`` sums are never written to memory when all masks of a
slab are rendered at once, and otherwise (many masks) they are summed per slab and
reduced tile by tile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from .workers import Workers

__all__ = ["CentredHalves", "slab_maxima", "tile_bytes"]

#: Pixel-voxel products per tile: ``P × tile`` floats stay in the processor's caches.
TILE_ELEMENTS = 2**19
#: The same on a GPU, where a tile's few kernel launches cost more than its caches save
#: (the bundled 3D U-Net's final pass: thousands of CPU-sized tiles per volume).
GPU_TILE_ELEMENTS = 2**24


class CentredHalves:
    """The per-half product matrices and biases of the final pass (see module notes).

    Parameters
    ----------
    scores
        ``(n, P)`` scores of the masks ``0 .. n-1`` for the P pixels.
    sums
        ``(2, P)`` score sums of the even and the odd masks (float64).
    p_keep
        The masks' keep probability.
    centred
        Centre each pixel's map on its mean score (False: the paper's estimator).
    gain
        Each pixel's map less its mean score (the gain of its probability when a voxel is
        kept; see ``PixelRISEParams.max_of``), instead of the map itself.
    """

    def __init__(
        self,
        scores: torch.Tensor,
        sums: torch.Tensor,
        p_keep: float,
        centred: bool,
        gain: bool = False,
    ) -> None:
        n = scores.shape[0]
        n_e, n_o = (n + 1) // 2, n // 2
        self.scale = tuple(1.0 / (max(k, 1) * p_keep) for k in (n, n_e, n_o))  # all, e, o
        s = scores.double()
        zero = torch.zeros_like(sums[0])
        means = (sums[0] / max(n_e, 1), sums[1] / max(n_o, 1), (sums[0] + sums[1]) / max(n, 1))
        c_e, c_o, c_a = means if centred else (zero, zero, zero)
        sc_a, sc_e, sc_o = self.scale
        # what each map adds to sc · Σ (s − c) m, over sc: its centre, less its mean for a gain
        d_e, d_o, d_a = (
            (c - m if gain else c) / sc
            for c, m, sc in zip((c_e, c_o, c_a), means, (sc_e, sc_o, sc_a), strict=True)
        )
        self.a_even = (s[0::2] - c_e).T.float().contiguous()  # (P, n_e)
        self.a_odd = (s[1::2] - c_o).T.float().contiguous()  # (P, n_o)
        self.b_even = d_e.float()[:, None]
        self.b_odd = d_o.float()[:, None]
        # map_all / sc_a = E + O + u0 + u1 cov_e + u2 cov_o
        u0 = d_a - d_e - d_o
        self.u = torch.stack([u0, c_e - c_a, c_o - c_a], dim=1).float()  # (P, 3)
        self.n = n

    def nbytes(self) -> int:
        """Memory held by the product matrices."""
        return sum(t.numel() * t.element_size() for t in (self.a_even, self.a_odd, self.u))

    @property
    def n_pixels(self) -> int:
        """P."""
        return int(self.a_even.shape[0])


def _tile(n_pixels: int, width: int, device: torch.device, cap: int | None = None) -> int:
    elements = TILE_ELEMENTS if device.type == "cpu" else GPU_TILE_ELEMENTS
    elements = elements if cap is None else min(elements, cap)
    return max(64, min(width, elements // max(n_pixels, 1)))


def tile_bytes(n_pixels: int, width: int, device: torch.device, cap: int | None = None) -> int:
    """Memory of one tile's two products when all masks of a slab ``width`` voxels wide are
    at hand (a worker of :func:`slab_maxima` holds one); ``cap``: products per tile at most."""
    return 2 * n_pixels * _tile(n_pixels, width, device, cap) * 4


def slab_maxima(
    halves: CentredHalves,
    masks: Callable[[int, int], torch.Tensor],
    coverage: torch.Tensor,
    chunk: int,
    gather: bool = True,
    workers: Workers | None = None,
    tile_cap: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three flat maxima over pixels (all masks, even, odd) of one slab of voxels.

    Parameters
    ----------
    halves
        The product matrices of the pass.
    masks
        ``(start, stop) -> (stop - start, slab voxels)``: the slab of masks ``start ..
        stop-1`` (may be overwritten by the next call).
    coverage
        ``(2, slab voxels)`` float32: the even and the odd masks' coverage over the slab.
    chunk
        Masks rendered at a time at most.
    gather
        Gather the slab of all ``n`` masks (rendered ``chunk`` at a time) and take the
        products tile by tile straight into their maxima: the ``P × voxels`` sums are never
        written to memory. Otherwise (less memory when ``n`` exceeds twice the pixels) the
        slab's two products are summed over the chunks first and reduced by tiles.
    workers
        Threads sharing the tiles of gathered masks (:mod:`~.workers`; the same maxima).
    tile_cap
        Pixel-voxel products per tile at most (the memory budget's share for a tile).
    """
    n, width = halves.n, coverage.shape[1]
    ones = torch.ones(1, width, dtype=coverage.dtype, device=coverage.device)
    weights = torch.cat([ones, coverage])  # (3, width)
    out = torch.empty(3, width, dtype=torch.float32, device=coverage.device)
    if n > 0 and gather:
        m = _gathered(masks, n, width, chunk, coverage)
        n_e = (n + 1) // 2
        _fused(halves, m[:n_e], m[n_e:], weights, out, workers or Workers(1), tile_cap)
    else:
        _summed(halves, masks, weights, chunk, out, tile_cap)
    for row, scale in zip(out, halves.scale, strict=True):
        row.mul_(scale)
    return out[0], out[1], out[2]


def _halves_of(start: int, stop: int) -> tuple[tuple[slice, int, int], tuple[slice, int, int]]:
    """Where masks ``start .. stop-1`` go in the two halves.

    Returns ``(rows, lo, hi)`` for the even-indexed masks, then for the odd: their rows in
    the chunk, and their index range in their half.
    """
    first = start % 2  # the row of the chunk's first even-indexed mask
    even = (slice(first, None, 2), (start + 1) // 2, (stop + 1) // 2)
    return even, (slice(1 - first, None, 2), start // 2, stop // 2)


def _gathered(masks, n: int, width: int, chunk: int, like: torch.Tensor) -> torch.Tensor:
    """The slab of all ``n`` masks, ``(n, width)``: the even-indexed ones first, then the odd."""
    m = torch.empty(n, width, dtype=torch.float32, device=like.device)
    n_e = (n + 1) // 2
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        part = masks(start, stop)
        (ev, e0, e1), (od, o0, o1) = _halves_of(start, stop)
        m[e0:e1] = part[ev]
        m[n_e + o0 : n_e + o1] = part[od]
    return m


def _reduce(pe: torch.Tensor, po: torch.Tensor, u, w: torch.Tensor, out, cols: slice) -> None:
    """Maxima of one tile's products: even, odd, then all (``pe`` is overwritten)."""
    torch.amax(pe, dim=0, out=out[1, cols])
    torch.amax(po, dim=0, out=out[2, cols])
    pe.add_(po).addmm_(u, w)
    torch.amax(pe, dim=0, out=out[0, cols])


def _fused(halves: CentredHalves, m_e, m_o, weights, out, workers: Workers, cap=None) -> None:
    """All masks at hand: products of one tile at a time, reduced while in the caches."""
    p, width = halves.n_pixels, weights.shape[1]
    tile = _tile(p, width, weights.device, cap)
    held = threading.local()  # each thread's two product buffers

    def one_tile(a: int) -> None:
        if not hasattr(held, "pe"):
            held.pe = torch.empty(p * tile, dtype=torch.float32, device=weights.device)
            held.po = torch.empty_like(held.pe)
        b = min(a + tile, width)
        pe, po = held.pe[: p * (b - a)].view(p, -1), held.po[: p * (b - a)].view(p, -1)
        torch.addmm(halves.b_even, halves.a_even, m_e[:, a:b], out=pe)
        torch.addmm(halves.b_odd, halves.a_odd, m_o[:, a:b], out=po)
        _reduce(pe, po, halves.u, weights[:, a:b], out, slice(a, b))

    workers.map(one_tile, range(0, width, tile))


def _summed(halves: CentredHalves, masks, weights, chunk: int, out, cap=None) -> None:
    """Many masks: the slab's two products summed chunk by chunk, then reduced by tiles."""
    p, width = halves.n_pixels, weights.shape[1]
    pe = halves.b_even.expand(p, width).contiguous()
    po = halves.b_odd.expand(p, width).contiguous()
    for start in range(0, halves.n, chunk):
        stop = min(start + chunk, halves.n)
        m = masks(start, stop)
        (ev, e0, e1), (od, o0, o1) = _halves_of(start, stop)
        pe.addmm_(halves.a_even[:, e0:e1], m[ev])
        if o1 > o0:
            po.addmm_(halves.a_odd[:, o0:o1], m[od])
    tile = _tile(p, width, weights.device, cap)
    for a in range(0, width, tile):
        b = min(a + tile, width)
        _reduce(pe[:, a:b], po[:, a:b], halves.u, weights[:, a:b], out, slice(a, b))
