"""SegRISE: RISE masks weighted by the overlap (Dice) of perturbed and reference segmentations."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._engine.loop import Task
from .._engine.params import param
from .._engine.scores import (
    OVERLAP_SCORES,
    PreparedReference,
    get_overlap_score,
    segmentation,
)
from .base import Method
from .context import Context
from .rise import RISEParams, rise_task

__all__ = ["SegRISE", "SegRISEParams"]


@dataclass
class SegRISEParams(RISEParams):
    """RISE mask parameters plus the overlap score."""

    score: str = param(
        "dice",
        help="Overlap between the perturbed and the reference segmentation used as weight.",
        choices=tuple(OVERLAP_SCORES),
    )


class SegRISE(Method):
    """Dice-weighted RISE for segmentation models.

    Each mask is weighted by the hard Dice (or IoU) between the model's segmentation of the
    masked input and the reference segmentation, for the target class or averaged over the
    foreground classes (``target=None``). Regions whose presence keeps the segmentation
    intact get high saliency. Classes empty in both segmentations are left out of the
    average, and a mask whose segmentation matches an all-empty reference scores 1: Dice
    is never NaN (see :mod:`maskscope._engine.scores`).
    """

    name = "SegRISE"
    exact_crop = True
    Params = SegRISEParams
    target_none_means_all = True

    def make_task(self, ctx: Context, params: SegRISEParams) -> Task:
        """Random masks weighted by the overlap score."""
        overlap = get_overlap_score(params.score)
        reference, classes, kind = ctx.reference, ctx.classes(), ctx.kind
        builtin = overlap in OVERLAP_SCORES.values()
        if builtin:  # the built-ins take the prepared reference
            reference = PreparedReference(reference, classes)

        def score(out: torch.Tensor) -> torch.Tensor:
            labels = segmentation(out, kind)
            if builtin and out.shape[1] <= 2:  # 0/1 labels: as booleans, no comparisons
                labels = labels.view(torch.bool)
            return overlap(labels, reference, classes)

        return rise_task(ctx, params, score)
