"""Random RISE masks, drawn on the CPU and rendered chunk by chunk on the target device.

A RISE mask (Petsiuk et al. 2018) is a random binary grid of ``s`` cells per axis, each cell
kept with probability ``p_keep``, upsampled (bi/trilinearly) to ``(s + 1) * cell`` voxels per
axis with ``cell = ceil(size / s)``, and cropped to the image at a random shift in
``[0, cell)``. Only the low-resolution grids and the shifts are random: they are drawn in
fixed blocks of :data:`BLOCK` masks seeded from ``(seed, block index)``, so mask ``i`` is
the same whatever chunks it is requested in. The upsampling is separable, so it is done as
one small matrix product per axis instead of a full-size interpolation followed by a crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .mask_batch import MaskBatch
from .reused import ReusedArray

__all__ = ["BLOCK", "SAMPLINGS", "RiseMasks", "interpolation_matrix", "linear_weights"]

#: How the low-resolution grids of a block are drawn.
SAMPLINGS = ("iid", "stratified")

#: Number of masks drawn from one seeded random stream.
BLOCK = 256


def linear_weights(src: torch.Tensor, n_in: int) -> torch.Tensor:
    """Linear interpolation matrix ``(len(src), n_in)`` at continuous source positions.

    ``src`` holds, for every output sample, its position on the input grid (clamped to
    ``[0, n_in - 1]``); each row has the weights of the two neighbouring input samples.
    """
    src = src.to(torch.float64).clamp(0, n_in - 1)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    lam = src - i0.double()
    mat = torch.zeros(src.shape[0], n_in, dtype=torch.float64)
    rows = torch.arange(src.shape[0])
    mat.index_put_((rows, i0), 1.0 - lam, accumulate=True)
    mat.index_put_((rows, i1), lam, accumulate=True)
    return mat


def interpolation_matrix(n_in: int, n_out: int, *, dtype=torch.float64) -> torch.Tensor:
    """Linear interpolation matrix of ``F.interpolate(..., align_corners=False)``.

    Parameters
    ----------
    n_in, n_out
        Input and output lengths.

    Returns
    -------
    torch.Tensor
        ``(n_out, n_in)`` matrix ``R`` such that ``R @ v`` upsamples ``v`` like torch's
        ``linear`` / ``bilinear`` / ``trilinear`` modes without corner alignment.
    """
    src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    return linear_weights(src, n_in).to(dtype)


def _block_generator(seed: int, block: int) -> torch.Generator:
    """The CPU generator of one block's random draws (the same numbers on every device)."""
    # the high words of a seed >= 2**32 go in the spawn key: seed 2**32 is not seed 0, nor
    # [2**32, b] the same entropy as [0, 1 + b]; seeds below 2**32 keep their masks
    high = () if int(seed) >> 32 == 0 else (int(seed) >> 32,)
    state = np.random.SeedSequence(
        [int(seed) & 0xFFFFFFFF, int(block)], spawn_key=high
    ).generate_state(2)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


class RiseMasks:
    """Seeded random RISE masks for a 2D or 3D image, produced in chunks.

    Parameters
    ----------
    spatial
        The image's spatial shape, ``(H, W)`` or ``(D, H, W)``.
    grid
        Number of grid cells ``s``, one int for all axes or one per axis.
    p_keep
        Probability that a cell is kept (mask value 1), in (0, 1).
    seed
        Seed of the random stream.
    device
        Where the masks are produced.
    dtype
        Floating dtype of the masks.
    reuse_output
        Write every chunk into the same array (reallocated only when the chunk's shape
        changes): no new memory per chunk, but each call overwrites the previous result.
        For a loop that uses each chunk before asking for the next.
    sampling
        ``"iid"``: every cell kept independently (``u < p`` for a uniform ``u``).
        ``"stratified"``: within each
        block of :data:`BLOCK` masks, each cell's ``u`` values are stratified (one in each
        of ``BLOCK`` equal intervals, in random order), so every cell is kept in
        ``round(p · BLOCK)`` masks of the block. Every mask is still marginally a RISE mask.
    """

    def __init__(
        self,
        spatial: Sequence[int],
        grid: int | Sequence[int],
        p_keep: float,
        seed: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        reuse_output: bool = False,
        sampling: str = "iid",
    ) -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.sampling = sampling
        self.spatial = tuple(int(s) for s in spatial)
        #: The array every chunk is written into (None: a fresh one per chunk).
        self.output = ReusedArray() if reuse_output else None
        nd = len(self.spatial)
        if nd not in (2, 3):
            raise ValueError(f"masks need 2 or 3 spatial axes, got shape {self.spatial}")
        grid_t = (int(grid),) * nd if np.isscalar(grid) else tuple(int(g) for g in grid)
        if len(grid_t) != nd:
            raise ValueError(
                f"grid must be one int or {nd} ints (one per spatial axis), got {grid!r}"
            )
        for g, size in zip(grid_t, self.spatial, strict=True):
            if g < 1:
                raise ValueError(f"grid cells must be >= 1, got grid={grid_t}")
            if g > size:
                raise ValueError(
                    f"grid {grid_t} is larger than the image {self.spatial}: "
                    "at most one cell per voxel along each axis"
                )
        if not 0.0 < float(p_keep) < 1.0:  # at 1 no mask hides anything
            raise ValueError(f"p_keep must be in (0, 1), got {p_keep!r}")
        self.grid = grid_t
        self.p_keep = float(p_keep)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.dtype = dtype
        self.cells = tuple(math.ceil(s / g) for s, g in zip(self.spatial, grid_t, strict=True))
        self._mats = [
            interpolation_matrix(g, (g + 1) * c, dtype=dtype).to(self.device)
            for g, c in zip(grid_t, self.cells, strict=True)
        ]
        self._block_cache: tuple[int, torch.Tensor, torch.Tensor] | None = None
        #: Where the rendered masks start in the full masks (a window's corner; 0 here).
        self.origin: tuple[int, ...] = (0,) * nd

    def _block(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._block_cache is not None and self._block_cache[0] == b:
            return self._block_cache[1], self._block_cache[2]
        # drawn on the CPU and moved: a GPU's generator gives other numbers for the same
        # seed, and the masks of a seed are the same on every device
        gen = _block_generator(self.seed, b)
        u = torch.rand((BLOCK, *self.grid), generator=gen)
        shifts = torch.stack(
            [torch.randint(0, c, (BLOCK,), generator=gen) for c in self.cells], dim=1
        )
        if self.sampling == "stratified":
            order = torch.rand((BLOCK, *self.grid), generator=gen)
            strata = torch.argsort(order, dim=0).to(u.dtype)  # a random permutation per cell
            u = (strata + u) / BLOCK
        grids, shifts = (u < self.p_keep).to(self.device), shifts.to(self.device)
        self._block_cache = (b, grids, shifts)
        return grids, shifts

    def params(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The random part of masks ``start .. stop-1``.

        Returns
        -------
        grids : torch.Tensor
            Boolean ``(n, *grid)`` low-resolution grids (True = kept).
        shifts : torch.Tensor
            Integer ``(n, ndim)`` crop offsets, each in ``[0, cell)``.
        """
        grids, shifts = [], []
        i = start
        while i < stop:
            b, off = divmod(i, BLOCK)
            take = min(stop - i, BLOCK - off)
            g, s = self._block(b)
            grids.append(g[off : off + take])
            shifts.append(s[off : off + take])
            i += take
        return torch.cat(grids), torch.cat(shifts)

    def render(
        self,
        grids: torch.Tensor,
        shifts: torch.Tensor,
        rows: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Upsample and crop grids to full-resolution masks ``(n, 1, *spatial)``.

        Each axis is one batched matrix product with that axis's cropped interpolation
        matrix, last axis first, so that every intermediate is contiguous. ``rows = (lo,
        hi)`` renders only indices ``lo .. hi-1`` of the first spatial axis (a slab of the
        same masks, ``(n, 1, hi - lo, *spatial[1:])``).
        """
        return self._render(grids, shifts, rows)[0]

    def _cropped(self, shifts, ax: int, span: tuple[int, int] | None) -> torch.Tensor:
        """``(n, count, g)``: axis ``ax``'s interpolation rows ``span`` at each mask's shift."""
        lo, hi = (0, self.spatial[ax]) if span is None else span
        if not 0 <= lo < hi <= self.spatial[ax]:
            name = "rows" if ax == 0 else "side"
            raise ValueError(f"{name} must satisfy 0 <= lo < hi <= {self.spatial[ax]}, got {span}")
        first = lo + self.origin[ax]
        idx = shifts[:, ax : ax + 1] + torch.arange(first, first + hi - lo, device=self.device)
        return self._mats[ax][idx]

    def _side(self, grids, shifts, side: tuple[int, int] | None = None) -> torch.Tensor:
        """The second factor ``Y (n, g0, rest)``; ``side`` restricts axis 1 to a range."""
        n = grids.shape[0]
        x = grids.to(self.dtype)
        m1 = self._cropped(shifts, 1, side)
        if len(self.spatial) == 2:
            return torch.bmm(x, m1.transpose(1, 2))  # (n, g0, W)
        g0, g1, g2 = self.grid
        m2 = self._cropped(shifts, 2, None)
        x = torch.bmm(x.reshape(n, g0 * g1, g2), m2.transpose(1, 2))  # (n, g0·g1, W)
        x = torch.matmul(m1.unsqueeze(1), x.reshape(n, g0, g1, -1))  # (n, g0, H, W)
        return x.reshape(n, g0, -1)  # (n, g0, H·W)

    def _render(self, grids, shifts, rows):
        """The masks and their two factors ``(L, Y)`` (see :class:`MaskBatch`)."""
        n = grids.shape[0]
        lmat = self._cropped(shifts, 0, rows)
        shape = (n, 1, lmat.shape[1], *self.spatial[1:])
        y = self._side(grids, shifts)
        masks = torch.bmm(lmat, y, out=self._output(shape)).reshape(shape)  # (n, rows, rest)
        return masks, lmat, y

    def first_factors(self) -> torch.Tensor:
        """``(cell0, size0, g0)``: the first factor ``L`` of a mask for each shift along axis 0.

        Mask ``i``'s ``L`` is ``first_factors()[shift0]``, ``shift0`` from :meth:`side_factors`.
        """
        shifts = torch.arange(self.cells[0], device=self.device)[:, None]
        return self._cropped(shifts, 0, None)

    def side_factors(
        self, start: int, stop: int, side: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks ``start .. stop-1`` as factors: ``(shift0 (n,), Y (n, g0, rest))``.

        ``masks[i]`` is ``first_factors()[shift0[i]] @ Y[i]``; ``side = (lo, hi)`` keeps
        indices ``lo .. hi-1`` of axis 1 only (``rest`` then counts those).
        """
        grids, shifts = self.params(start, stop)
        return shifts[:, 0], self._side(grids, shifts, side)

    def batch(self, start: int, stop: int) -> MaskBatch:
        """Masks ``start .. stop-1`` with their factors, as the loop's :class:`MaskBatch`."""
        masks, lmat, y = self._render(*self.params(start, stop), None)
        return MaskBatch(start, masks, factors=(lmat, y))

    def _output(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """The reused output array viewed as ``(n, rows, rest)`` for the last product."""
        if self.output is None:
            return None
        return self.output.take(shape, self.dtype, self.device).view(shape[0], shape[2], -1)

    def __call__(self, start: int, stop: int, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """Masks ``start .. stop-1`` as a ``(stop - start, 1, *spatial)`` tensor in [0, 1].

        ``rows = (lo, hi)`` gives only that slab of the first spatial axis.
        """
        return self.render(*self.params(start, stop), rows=rows)
