"""PixelRISE's max-merge: the voxel-wise maximum of one RISE map per segment pixel.

The exact result needs, for each of the P pixels, its own weighted sum over every voxel:
``P × N × V`` multiply-adds, done as matrix products of ``(P, b)`` scores and ``(b, V)``
masks. The products are cheapest with many masks at a time, so masks are gathered in a
buffer of up to ``buffer_masks`` before each product (with 16 at a time the ``P × V``
accumulator is read and written once per 16 masks, and the product is memory-bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from . import pixel_factored
from .accumulate import Partial
from .mask_batch import MaskBatch
from .pixel_factored import FactoredPass, factored_flops
from .pixel_slabs import CentredHalves, slab_maxima, tile_bytes
from .weighted_sum import WeightedSum, split_half_reliability
from .workers import Workers

__all__ = ["PixelMax"]

_F32 = 4  # bytes per float32

#: The factored final pass is taken when its multiply-adds are at most this share of the
#: per-mask pass's (its products are about as efficient: measured on a 3D U-Net's 926
#: pixels, 300 masks at a share of 0.53 took 7.4 s against 12.2 s).
FACTORED_SHARE = 0.8


class PixelMax:
    """Max-merge of per-pixel RISE maps over P pixels.

    Each pixel's map uses the RISE family's estimator (see
    :mod:`~maskscope._engine.weighted_sum`): centred, ``s̄_j + Σᵢ (s_ij − s̄_j) mᵢ / (n p)``
    with ``s̄_j`` the pixel's mean score, or the paper's ``Σᵢ s_ij mᵢ / (n p)``. The
    centring needs only the masks' coverage ``Σᵢ mᵢ`` (kept by the mean-merge's sums) and
    the per-pixel score sums, and is applied when a map is asked for. ``"covariate"`` is
    the centred estimator here, for every pixel and for the mean-merge (the extra
    ``"mean"``): a slope per pixel and per half is not kept.

    When the ``P × voxels`` accumulator fits in ``max_bytes`` it is kept whole and updated
    during the model pass (through the mask buffer), so every snapshot is the exact
    max-merge of the masks so far. Otherwise:

    * during the model pass a spread subset of the pixels (at most 1/16 of the budget) is
      accumulated for the snapshots, which then show the max over that subset (a lower
      bound of the result), and the scores of the other pixels are kept (``n × P``, counted
      in the budget);
    * :meth:`finish` computes the other pixels' maps slab by slab along the first spatial
      axis: the masks are regenerated for that slab only (no model calls), so every slab
      is one large product and every mask is rendered once in all. When the masks' two
      factors make it cheaper (many masks), the slabs go along the second axis instead
      and the products are taken from the factors (:mod:`~maskscope._engine.pixel_factored`).

    The model is never run more than once per mask, and the memory used stays within
    ``max_bytes`` whatever the number of masks (unless the kept scores alone exceed it).

    The sums are kept in two halves, the even- and the odd-indexed masks (the same products,
    each over half the masks), so that the max-merged maps of the two halves give the map's
    split-half reliability (see :mod:`~maskscope._engine.weighted_sum`).

    Parameters
    ----------
    spatial
        The spatial shape of the masks.
    n_pixels
        Number of pixel scores per mask, P.
    p_keep
        The masks' keep probability.
    n_total
        Number of masks that will be added.
    masks
        ``(start, stop, rows=(lo, hi)) -> (b, 1, hi - lo, *spatial[1:])``: regenerates a slab
        of masks ``start .. stop-1`` (e.g. a :class:`~maskscope._engine.masks.RiseMasks`).
    device
        Where the sums live.
    max_bytes
        Memory budget of the accumulators, buffers and kept scores.
    buffer_masks
        Masks per matrix product at most.
    estimator
        ``"covariate"`` or ``"centred"`` (each pixel's map centred), or ``"paper"``.
    factored
        The final pass from the masks' factors (needs ``masks.side_factors``): None when it
        costs fewer multiply-adds and fits the budget, or always / never.
    gain
        Merge each pixel's map less its mean score (how much its probability rises when
        a voxel is kept) instead of the map itself (``PixelRISEParams.max_of``).
    """

    #: Its reliability comes from the halves' maxima; there is no per-voxel standard error.
    has_stderr = False

    #: Pixels and voxels centred and reduced at a time when a map is asked for: the
    #: temporaries (``REDUCE_PIXELS × REDUCE_VOXELS`` float64 each) stay in the caches.
    REDUCE_PIXELS = 64
    REDUCE_VOXELS = 2048

    def __init__(
        self,
        spatial: tuple[int, ...],
        n_pixels: int,
        p_keep: float,
        n_total: int,
        masks: Callable[..., torch.Tensor],
        device: torch.device,
        max_bytes: int = 512 * 2**20,
        buffer_masks: int = 256,
        estimator: str = "covariate",
        factored: bool | None = None,
        gain: bool = False,
    ) -> None:
        self.factored = factored
        self.gain = bool(gain)
        self.spatial = tuple(int(s) for s in spatial)
        self.n_vox = math.prod(self.spatial)
        self.p = float(p_keep)
        self.n_pixels = int(n_pixels)
        self.n_total = int(n_total)
        self.masks_fn = masks
        self.device = device
        self.max_bytes = int(max_bytes)
        self.buffer_masks = max(2, int(buffer_masks))
        self.estimator = estimator
        mask_bytes = self.n_vox * _F32
        full = 2 * self.n_pixels * mask_bytes  # two halves
        self.tiled = self.n_pixels > 1 and full + 16 * mask_bytes > self.max_bytes
        if self.tiled:
            # a spread subset for the snapshots; the rest is done by finish() in slabs
            n_live = min(self.n_pixels - 1, max(1, self.max_bytes // 32 // mask_bytes))
            live = np.unique(np.linspace(0, self.n_pixels - 1, n_live).round().astype(np.int64))
            rest = np.setdiff1d(np.arange(self.n_pixels), live)
            self.live = torch.from_numpy(live).to(device)
            self.rest = torch.from_numpy(rest).to(device)
            self.scores = torch.zeros(self.n_total, rest.size, dtype=torch.float32, device=device)
            spare = self.max_bytes // 8
        else:
            self.live = None
            self.rest = None
            self.scores = None
            spare = self.max_bytes - full
        n_acc = self.n_pixels if self.live is None else int(self.live.numel())
        self.cap = max(2, min(self.buffer_masks, self.n_total, spare // mask_bytes))
        zeros = torch.zeros
        self.acc = [zeros(n_acc, self.n_vox, dtype=torch.float32, device=device) for _ in "eo"]
        self._buf_m = torch.empty(self.cap, self.n_vox, dtype=torch.float32, device=device)
        self._buf_s = torch.empty(self.cap, n_acc, dtype=torch.float32, device=device)
        self._k = 0
        self._buf_start = 0
        #: flat maxima (all masks, even half, odd half) over all pixels, filled by finish()
        self.best: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        #: Slab size of :meth:`finish`: indices of axis 0, or of axis 1 when ``factored``.
        self.rows_per_slab: int | None = None
        #: How :meth:`finish` went: ``"gathered"``, ``"summed"`` or ``"factored"``.
        self.final_pass: str | None = None
        self.n = 0
        centred = "paper" if estimator == "paper" else "centred"
        self.mean_acc = WeightedSum(
            self.spatial,
            p_keep,
            device,
            estimator=centred,
            stderr=False,  # no error here
        )
        self.score_sums = torch.zeros(2, self.n_pixels, dtype=torch.float64, device=device)

    def update(self, batch: MaskBatch, scores: torch.Tensor) -> None:
        """Add a chunk: the batch's masks ``(B, 1, *sp)`` with pixel scores ``(B, P)``."""
        start, masks = batch.start, batch.masks
        b = masks.shape[0]
        m = masks.reshape(b, -1).float()
        s = scores.float()
        self.mean_acc.update(batch, s.mean(dim=1))
        sd = scores.double()
        first = start % 2
        self.score_sums[first] += sd[0::2].sum(dim=0)
        self.score_sums[1 - first] += sd[1::2].sum(dim=0)
        if self.scores is not None:
            self.scores[start : start + b] = s.index_select(1, self.rest)
            s = s.index_select(1, self.live)
        if self._k + b > self.cap:
            self._flush()
        if b >= self.cap:
            _add_halves(self.acc, s, m, start)
        else:
            if self._k == 0:
                self._buf_start = start
            self._buf_m[self._k : self._k + b] = m
            self._buf_s[self._k : self._k + b] = s
            self._k += b
        self.n += b

    def _flush(self) -> None:
        if self._k:
            k = self._k
            _add_halves(self.acc, self._buf_s[:k], self._buf_m[:k], self._buf_start)
            self._k = 0

    # ------------------------------------------------------------------ maps
    def _counts(self) -> tuple[int, int]:
        even = (self.n + 1) // 2
        return even, self.n - even

    def _merged(self, halves, pixels: torch.Tensor | None, lo: int = 0, workers=None):
        """Max over pixels of their maps, for all masks and for each half.

        ``halves``: the ``Σ s m`` rows of the even and the odd masks (voxels from ``lo``).
        The voxels go by tiles of :attr:`REDUCE_VOXELS` (the temporaries stay in the caches),
        shared by ``workers`` (a :class:`~.workers.Workers`: each tile is its own part).
        Returns three flat maps: all masks, even half, odd half.
        """
        n_e, n_o = self._counts()
        sums_e, sums_o = halves
        n_pix, width = sums_e.shape
        cov_all, cov_even = self.mean_acc.coverage()
        cov_e = cov_even[lo : lo + width]
        cov = cov_all[lo : lo + width]
        cov_o = cov - cov_e
        score = self.score_sums if pixels is None else self.score_sums[:, pixels]
        score_all = score[0] + score[1]
        best = torch.full((3, width), -math.inf, dtype=torch.float64, device=sums_e.device)

        def tile(a: int) -> None:
            v = slice(a, a + self.REDUCE_VOXELS)
            for i in range(0, n_pix, self.REDUCE_PIXELS):
                j = slice(i, i + self.REDUCE_PIXELS)
                e, o = sums_e[j, v].double(), sums_o[j, v].double()
                parts = (
                    (e + o, score_all[j], cov[v], self.n),
                    (e, score[0, j], cov_e[v], n_e),
                    (o, score[1, j], cov_o[v], n_o),
                )
                for k, part in enumerate(parts):
                    value = self._pixel_maps(*part).amax(dim=0)
                    torch.maximum(best[k, v], value, out=best[k, v])

        (workers or Workers(1)).map(tile, range(0, width, self.REDUCE_VOXELS))
        return best[0], best[1], best[2]

    def _pixel_maps(self, rows, score_total, coverage, n: int) -> torch.Tensor:
        scale = 1.0 / (max(n, 1) * self.p)
        mean = (score_total / max(n, 1))[:, None]
        if self.estimator == "paper":
            return rows * scale - mean if self.gain else rows * scale
        centred = (rows - mean * coverage) * scale
        return centred if self.gain else centred + mean

    def _current(self):
        if self.best is not None:
            return self.best
        self._flush()
        return self._merged(self.acc, self.live)

    def partial(self) -> Partial:
        """The max-merged map over the pixels accumulated so far (mean-merged as extra)."""
        value, even, odd = self._current()
        mean = self.mean_acc.mean().reshape(self.spatial)
        n_e, n_o = self._counts()
        rel = split_half_reliability(even, odd) if min(n_e, n_o) >= 2 else None
        return Partial(map=value.reshape(self.spatial), extras={"mean": mean}, reliability=rel)

    # ------------------------------------------------------------------ slabs
    def _slab_chunk(self) -> int:
        """Masks per product in :meth:`finish` (all masks added, or the expected total)."""
        return min(self.buffer_masks, max(self.n or self.n_total, 1))

    def slab_plan(self) -> tuple[int, bool]:
        """(rows per slab, whether a slab gathers all masks) for :meth:`finish`.

        A slab gathers its ``n`` masks (plus one chunk being rendered) when one row of
        them fits the budget; otherwise it sums the ``2 × P`` products over chunks.
        """
        if self.rest is None:
            return self.spatial[0], True
        gathered = self._slab_avail() // self._row_bytes(True)
        if gathered >= 1:
            return int(min(self.spatial[0], gathered)), True
        summed = self._slab_avail() // self._row_bytes(False)
        return int(min(self.spatial[0], max(1, summed))), False

    def _slab_avail(self) -> int:
        """The budget left for a slab of the per-mask pass, beside the kept scores' place."""
        used = (int(self.scores.numel()) if self.scores is not None else 0) + 3 * self.n_vox
        return self.max_bytes - used * _F32

    def _row_bytes(self, gather: bool) -> int:
        """Memory of one row (index of axis 0) of a per-mask pass's slab."""
        n, chunk = max(self.n or self.n_total, 1), self._slab_chunk()
        held = n if gather else 2 * int(self.rest.numel())
        return (held + chunk) * (self.n_vox // self.spatial[0]) * _F32

    def finish(self, workers: int = 1) -> Iterator[int]:
        """Compute the pixels not accumulated live, slab by slab; yields slabs done.

        Each slab's masks are rendered again (no model calls) and the max over pixels is
        taken straight from the centred products (see :mod:`~.pixel_slabs`), or from the
        masks' factors when that costs less (:mod:`~.pixel_factored`). ``workers`` threads
        share each slab's parts, as many at once as the memory budget holds
        (:mod:`~.workers`: the same map for any number).
        """
        self._flush()
        self._buf_m = self._buf_s = None
        if self.scores is None:
            return
        with Workers(workers) as pool:
            self.best = self._merged(self.acc, self.live, workers=pool)
            self.acc = None
            sums = self.score_sums[:, self.rest]
            halves = CentredHalves(
                self.scores[: self.n], sums, self.p, self.estimator != "paper", gain=self.gain
            )
            plan = self.slab_plan()  # the kept scores' place is the product matrices' now
            spare = self._slab_avail() - plan[0] * self._row_bytes(plan[1])
            width = plan[0] * (self.n_vox // self.spatial[0])
            # a tile's two float32 products within what the slabs leave of the budget
            tile_cap = max(spare, 0) // 8
            tiles = tile_bytes(halves.n_pixels, width, halves.a_even.device, tile_cap)
            self.scores = None
            factored = self._factored_pass(halves)
            if factored is not None:
                self.final_pass = "factored"
                yield from self._side_slabs(factored, pool)
            else:
                yield from self._row_slabs(halves, plan, pool.limited(spare // tiles), tile_cap)

    def _factored_pass(self, halves: CentredHalves) -> FactoredPass | None:
        """The factored pass when asked for or cheaper (and the masks have factors)."""
        src = self.masks_fn
        if self.factored is False or not hasattr(src, "side_factors"):
            return None
        first = src.first_factors().float()
        cells0, size0, g0 = first.shape
        if self.factored is None and factored_flops(self.n, size0, g0, cells0) > FACTORED_SHARE:
            return None
        avail = self.max_bytes - 3 * self.n_vox * _F32 - halves.nbytes()
        shift0 = src.params(0, self.n)[1][:, 0]
        chunk = self._slab_chunk()
        limit = pixel_factored.pass_sizes(first.device)[0]
        tile = max(1, min(limit, avail // (8 * _F32)))  # tiles: 5/8 of it at most
        fp = FactoredPass(halves, shift0, first, src.side_factors, self.spatial, chunk, tile)
        side = (avail - fp.tile_bytes()) // fp.bytes_per_side_index()
        if self.factored is None and side < 1:
            return None
        self.rows_per_slab = int(min(self.spatial[1], max(1, side)))
        # blocks at once beside the slab's masks (each holds its first stages and sums)
        fp.at_once = (avail - self.rows_per_slab * fp.bytes_per_side_index()) // fp.tile_bytes()
        return fp

    def _side_slabs(self, fp: FactoredPass, workers: Workers) -> Iterator[int]:
        """The factored pass, in slabs of ``rows_per_slab`` indices of axis 1."""
        size0, size1 = self.spatial[0], self.spatial[1]
        shape = (size0, size1, -1)
        cov_all, cov_even = (c.view(shape) for c in self.mean_acc.coverage())
        step = self.rows_per_slab
        for i, lo in enumerate(range(0, size1, step)):
            hi = min(lo + step, size1)
            ce = cov_even[:, lo:hi]
            weights = torch.stack([torch.ones_like(ce), ce, cov_all[:, lo:hi] - ce])
            merged = fp.slab(lo, hi, weights.reshape(3, size0, -1).float(), workers)
            for flat, value in zip(self.best, merged, strict=True):
                part = flat.view(shape)[:, lo:hi]
                part.copy_(torch.maximum(part, value.view(part.shape).to(flat.dtype)))
            yield i + 1

    def _row_slabs(
        self, halves: CentredHalves, plan, workers: Workers, tile_cap: int | None = None
    ) -> Iterator[int]:
        """The per-mask pass, in slabs of ``rows_per_slab`` indices of axis 0 (``workers``:
        as many at once as the budget holds beside a slab)."""
        rows, gather = plan
        self.rows_per_slab = rows
        self.final_pass = "gathered" if gather else "summed"
        row = self.n_vox // self.spatial[0]
        cov_all, cov_even = self.mean_acc.coverage()
        for i, lo in enumerate(range(0, self.spatial[0], rows)):
            hi = min(lo + rows, self.spatial[0])
            part = slice(lo * row, hi * row)
            cov = torch.stack([cov_even[part], cov_all[part] - cov_even[part]]).float()

            def masks(start: int, stop: int, lo=lo, hi=hi) -> torch.Tensor:
                m = self.masks_fn(start, stop, rows=(lo, hi))
                return m.reshape(stop - start, -1).float()

            chunk = self._slab_chunk()
            merged = slab_maxima(halves, masks, cov, chunk, gather, workers, tile_cap)
            for flat, value in zip(self.best, merged, strict=True):
                torch.maximum(flat[part], value.to(flat.dtype), out=flat[part])
            yield i + 1


def _add_halves(acc, s: torch.Tensor, m: torch.Tensor, start: int) -> None:
    """Add ``sᵀ m`` of masks ``start ..`` to ``acc[0]`` (even indices) and ``acc[1]`` (odd)."""
    first = start % 2
    acc[first].addmm_(s[0::2].T, m[0::2])
    if s.shape[0] > 1:
        acc[1 - first].addmm_(s[1::2].T, m[1::2])
