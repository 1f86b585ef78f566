"""Running sums that give an unbiased saliency map after every chunk.

An accumulator receives chunks of ``(start, masks (B, 1, *sp), scores)`` and can be asked
for a :class:`Partial` at any time: the map estimated from the masks seen so far, its
per-voxel standard error where one is defined, and named extra maps.
"""

from __future__ import annotations

import math
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
    """

    #: Masks summed in the staging buffers before they are added to the running sums.
    FLUSH_EVERY = 64

    def __init__(self, spatial: tuple[int, ...], p_keep: float, device: torch.device) -> None:
        self.spatial = tuple(spatial)
        self.p = float(p_keep)
        self.dtype = accumulation_dtype(device)
        n_vox = math.prod(self.spatial)
        self.s1 = torch.zeros(n_vox, dtype=self.dtype, device=device)
        self.s2 = torch.zeros(n_vox, dtype=self.dtype, device=device)
        self.n = 0
        # chunk sums go in place into staging buffers in the masks' precision (no new
        # arrays, no type promotion per chunk) and reach the running sums every few masks
        self._stage: tuple[torch.Tensor, torch.Tensor] | None = None
        self._staged = 0
        self._square: torch.Tensor | None = None

    def update(self, start: int, masks: torch.Tensor, weights: torch.Tensor) -> None:
        """Add a chunk: ``masks (B, 1, *sp)`` with weights ``(B,)``."""
        m = masks.reshape(masks.shape[0], -1)
        if m.element_size() < 4:  # half-precision models: sum in float32 at least
            m = m.float()
        w = weights.to(m.dtype)
        if self._stage is None or self._stage[0].dtype != m.dtype:
            self._flush()
            self._stage = (
                torch.zeros_like(self.s1, dtype=m.dtype),
                torch.zeros_like(self.s2, dtype=m.dtype),
            )
        if self._square is None or self._square.shape != m.shape or self._square.dtype != m.dtype:
            self._square = torch.empty_like(m)
        t1, t2 = self._stage
        t1.addmv_(m.T, w)
        t2.addmv_(torch.mul(m, m, out=self._square).T, w * w)
        self._staged += masks.shape[0]
        self.n += masks.shape[0]
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

    def _sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        # the staged part is added to copies: when snapshots are taken never changes the sums
        if self._stage is None or self._staged == 0:
            return self.s1, self.s2
        return self.s1 + self._stage[0], self.s2 + self._stage[1]

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
