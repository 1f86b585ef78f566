"""Running sums that give an unbiased saliency map after every chunk.

An accumulator receives chunks of ``(start, masks (B, 1, *sp), scores)`` and can be asked
for a :class:`Partial` at any time: the map estimated from the masks seen so far, its
per-voxel standard error where one is defined, and named extra maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["DistanceGrid", "Partial", "PixelMax", "WeightedSum", "accumulation_dtype"]


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

    def __init__(self, spatial: tuple[int, ...], p_keep: float, device: torch.device) -> None:
        self.spatial = tuple(spatial)
        self.p = float(p_keep)
        self.dtype = accumulation_dtype(device)
        n_vox = math.prod(self.spatial)
        self.s1 = torch.zeros(n_vox, dtype=self.dtype, device=device)
        self.s2 = torch.zeros(n_vox, dtype=self.dtype, device=device)
        self.n = 0

    def update(self, start: int, masks: torch.Tensor, weights: torch.Tensor) -> None:
        """Add a chunk: ``masks (B, 1, *sp)`` with weights ``(B,)``."""
        # chunk sums in the masks' precision, running sums in float64
        m = masks.reshape(masks.shape[0], -1)
        if m.element_size() < 4:  # half-precision models: sum in float32 at least
            m = m.float()
        w = weights.to(m.dtype)
        self.s1.add_(w @ m)
        self.s2.add_((w * w) @ (m * m))
        self.n += masks.shape[0]

    def mean(self) -> torch.Tensor:
        """The current map, flat."""
        return self.s1 / (max(self.n, 1) * self.p)

    def stderr(self) -> torch.Tensor | None:
        """Per-voxel standard error of the current map (None before two masks)."""
        n = self.n
        if n < 2:
            return None
        mean_x = self.s1 / (n * self.p)
        mean_x2 = self.s2 / (n * self.p * self.p)
        var = (mean_x2 - mean_x * mean_x).clamp(min=0.0) * (n / (n - 1))
        return torch.sqrt(var / n)

    def partial(self) -> Partial:
        """Map and standard error, shaped like the image."""
        se = self.stderr()
        return Partial(
            map=self.mean().reshape(self.spatial),
            stderr=None if se is None else se.reshape(self.spatial),
        )


class PixelMax:
    """Max-merge of per-pixel RISE maps: ``max_j Σᵢ s_ij mᵢ / (n p)`` over P pixels.

    The exact result needs, for every one of the P pixels, its own weighted sum over all
    voxels. When the ``P × voxels`` accumulator fits in ``max_bytes`` it is kept whole and
    updated per chunk, so every snapshot is the exact max-merge of the masks so far.
    Otherwise the pixels are split in tiles that fit: the first tile is accumulated during
    the model pass (snapshots show the max over that tile), the scores of all masks are kept
    (``n × P``, small), and :meth:`finish` regenerates the masks (no model calls) for each
    further tile. The model is never run more than once per mask.

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
        ``(start, stop) -> (b, 1, *sp)``: regenerates masks for the extra tiles.
    device
        Where the sums live.
    max_bytes
        Memory budget of the accumulator.
    chunk
        Masks per product when regenerating.
    """

    def __init__(
        self,
        spatial: tuple[int, ...],
        n_pixels: int,
        p_keep: float,
        n_total: int,
        masks: Callable[[int, int], torch.Tensor],
        device: torch.device,
        max_bytes: int = 512 * 2**20,
        chunk: int = 64,
    ) -> None:
        self.spatial = tuple(spatial)
        self.n_vox = math.prod(self.spatial)
        self.p = float(p_keep)
        self.n_pixels = int(n_pixels)
        self.masks_fn = masks
        self.chunk = int(chunk)
        self.device = device
        per_pixel = self.n_vox * 4
        self.tile = max(1, min(self.n_pixels, max_bytes // per_pixel))
        self.n_tiles = math.ceil(self.n_pixels / self.tile)
        self.acc = torch.zeros(self.tile, self.n_vox, dtype=torch.float32, device=device)
        self.scores = (
            torch.zeros(n_total, self.n_pixels, dtype=torch.float32, device=device)
            if self.n_tiles > 1
            else None
        )
        self.best: torch.Tensor | None = None  # running max over finished tiles (sums)
        self.tiles_done = 0
        self.n = 0
        self.mean_acc = WeightedSum(self.spatial, p_keep, device)

    def update(self, start: int, masks: torch.Tensor, scores: torch.Tensor) -> None:
        """Add a chunk: ``masks (B, 1, *sp)`` with pixel scores ``(B, P)``."""
        b = masks.shape[0]
        m = masks.reshape(b, -1).float()
        s = scores.float()
        if self.scores is not None:
            self.scores[start : start + b] = s
        self.acc.addmm_(s[:, : self.tile].T, m)
        self.mean_acc.update(start, masks, s.mean(dim=1))
        self.n += b

    def _current_max(self) -> torch.Tensor:
        cur = self.acc.amax(dim=0)
        return cur if self.best is None else torch.maximum(self.best, cur)

    def partial(self) -> Partial:
        """The max-merged map over the pixels accumulated so far (mean-merged as extra)."""
        value = self._current_max().double() / (max(self.n, 1) * self.p)
        mean = self.mean_acc.mean().reshape(self.spatial)
        return Partial(map=value.reshape(self.spatial), extras={"mean": mean})

    def finish(self) -> Iterator[int]:
        """Accumulate the remaining pixel tiles; yields the number of tiles done."""
        self.tiles_done = 1
        if self.scores is None:
            return
        self.scores = self.scores[: self.n]
        for t in range(1, self.n_tiles):
            self.best = self._current_max()
            lo, hi = t * self.tile, min((t + 1) * self.tile, self.n_pixels)
            acc = self.acc[: hi - lo]
            acc.zero_()
            for start in range(0, self.n, self.chunk):
                stop = min(start + self.chunk, self.n)
                m = self.masks_fn(start, stop).reshape(stop - start, -1).float()
                acc.addmm_(self.scores[start:stop, lo:hi].T, m)
            self.acc = acc
            self.tiles_done = t + 1
            yield self.tiles_done


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
