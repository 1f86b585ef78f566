"""Running sums that give an unbiased saliency map after every chunk.

An accumulator receives chunks of ``(start, masks (B, 1, *sp), scores)`` and can be asked
for a :class:`Partial` at any time: the map estimated from the masks seen so far, its
per-voxel standard error where one is defined, and named extra maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["DistanceGrid", "Partial", "WeightedSum", "accumulation_dtype"]


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (everywhere but Apple's MPS), else float32."""
    return torch.float32 if device.type == "mps" else torch.float64


@dataclass
class Partial:
    """What an accumulator knows so far (tensors on the device, flat or spatial)."""

    map: torch.Tensor
    stderr: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class WeightedSum:
    """RISE estimate ``S = Σ wᵢ mᵢ / (n p)`` and its per-voxel standard error.

    With ``Xᵢ = wᵢ mᵢ / p`` the map is the sample mean of the ``Xᵢ``, an unbiased estimate
    of ``E[w m] / p`` after any number ``n`` of masks; the standard error is
    ``sqrt(var(X) / n)`` with the unbiased sample variance.

    Parameters
    ----------
    spatial
        The spatial shape of the masks.
    p_keep
        The masks' keep probability ``p``.
    device
        Where the sums live.
    factors
        Optional ``masks -> (L, Y) | None`` giving the masks as products of two small
        factors (see :meth:`~maskscope.engine.masks.RiseMasks.factors`). The sums are then
        products of the factors, and the full-size masks are not read again: with
        ``m = L @ Y`` and at most two adjacent weights per row of ``L``,
        ``m² = L² @ Y² + 2 (L₀ L₁) @ (Y₀ Y₁)`` over neighbouring rows of ``Y``.
    """

    #: Masks summed in the staging buffers before they are added to the running sums.
    FLUSH_EVERY = 64
    #: Bytes of pending factors (factored sums) that trigger their product.
    PENDING_BYTES = 16 * 2**20

    def __init__(
        self,
        spatial: tuple[int, ...],
        p_keep: float,
        device: torch.device,
        factors: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None] | None = None,
    ) -> None:
        self.spatial = tuple(spatial)
        self.factors = factors
        self.p = float(p_keep)
        self.dtype = accumulation_dtype(device)
        n_vox = math.prod(self.spatial)
        self.s1 = torch.zeros(n_vox, dtype=self.dtype, device=device)
        self.s2 = torch.zeros(n_vox, dtype=self.dtype, device=device)
        self.n = 0
        # full-size masks: chunk sums go in place into staging buffers in the masks'
        # precision (no new arrays, no type promotion per chunk), flushed every few masks
        self._stage: tuple[torch.Tensor, torch.Tensor] | None = None
        self._staged = 0
        self._square: torch.Tensor | None = None
        # factored masks: the small factors wait in buffers, then one product per many masks
        self._pending: tuple[torch.Tensor, ...] | None = None
        self._pending_n = 0
        self._cap = 0
        self._key: tuple | None = None

    def update(self, start: int, masks: torch.Tensor, weights: torch.Tensor) -> None:
        """Add a chunk: ``masks (B, 1, *sp)`` with weights ``(B,)``."""
        b = masks.shape[0]
        m = masks.reshape(b, -1)
        if m.element_size() < 4:  # half-precision models: sum in float32 at least
            m = m.float()
        w = weights.to(m.dtype)
        parts = self.factors(masks) if self.factors is not None else None
        self.n += b
        if parts is not None and parts[1].dtype == m.dtype:
            self._add_factors(*parts, w)
            return
        if self._stage is None or self._stage[0].dtype != m.dtype:
            self._flush()
            self._stage = (
                torch.zeros_like(self.s1, dtype=m.dtype),
                torch.zeros_like(self.s2, dtype=m.dtype),
            )
        if self._square is None or self._square.shape != m.shape:
            self._square = torch.empty_like(m)
        t1, t2 = self._stage
        t1.addmv_(m.T, w)
        t2.addmv_(torch.mul(m, m, out=self._square).T, w * w)
        self._staged += b
        if self._staged >= self.FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._stage is None or self._staged == 0:
            return
        t1, t2 = self._stage
        self.s1.add_(t1)
        self.s2.add_(t2)
        t1.zero_()
        t2.zero_()
        self._staged = 0

    def _add_factors(self, lmat: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
        """Write one chunk's factor blocks (see :func:`_factor_blocks`) into the buffers."""
        n, rows, k = lmat.shape
        rest = y.shape[2]
        if self._pending is None or self._key != (rows, k, rest, y.dtype) or n > self._cap:
            self._flush_factors()
            # room for as many masks as fit PENDING_BYTES (at least one chunk)
            per_mask = (3 * k - 1) * (rows + rest) * y.element_size()
            cap = max(n, min(self.FLUSH_EVERY, self.PENDING_BYTES // per_mask))
            new = lmat.new_empty
            self._key = (rows, k, rest, y.dtype)
            self._pending = (
                new((rows, cap * k)),
                new((cap * k, rest)),
                new((rows, cap * (2 * k - 1))),
                new((cap * (2 * k - 1), rest)),
            )
            self._cap = cap
        if self._pending_n + n > self._cap:
            self._flush_factors()
        a1, b1, a2, b2 = self._pending
        i, j = self._pending_n * k, self._pending_n * (2 * k - 1)
        _factor_blocks(
            lmat,
            y,
            w,
            a1[:, i : i + n * k].view(rows, n, k),
            b1[i : i + n * k].view(n, k, rest),
            a2[:, j : j + n * (2 * k - 1)].view(rows, n, 2 * k - 1),
            b2[j : j + n * (2 * k - 1)].view(n, 2 * k - 1, rest),
        )
        self._pending_n += n
        if self._pending_n >= self._cap:
            self._flush_factors()

    def _pending_products(self) -> tuple[torch.Tensor, torch.Tensor]:
        a1, b1, a2, b2 = self._pending
        k = self._key[1]
        i, j = self._pending_n * k, self._pending_n * (2 * k - 1)
        p1 = torch.mm(a1[:, :i], b1[:i]).reshape(-1)
        p2 = torch.mm(a2[:, :j], b2[:j]).reshape(-1)
        return p1, p2

    def _flush_factors(self) -> None:
        if self._pending is None or self._pending_n == 0:
            return
        p1, p2 = self._pending_products()
        self.s1.add_(p1)
        self.s2.add_(p2)
        self._pending_n = 0

    def _sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        # what waits is added to copies: when snapshots are taken never changes the sums
        s1, s2 = self.s1, self.s2
        if self._stage is not None and self._staged:
            s1, s2 = s1 + self._stage[0], s2 + self._stage[1]
        if self._pending is not None and self._pending_n:
            p1, p2 = self._pending_products()
            s1, s2 = s1 + p1, s2 + p2
        return s1, s2

    def mean(self) -> torch.Tensor:
        """The current map, flat."""
        return self._sums()[0] / (max(self.n, 1) * self.p)

    def stderr(self) -> torch.Tensor | None:
        """Per-voxel standard error of the current map (None before two masks)."""
        n = self.n
        if n < 2:
            return None
        s1, s2 = self._sums()
        mean_x = s1 / (n * self.p)
        mean_x2 = s2 / (n * self.p * self.p)
        var = (mean_x2 - mean_x * mean_x).clamp(min=0.0) * (n / (n - 1))
        return torch.sqrt(var / n)

    def partial(self) -> Partial:
        """Map and standard error, shaped like the image."""
        se = self.stderr()
        return Partial(
            map=self.mean().reshape(self.spatial),
            stderr=None if se is None else se.reshape(self.spatial),
        )


def _factor_blocks(
    lmat: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    a1: torch.Tensor,
    b1: torch.Tensor,
    a2: torch.Tensor,
    b2: torch.Tensor,
) -> None:
    """Write blocks with ``A1 @ B1 = Σ wᵢ mᵢ`` and ``A2 @ B2 = Σ wᵢ² mᵢ²``, ``mᵢ = Lᵢ @ Yᵢ``.

    ``L (n, rows, k)``, ``Y (n, k, rest)``; outputs ``a1 (rows, n, k)``, ``b1 (n, k,
    rest)``, ``a2 (rows, n, 2k-1)``, ``b2 (n, 2k-1, rest)`` (views into the buffers, whose
    products are ``(rows, rest)``). Only neighbouring weights of a row of L are non-zero
    together, so ``m² = L² Y² + 2 (L₀ L₁)(Y₀ Y₁)`` over neighbouring rows of Y.
    """
    n, _, k = lmat.shape
    lt = lmat.permute(1, 0, 2)
    a1.copy_(lt)
    torch.mul(y, w.view(n, 1, 1), out=b1)
    torch.mul(lt, lt, out=a2[:, :, :k])
    torch.mul(lt[:, :, :-1], lt[:, :, 1:], out=a2[:, :, k:]).mul_(2.0)
    w2 = (w * w).view(n, 1, 1)
    torch.mul(y, y, out=b2[:, :k]).mul_(w2)
    torch.mul(y[:, :-1], y[:, 1:], out=b2[:, k:]).mul_(w2)


def _apply_separable(values: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
    """Apply one ``(size, count)`` matrix per axis: grid ``(c0, c1, ...)`` → ``(n0, n1, ...)``."""
    out = values
    for m in mats:
        out = torch.tensordot(out, m, dims=([0], [1]))  # contracts the leading axis, appends
    return out


class DistanceGrid:
    """HDM's per-centre distances and their full-resolution views.

    Views (per centre, then linearly interpolated between centres to every voxel):
    ``raw`` distance ``d``; ``better_only`` = ``baseline − min(d, baseline)`` (occluding here
    brought the output closer to the reference); ``worse_only`` = ``max(d, baseline) −
    baseline``. Before every centre is visited, unvisited centres take the value of the
    nearest visited one, so a coarse-to-fine sweep gives a low-resolution map at once.

    Parameters
    ----------
    grid
        The sweep's :class:`~maskscope.engine.occlusion.CentreGrid`.
    baseline
        Distance of the unperturbed output to the reference.
    """

    def __init__(self, grid, baseline: float) -> None:
        self.grid = grid
        self.baseline = float(baseline)
        dev = grid.device
        self.values = torch.full((grid.n_centres,), math.nan, dtype=torch.float64, device=dev)
        self.visited = torch.zeros(grid.n_centres, dtype=torch.bool, device=dev)
        self.mats = grid.interpolation_matrices()
        self.n = 0

    def update(self, start: int, masks: torch.Tensor, scores: torch.Tensor) -> None:
        """Record the distances of visits ``start .. start + B - 1``."""
        idx = self.grid.order[start : start + masks.shape[0]]
        self.values[idx] = scores.double()
        self.visited[idx] = True
        self.n += masks.shape[0]

    def _filled(self) -> torch.Tensor:
        counts = self.grid.counts
        vals = self.values.reshape(counts)
        if bool(self.visited.all()) or not bool(self.visited.any()):
            return torch.nan_to_num(vals, nan=self.baseline)
        from scipy import ndimage

        missing = (~self.visited).reshape(counts).cpu().numpy()
        _, nearest = ndimage.distance_transform_edt(missing, return_indices=True)
        flat = np.ravel_multi_index(tuple(nearest), counts)
        return self.values[torch.from_numpy(flat).to(self.values.device)].reshape(counts)

    def partial(self) -> Partial:
        """Full-resolution raw / better-only / worse-only maps and the per-centre grids."""
        filled = self._filled()
        better = (self.baseline - filled).clamp(min=0.0)
        worse = (filled - self.baseline).clamp(min=0.0)
        counts = self.grid.counts
        raw_grid = self.values.reshape(counts)
        unvisited = ~self.visited.reshape(counts)
        nan = torch.tensor(math.nan, dtype=torch.float64, device=raw_grid.device)
        return Partial(
            map=_apply_separable(filled, self.mats),
            extras={
                "better_only": _apply_separable(better, self.mats),
                "worse_only": _apply_separable(worse, self.mats),
                "grid_raw": raw_grid.clone(),
                "grid_better_only": torch.where(unvisited, nan, better),
                "grid_worse_only": torch.where(unvisited, nan, worse),
            },
        )
