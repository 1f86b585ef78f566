"""RISE running sums: the variance-reduced estimators, their standard error and reliability.

With masks ``mᵢ`` (keep probability ``p``, so ``E[mᵢ] = p`` at every voxel) and weights ``wᵢ``,
the paper's map (Petsiuk et al. 2018) is ``Σ wᵢ mᵢ / (n p)``. When the weights vary little
around their mean (Dice on a large segment), that sum is mostly ``w̄ Σ mᵢ / (n p)``: the
masks' own coverage noise, the same for any model. The centred map

    ``S = w̄ + Σ (wᵢ − w̄) mᵢ / (n p)``

has the same expectation (``E[Σ mᵢ] = n p``), and the coverage noise is gone: it is a control
variate computed from the same runs. ``estimator="paper"`` keeps the published form. The
default, ``"covariate"``, also regresses the weights on the share of the explained region
that each mask keeps, whose covariance with every voxel is known exactly (see
:mod:`~.covariate`); without a region it is the centred estimator.

Every snapshot carries a **reliability**: the two halves of the masks (even and odd indices)
give two independent maps; their correlation ``r``, Spearman–Brown corrected to ``2r / (1 + r)``,
predicts the correlation between this map and one made with another seed and as many masks.
Each half uses its own slope, so the halves stay independent.

All sums are linear in per-mask coefficients, so they are kept as a few columns:
``Σ cᵢ mᵢ`` for ``c ∈ {w, 1, w·e, e}`` (``e`` = 1 for even mask indices) and ``Σ dᵢ mᵢ²`` for
``d ∈ {w², w, 1}``, each a single matrix product per chunk; with a covariate ``φ``, also
``c ∈ {φ, φ·e}`` and ``d ∈ {φ², φ, w·φ}``. They are summed by blocks of
:data:`~.blocks.SUM_BLOCK` masks, so that ranges of masks run apart merge to the same bits
(:meth:`WeightedSum.take_blocks`, :meth:`WeightedSum.add_block`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .accumulate import Partial, accumulation_dtype
from .blocks import SUM_BLOCK, SumBlock
from .covariate import RegionCovariate
from .factor_sums import FactoredSums
from .mask_batch import MaskBatch
from .sum_estimates import Moments, estimate, slope, standard_error

__all__ = ["ESTIMATORS", "WeightedSum", "split_half_reliability"]

#: The estimators of the RISE family's map.
ESTIMATORS = ("covariate", "centred", "paper")

#: Voxels from which the held sums are added before the last chunk (a 512² image, a 64³
#: volume): see :meth:`WeightedSum.before_last_chunk`.
EARLY_SETTLE_VOXELS = 2**18

# first-moment columns: w, 1, w·even, even (then φ, φ·even); second-moment columns: w², w,
# 1 (then φ², φ, w·φ); scalar sums: w, w·even (then φ, φ·even, φ², φ²·even, w·φ, w·φ·even)
_COLUMNS = {False: (4, 3, 2), True: (6, 6, 8)}
#: What a centred estimator adds for its standard error: first-moment columns (``w²``;
#: with a covariate ``φ²`` and ``w φ`` too) and the scalar pair of ``Σ w²``.
_CENTRED_EXTRA = {False: (1, 2), True: (3, 2)}


def split_half_reliability(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Spearman–Brown corrected correlation ``2r / (1 + r)`` of two half maps.

    None when either half is constant (no correlation is defined). For ``r < 0`` (halves
    that disagree: very few masks) the formula has no meaning below -1; the result is kept
    in ``[-1, 1]``.
    """
    a = a.double().flatten()
    b = b.double().flatten()
    a = a - a.mean()
    b = b - b.mean()
    den = float(torch.sqrt((a * a).sum() * (b * b).sum()))
    if not den > 0:
        return None
    r = float((a * b).sum()) / den
    r = min(max(r, -1.0), 1.0)
    return max(2.0 * r / (1.0 + r), -1.0) if r > -1.0 else -1.0


class WeightedSum:
    """Running RISE sums: the map, its per-voxel standard error and its reliability.

    Parameters
    ----------
    spatial
        The spatial shape of the masks.
    p_keep
        The masks' keep probability ``p``.
    device
        Where the sums live.
    estimator
        ``"covariate"`` (default), ``"centred"`` or ``"paper"`` (``Σ wᵢ mᵢ / (n p)``).
    covariate
        The explained region's :class:`~.covariate.RegionCovariate`, used by
        ``"covariate"`` (without one, that estimator is the centred one).
    stderr
        Whether :meth:`stderr` is asked for: a centred estimator's error needs the sums of
        ``w² m`` (and ``φ² m``, ``w φ m``) too, which a map without an error (PixelRISE
        max's mean) need not pay for.

    Notes
    -----
    A :class:`~maskscope._engine.mask_batch.MaskBatch` with ``factors`` (RISE masks as
    products of two small factors) is summed through the factors, and its full-size masks
    are not read again: with ``m = L @ Y`` and at most two adjacent weights per row of
    ``L``, ``m² = L² @ Y² + 2 (L₀ L₁) @ (Y₀ Y₁)`` over neighbouring rows of ``Y``.
    """

    #: The sums give a per-voxel standard error (early stopping and ``rel_error`` use it).
    has_stderr = True

    #: Masks summed in the staging buffers before they are added to the running sums.
    FLUSH_EVERY = 64
    #: Bytes of pending factors (factored sums) that trigger their product.
    PENDING_BYTES = 48 * 2**20

    def __init__(
        self,
        spatial: tuple[int, ...],
        p_keep: float,
        device: torch.device,
        estimator: str = "covariate",
        covariate: RegionCovariate | None = None,
        stderr: bool = True,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.spatial = tuple(spatial)
        self.estimator = estimator
        #: The covariate in use (None: the centred or the paper's estimator).
        self.covariate = covariate if estimator == "covariate" else None
        cov = self.covariate is not None
        self._q, self._r, n_scalars = _COLUMNS[cov]
        #: Where the centred error's columns start in the first-moment sums (None: paper).
        self._extra_at: int | None = None
        if estimator != "paper" and stderr:
            self._extra_at = self._q
            self._q += _CENTRED_EXTRA[cov][0]
            n_scalars += _CENTRED_EXTRA[cov][1]
        self.p = float(p_keep)
        self.dtype = accumulation_dtype(device)
        self.n_vox = math.prod(self.spatial)
        # the closed blocks' totals (None until a block closes: a run of one block never
        # fills, adds or copies them)
        self.s1: torch.Tensor | None = None
        self.s2: torch.Tensor | None = None
        self.n = 0
        self.n_even = 0
        # the sums of the open block (see blocks.py): the totals are closed blocks only
        self._b1 = torch.zeros(self._q, self.n_vox, dtype=self.dtype, device=device)
        self._b2 = torch.zeros(self._r, self.n_vox, dtype=self.dtype, device=device)
        self._closed_w = [0.0] * n_scalars  # the scalar sums of the closed blocks
        self._open_w = [0.0] * n_scalars
        self._open_n = [0, 0]
        self.collect = False  # keep every closed block for take_blocks (split runs)
        self._collected: list[SumBlock] = []
        self._stage: tuple[torch.Tensor, torch.Tensor] | None = None
        self._staged = 0
        self._square: torch.Tensor | None = None
        self._factored: FactoredSums | None = None
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None  # _sums() until a change

    # ------------------------------------------------------------------ updates
    def update(self, batch: MaskBatch, weights: torch.Tensor) -> None:
        """Add a chunk: the batch's masks ``(B, 1, *sp)`` with their weights ``(B,)``."""
        start, masks = batch.start, batch.masks
        self._cached = None
        b = masks.shape[0]
        m = masks.reshape(b, -1)
        if m.element_size() < 4:  # half-precision models: sum in float32 at least
            m = m.float()
        w = weights.to(m.dtype)
        even = (torch.arange(start, start + b, device=w.device) % 2 == 0).to(w.dtype)
        wd = weights.double()
        n_even = (b + 1 - start % 2) // 2  # even indices in start .. start + b - 1
        cols1 = [w, torch.ones_like(w), w * even, even]
        cols2 = [w * w, w, torch.ones_like(w)]
        ev = even.double()
        scalars = [wd, wd * ev]
        if self.covariate is not None:
            phi = self.covariate.features(m)
            f = phi.to(m.dtype)
            cols1 += [f, f * even]
            cols2 += [f * f, f, w * f]
            for x in (phi, phi * phi, wd * phi):  # each with its even-indexed part
                scalars += [x, x * ev]
        if self._extra_at is not None:  # the centred estimators' standard error
            cols1 += [w * w] + ([f * f, w * f] if self.covariate is not None else [])
            scalars += [wd * wd, wd * wd * ev]
        for k, total in enumerate(torch.stack(scalars).sum(dim=1).tolist()):
            self._open_w[k] += total
        self._open_n[0] += b
        self._open_n[1] += n_even
        self.n_even += n_even
        self.n += b
        c1 = torch.stack(cols1, dim=1)  # (b, first-moment columns)
        c2 = torch.stack(cols2, dim=1)  # (b, second-moment columns)
        parts = batch.factors
        if parts is not None and parts[1].dtype == m.dtype:
            self._add_factors(*parts, c1, c2)
        else:
            self._add_masks(m, c1, c2)
        if batch.stop // SUM_BLOCK > batch.start // SUM_BLOCK:  # the chunk ends a block
            self._close_block(batch.start // SUM_BLOCK)

    def _add_masks(self, m: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> None:
        """Add a chunk of flat masks ``(b, voxels)`` to the staging buffers."""
        if self._stage is None or self._stage[0].dtype != m.dtype:
            self._flush()
            self._stage = (
                torch.zeros_like(self._b1, dtype=m.dtype),
                torch.zeros_like(self._b2, dtype=m.dtype),
            )
        if self._square is None or self._square.shape != m.shape:
            self._square = torch.empty_like(m)
        t1, t2 = self._stage
        t1.addmm_(c1.T, m)
        t2.addmm_(c2.T, torch.mul(m, m, out=self._square))
        self._staged += m.shape[0]
        if self._staged >= self.FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._stage is None or self._staged == 0:
            return
        t1, t2 = self._stage
        self._b1.add_(t1)
        self._b2.add_(t2)
        t1.zero_()
        t2.zero_()
        self._staged = 0

    def _add_factors(self, lmat, y, c1, c2) -> None:
        """Hold one chunk's factors (see :mod:`~.factor_sums`) until their products."""
        n, rows, k = lmat.shape
        held = self._factored
        if held is None or held.key != (rows, k, y.shape[2], y.dtype) or n > held.cap:
            if held is not None:
                held.lift(self._b1, self._b2)
            # the grouped sums may take as much memory as the open block's sums
            budget = max(self.PENDING_BYTES, self._b1.nbytes + self._b2.nbytes)
            held = self._factored = FactoredSums(
                lmat, y, self._q, self._r, n, self.FLUSH_EVERY, self.PENDING_BYTES, budget
            )
        held.add(lmat, y, c1, c2, self._b1, self._b2)

    @property
    def _pending_n(self) -> int:
        return 0 if self._factored is None else self._factored.n

    def finish(self, workers: int = 1) -> Iterator[int]:
        """At the end of the run: add what is held to the open block's sums, in place.

        The last snapshot then reads the sums without copying them (the loop calls this
        before it; a generator with nothing to yield). ``workers`` is not used here.
        """
        self.settle()
        yield from ()

    def before_last_chunk(self) -> None:
        """The loop is about to sum the task's last chunk: :meth:`settle` if the sums are large.

        Both loops call it at that point (see :func:`~.pipeline.settle_before_last`), the
        pipelined one while the last model call runs, so that :meth:`finish` has only that
        chunk left to add: on a 64×96×96 volume the full-size products of the held factors
        took 100–160 ms, about one model call of a 3D U-Net. Below
        :data:`EARLY_SETTLE_VOXELS` they cost little and are left for :meth:`finish`, so the
        sums of a small image do not depend on where the last chunk starts.
        """
        if self.n_vox >= EARLY_SETTLE_VOXELS:
            self.settle()

    def settle(self) -> None:
        """Everything staged or held added to the open block's sums (the map is unchanged)."""
        self._cached = None
        self._flush()
        if self._factored is not None:
            self._factored.lift(self._b1, self._b2)

    # ------------------------------------------------------------------ blocks
    @property
    def w_sum(self) -> float:
        """Sum of the weights (closed blocks in order, then the open one)."""
        return self._closed_w[0] + self._open_w[0]

    @property
    def w_even(self) -> float:
        """Sum of the even-indexed masks' weights."""
        return self._closed_w[1] + self._open_w[1]

    def _open(self) -> tuple[torch.Tensor, torch.Tensor]:
        # the open block with what waits added to copies (snapshots never change the sums)
        b1, b2 = self._b1, self._b2
        if self._stage is not None and self._staged:
            b1, b2 = b1 + self._stage[0], b2 + self._stage[1]
        if self._pending_n:
            b1, b2 = self._factored.added_to(b1, b2)
        return b1, b2

    def _close_block(self, index: int) -> None:
        self.settle()
        if self.collect:
            self._collected.append(self._block(index, self._b1.clone(), self._b2.clone(), True))
        self._add_block_sums(self._b1, self._b2, self._open_w)
        self._b1.zero_()
        self._b2.zero_()
        self._open_w, self._open_n = [0.0] * len(self._open_w), [0, 0]

    def _block(self, index: int, b1, b2, complete: bool) -> SumBlock:
        n, n_even = self._open_n
        w_sum, w_even, *rest = self._open_w
        return SumBlock(index, b1, b2, n, n_even, w_sum, w_even, complete, tuple(rest))

    def _add_block_sums(self, b1: torch.Tensor, b2: torch.Tensor, w: list[float]) -> None:
        if self.s1 is None:
            self.s1, self.s2 = b1.clone(), b2.clone()
        else:
            self.s1.add_(b1)
            self.s2.add_(b2)
        self._closed_w = [a + b for a, b in zip(self._closed_w, w, strict=True)]

    def take_blocks(self) -> list[SumBlock]:
        """The blocks closed since ``collect`` was set, then the open one (``complete=False``).

        Adding them in order to an empty accumulator (:meth:`add_block`) reproduces this
        one's sums bit for bit. Clears the collected blocks.
        """
        out, self._collected = self._collected, []
        if self._open_n[0]:
            b1, b2 = self._open()
            out.append(self._block(-1, b1.clone(), b2.clone(), False))
        return out

    def add_block(self, block: SumBlock) -> None:
        """Add a block taken from another accumulator of the same run, in mask order.

        A complete block is added to the totals as closing it would; an open block (the
        last of a run) becomes this accumulator's open block, which must be empty.
        """
        b1, b2 = block.s1.to(self._b1.device), block.s2.to(self._b2.device)
        scalars = [block.w_sum, block.w_even, *block.moments]
        if b1.shape != self._b1.shape or len(scalars) != len(self._open_w):
            raise ValueError("the block was summed with another estimator or covariate")
        self._cached = None
        self.n += block.n
        self.n_even += block.n_even
        if block.complete:
            self._add_block_sums(b1, b2, scalars)
            return
        if self._open_n[0] or self._staged or self._pending_n:
            raise ValueError("an open block can only be added after every complete block")
        self._b1.copy_(b1)
        self._b2.copy_(b2)
        self._open_w, self._open_n = scalars, [block.n, block.n_even]

    def coverage(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ mᵢ`` per voxel, flat: over all masks and over the even-indexed ones."""
        s1 = self._sums()[0]
        return s1[1], s1[3]

    def _sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        # the closed blocks' totals plus the open block, always in this order; kept until
        # the next change (a snapshot asks for them three times: map, error, halves)
        if not self._open_n[0]:
            return (self._b1, self._b2) if self.s1 is None else (self.s1, self.s2)
        if self._cached is None:
            b1, b2 = self._open()
            self._cached = (b1, b2) if self.s1 is None else (self.s1 + b1, self.s2 + b2)
        return self._cached

    # ------------------------------------------------------------------ estimates
    def _moments(self, half: str = "all") -> Moments:
        """The first-moment sums of all masks, or of the ``"even"`` or ``"odd"`` half."""
        s1, _ = self._sums()
        w = [a + b for a, b in zip(self._closed_w, self._open_w, strict=True)]
        cov = self.covariate is not None
        if half == "all":
            sums, n, sc = (s1[0], s1[1], s1[4] if cov else None), self.n, w[0::2]
        elif half == "even":
            sums, n, sc = (s1[2], s1[3], s1[5] if cov else None), self.n_even, w[1::2]
        else:
            phi = s1[4] - s1[5] if cov else None
            sums, n = (s1[0] - s1[2], s1[1] - s1[3], phi), self.n - self.n_even
            sc = [a - b for a, b in zip(w[0::2], w[1::2], strict=True)]
        cov_sc = sc[1:4] if cov else []
        out = Moments(sums[0], sums[1], n, sc[0], sums[2], *cov_sc)
        if half == "all" and self._extra_at is not None:
            k = self._extra_at
            out.s_w2, out.w2 = s1[k], sc[-1]
            if cov:
                out.s_phi2, out.s_wphi = s1[k + 1], s1[k + 2]
        return out

    def _estimate(self, m: Moments) -> torch.Tensor:
        cov = None if self.covariate is None else self.covariate.cov.to(m.s_w)
        return estimate(m, self.p, self.estimator, cov)

    def mean(self) -> torch.Tensor:
        """The current map, flat."""
        return self._estimate(self._moments())

    def slope(self) -> float:
        """The covariate's least-squares slope over all masks (0 without a covariate)."""
        return slope(self._moments()) if self.covariate is not None else 0.0

    def stderr(self) -> torch.Tensor | None:
        """Per-voxel standard error of the current map (None before two masks).

        See :func:`~.sum_estimates.standard_error`.
        """
        if self.n < 2:
            return None
        _, s2 = self._sums()
        return standard_error(self._moments(), s2, self.p, self.estimator)

    def halves(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The maps of the even- and the odd-indexed masks (None before two of each).

        Each half's map is computed from its own sums alone (its own mean weight and slope).
        """
        n_even, n_odd = self.n_even, self.n - self.n_even
        if n_even < 2 or n_odd < 2:
            return None
        return self._estimate(self._moments("even")), self._estimate(self._moments("odd"))

    def reliability(self) -> float | None:
        """Predicted correlation of this map with one from another seed (split halves)."""
        halves = self.halves()
        return None if halves is None else split_half_reliability(*halves)

    def partial(self) -> Partial:
        """Map, standard error and reliability, shaped like the image."""
        se = self.stderr()
        return Partial(
            map=self.mean().reshape(self.spatial),
            stderr=None if se is None else se.reshape(self.spatial),
            reliability=self.reliability(),
        )
