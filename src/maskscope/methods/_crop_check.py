"""Whether a margin given for crop mode is wide enough: the window's outputs in the ROI
against the whole image's.

With a margin below the model's receptive field, the model sees its own zero padding at
the window's edge where the whole image has voxels, and the ROI's outputs, hence every
score and the map, differ from a whole-image run's. Two forward passes tell: the model on
the whole image and on the window, both intact, compared on the ROI's voxels.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .._engine.scores import probabilities
from ._focus import whole_output

__all__ = ["MARGIN_TOLERANCE", "margin_difference", "warn_if_margin_too_small"]

#: Largest difference of a class probability in the ROI, window against whole image, that
#: a given margin may leave without a warning.
MARGIN_TOLERANCE = 1e-3


def margin_difference(
    method: Any,
    img: torch.Tensor,
    window: tuple[slice, ...],
    region: np.ndarray,
    whole: torch.Tensor | None = None,
) -> tuple[float | None, int]:
    """The largest difference of a class probability on ``region``'s voxels between the
    model's output on the window and on the whole image ``(C, *spatial)``, and the model
    calls made for it.

    ``whole``: the model's output on the whole image when it was computed already. The
    difference is None when a model call fails (the whole image may not fit in memory,
    which is what crop mode is for; a failure on the window is the run's to report).
    """
    calls = 0
    inner = (slice(None), slice(None), *window)
    try:
        if whole is None:
            whole = whole_output(method, img)
            calls += 1
        # the window's part only, to the CPU in float64: no full-size copy on the device
        w_whole = whole[inner].to("cpu", torch.float64)
        del whole
        part = whole_output(method, img[(slice(None), *window)])
        calls += 1
        w_part = part.to("cpu", torch.float64)
    except Exception:  # no check: the run itself reports a failure on the window
        return None, calls
    if w_part.shape != w_whole.shape:
        return None, calls
    inside = torch.from_numpy(np.ascontiguousarray(region[window]))
    p_whole = probabilities(w_whole, method.outputs)[0]
    p_part = probabilities(w_part, method.outputs)[0]
    diff = (p_whole - p_part)[:, inside]
    return (float(diff.abs().max()) if diff.numel() else 0.0), calls


def warn_if_margin_too_small(
    difference: float | None, margin: tuple[int, ...], stacklevel: int = 2
) -> None:
    """Warn when a given margin leaves the ROI's outputs off the whole image's."""
    if difference is None or difference <= MARGIN_TOLERANCE:
        return
    given = margin[0] if len(set(margin)) == 1 else ",".join(map(str, margin))
    warnings.warn(
        f"the crop margin {given} is too small for this model: inside the ROI its outputs on "
        f"the crop window differ from those on the whole image (a class probability by up "
        f"to {difference:.3g}), so the map is not the whole-image map; give a larger margin, "
        "or crop=True to estimate it from the model's receptive field",
        UserWarning,
        stacklevel=stacklevel,
    )
