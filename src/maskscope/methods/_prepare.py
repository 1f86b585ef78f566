"""The input of a run checked and laid out before the model first runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._engine.cancel import CancelToken
from .._engine.inputs import (
    declared_channels,
    normalize_spacing,
    prepare_image,
    prepare_reference,
    resolve_slices,
    spacing_from_image,
)
from .._engine.loop import ModelRunner, RunOptions
from ..explanation import Explanation
from ..intensity import apply_normalization
from ._snapshots import RunRecord

__all__ = ["Prepared", "PreparedInput", "prepare_input"]


@dataclass(frozen=True)
class PreparedInput:
    """The image as the model sees it, and how it splits into tasks.

    Attributes
    ----------
    owned
        The run's own copy of the (normalised) image, ``(C, *spatial)``; never a view of
        the caller's memory.
    image
        ``owned`` in the model's dtype.
    reference
        The given reference label image ``(*spatial)``, or None (the model's prediction).
    spatial, spacing
        Spatial shape and voxel spacing of the whole input.
    spatial_dims
        The model's spatial dimensionality.
    sliced
        Whether a 2D model explains a volume slice by slice.
    indices
        One entry per task: None for a whole image, else the slice indices.
    """

    owned: torch.Tensor
    image: torch.Tensor
    reference: torch.Tensor | None
    spatial: tuple[int, ...]
    spacing: tuple[float, ...]
    spatial_dims: int
    sliced: bool
    indices: tuple[int | None, ...]

    @property
    def part_spatial(self) -> tuple[int, ...]:
        """Spatial shape of one task's input."""
        return self.spatial[1:] if self.sliced else self.spatial

    @property
    def part_spacing(self) -> tuple[float, ...]:
        """Voxel spacing of one task's input."""
        return self.spacing[1:] if self.sliced else self.spacing

    def reference_of(self, index: int | None) -> torch.Tensor | None:
        """The reference of one task."""
        if self.reference is None:
            return None
        return self.reference if index is None else self.reference[index]


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs, checked: the input, parameters, runner and reporting."""

    inp: PreparedInput
    params: Any
    options: RunOptions
    runner: ModelRunner
    n_per_task: int
    target: int | None
    record: RunRecord
    progress: bool | Callable[[Explanation], None]
    cancel: CancelToken | None
    #: Seconds between streamed snapshots; None streams none (only the last).
    yield_every: float | None
    #: Regions of interest, several targets, per-channel masks, crop frame
    #: (:class:`maskscope.methods._focus.Focus`), or None.
    focus: Any = None


def prepare_input(
    method,
    image: Any,
    reference: Any,
    slices: str | int | list[int],
    voxel_spacing: Any,
    normalize: str | Callable[[np.ndarray], np.ndarray],
    seed: int,
) -> PreparedInput:
    """Check and lay out ``image`` (and ``reference``) for ``method``'s model."""
    layout = prepare_image(
        image,
        method.spatial_dims,
        method.in_channels,
        declared_channels=declared_channels(method.model),
    )
    if callable(normalize) or normalize != "none":
        normed = apply_normalization(normalize, layout.image)
        layout = dataclasses.replace(layout, image=torch.from_numpy(normed))
    spatial = layout.spatial
    if not layout.slice_by_slice and not (isinstance(slices, str) and slices == "all"):
        raise ValueError(
            f"slices applies to a 2D model on a volume; this input is explained whole "
            f"({layout.spatial_dims}D model, spatial shape {spatial}), got slices={slices!r}"
        )
    if voxel_spacing is None:  # a MONAI MetaTensor knows its own
        voxel_spacing = spacing_from_image(image, len(spatial))
    spacing = normalize_spacing(voxel_spacing, len(spatial))
    ref = None if reference is None else prepare_reference(reference, spatial, n_classes=None)
    owned = layout.image.clone()
    if layout.slice_by_slice:
        indices = tuple(resolve_slices(slices, spatial[0]))
    else:
        indices = (None,)
    return PreparedInput(
        owned=owned,
        image=owned.to(method.dtype),
        reference=ref,
        spatial=tuple(spatial),
        spacing=tuple(spacing),
        spatial_dims=layout.spatial_dims,
        sliced=layout.slice_by_slice,
        indices=indices,
    )
