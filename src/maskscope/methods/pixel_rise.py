"""PixelRISE: one RISE map per pixel of the target segment, merged by mean or max."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._engine.loop import Task
from .._engine.params import param
from .._engine.pixel_max import PixelMax
from .._engine.scores import pixel_probabilities
from .base import Method
from .context import Context
from .rise import RISEParams, rise_task

__all__ = ["PixelRISE", "PixelRISEParams"]


@dataclass
class PixelRISEParams(RISEParams):
    """RISE mask parameters plus how the per-pixel maps are merged."""

    merge: str = param(
        "mean",
        help="Merge the per-pixel maps by their mean (one pass) or their max.",
        choices=("mean", "max"),
    )
    max_of: str = param(
        "gain",
        help="merge='max': the max over the segment pixels of how much each pixel's "
        "probability rises when a voxel is kept ('gain': its map less its mean), or of the "
        "pixels' maps themselves ('map', as interpret-segmentation merges them: the pixels "
        "with the highest probability then decide the max everywhere).",
        choices=("gain", "map"),
    )
    max_pixels: int | None = param(
        4096,
        help="Segment pixels explained with merge='max' (evenly spread over the segment "
        "when it is larger, the same for every seed; None = all).",
        min=1,
    )
    max_memory_mb: int = param(
        512,
        help="Memory for the per-pixel sums of merge='max' (larger segments go in slabs).",
        min=1,
        gui=False,
    )


class PixelRISE(Method):
    """RISE with one score per pixel of the target segment.

    The score of pixel *j* for mask *i* is the probability of the target class at *j*. The
    per-pixel maps ``Σᵢ s_ij mᵢ / (N p)`` are merged by their mean (identical to RISE with
    the segment's mean probability: one pass, no per-pixel storage) or by their maximum
    (exact: per-pixel sums within ``max_memory_mb``, never re-running the model): by
    default the maximum of each pixel's gain, its map less its mean score (``max_of``).
    A max-merged result also carries the mean-merged map as ``extras["mean"]``.
    """

    name = "PixelRISE"
    exact_crop = True
    Params = PixelRISEParams

    def make_task(self, ctx: Context, params: PixelRISEParams) -> Task:
        """Random masks, per-pixel scores, mean or max merge."""
        index = ctx.region().flatten().nonzero().squeeze(1)
        target, kind = ctx.target, ctx.kind
        if params.merge == "mean":

            def score(out: torch.Tensor) -> torch.Tensor:
                return pixel_probabilities(out, index, target, kind).mean(dim=1)

            return rise_task(ctx, params, score)
        if params.max_pixels is not None and index.numel() > params.max_pixels:
            # the same pixels for every seed: another seed changes the masks only, so that
            # seed agreement (and the split-half reliability) measure the masks' noise
            keep = np.unique(np.linspace(0, index.numel() - 1, params.max_pixels).round())
            index = index[torch.from_numpy(keep.astype(np.int64)).to(index.device)]

        def pixel_scores(out: torch.Tensor) -> torch.Tensor:
            return pixel_probabilities(out, index, target, kind)

        def make_accumulator(masks) -> PixelMax:
            # every per-pixel map is centred, and so is the mean-merge kept beside them
            return PixelMax(
                ctx.spatial,
                index.numel(),
                params.p_keep,
                params.n_masks,
                masks,
                ctx.device,
                max_bytes=params.max_memory_mb * 2**20,
                estimator=params.estimator,
                gain=params.max_of == "gain",
            )

        return rise_task(ctx, params, pixel_scores, make_accumulator)
