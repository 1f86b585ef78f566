"""Running sums that give an unbiased saliency map after every chunk.

An accumulator receives chunks as ``(MaskBatch, scores)`` and can be asked
for a :class:`Partial` at any time: the map estimated from the masks seen so far, its
per-voxel standard error and reliability where they are defined, and named extra maps.
The RISE family's sums are in :mod:`maskscope._engine.weighted_sum`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .mask_batch import MaskBatch

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
    #: Predicted correlation with the map of another seed (None where undefined).
    reliability: float | None = None


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
        The sweep's :class:`~maskscope._engine.occlusion.CentreGrid`.
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

    #: A sweep visits every centre once: there is no standard error.
    has_stderr = False

    def update(self, batch: MaskBatch, scores: torch.Tensor) -> None:
        """Record the distances of the batch's visits."""
        idx = self.grid.order[batch.start : batch.stop]
        self.values[idx] = scores.double()
        self.visited[idx] = True
        self.n += len(batch)

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


from .weighted_sum import WeightedSum  # noqa: E402  (needs Partial, defined above)
