"""Slow reference code for the evaluation tests, and a box-filter model it can mirror.

The reference works voxel by voxel in float64 numpy, straight from the definitions; the
model's own float32 convolution only has to agree with it away from the threshold, which
:func:`min_margin` lets a test check.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy import ndimage
from torch import nn

THRESHOLD = 0.4213
GAIN = 8.0


class BoxNet(nn.Module):
    """Two classes: foreground where the 3-wide local mean (over channels) exceeds THRESHOLD.

    Logits ``(B, 2, *spatial)`` = ``±GAIN · (mean − THRESHOLD)``, zero padding at borders.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.conv = conv(in_channels, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / (in_channels * 3**spatial_dims))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (self.conv(x) - THRESHOLD) * GAIN
        return torch.cat([-m, m], dim=1)


def box_mean(x: np.ndarray) -> np.ndarray:
    """Local mean over a 3-wide cube and all channels of ``x (C, *spatial)``, zero padded."""
    c, spatial = x.shape[0], x.shape[1:]
    padded = np.pad(x.astype(np.float64), [(0, 0)] + [(1, 1)] * len(spatial))
    total = np.zeros(spatial)
    for offset in itertools.product(range(3), repeat=len(spatial)):
        window = tuple(slice(o, o + n) for o, n in zip(offset, spatial, strict=True))
        total += padded[(slice(None), *window)].sum(axis=0)
    return total / (c * 3 ** len(spatial))


def ref_order(saliency: np.ndarray) -> list[int]:
    """Most salient first; equal values: lower flat index first (a plain Python sort)."""
    flat = saliency.ravel().tolist()
    return sorted(range(len(flat)), key=lambda i: (-flat[i], i))


def ref_substrate(image: np.ndarray, name: str, sigma: float = 5.0) -> np.ndarray:
    """zero / min (per channel) / blur (Gaussian per channel) of ``image (C, *spatial)``."""
    if name == "zero":
        return np.zeros_like(image, dtype=np.float64)
    if name == "min":
        out = np.empty(image.shape)
        for c in range(image.shape[0]):
            out[c] = image[c].min()
        return out
    assert name == "blur"
    return np.stack([ndimage.gaussian_filter(ch.astype(np.float64), sigma) for ch in image])


def window_order(saliency: np.ndarray, window: tuple[slice, ...]) -> list[int]:
    """The voxels of a box, most salient first (a plain Python filter of the order)."""
    inside = np.zeros(saliency.shape, bool)
    inside[window] = True
    return [v for v in ref_order(saliency) if inside.ravel()[v]]


def perturbed_inputs(image, saliency, kind, steps, substrate, order=None):
    """The ``steps + 1`` perturbed images of a curve, built voxel by voxel.

    ``order`` (default: every voxel by saliency) may hold only some voxels: the steps are
    fractions of those, and the others are never touched.
    """
    sub = ref_substrate(image, substrate)
    order = ref_order(saliency) if order is None else [int(i) for i in order]
    n_vox = len(order)
    out = []
    for k in range(steps + 1):
        n = int(np.floor(k * n_vox / steps + 1e-9))
        x = image.astype(np.float64).reshape(image.shape[0], -1).copy()
        start = sub.reshape(image.shape[0], -1).copy()
        if kind == "deletion":
            for v in order[:n]:
                x[:, v] = start[:, v]
            out.append(x.reshape(image.shape))
        else:
            for v in order[:n]:
                start[:, v] = x[:, v]
            out.append(start.reshape(image.shape))
    return out


def ref_scores(x: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(Dice of the BoxNet segmentation vs reference, mean P(foreground) over reference)."""
    mean = box_mean(x)
    pred = mean > THRESHOLD
    ref = reference > 0
    inter = np.logical_and(pred, ref).sum()
    dice = 2.0 * inter / (pred.sum() + ref.sum())
    logit = GAIN * (mean - THRESHOLD)
    prob = 1.0 / (1.0 + np.exp(-2.0 * logit))  # softmax over (-l, l)
    return float(dice), float(prob[ref].mean())


def ref_curve(image, saliency, kind, steps, substrate, order=None, reference=None):
    """(fractions, dice curve, probability curve) by the slow route."""
    image = image if image.ndim == saliency.ndim + 1 else image[None]
    if reference is None:
        reference = box_mean(image) > THRESHOLD
    xs = perturbed_inputs(image, saliency, kind, steps, substrate, order)
    scores = np.array([ref_scores(x, reference) for x in xs])
    n_vox = saliency.size
    fractions = np.array([np.floor(k * n_vox / steps + 1e-9) / n_vox for k in range(steps + 1)])
    return fractions, scores[:, 0], scores[:, 1]


def min_margin(image, saliency, kind, steps, substrate, order=None) -> float:
    """Smallest distance of any local mean to the threshold over a curve's inputs."""
    image = image if image.ndim == saliency.ndim + 1 else image[None]
    xs = perturbed_inputs(image, saliency, kind, steps, substrate, order)
    return min(float(np.abs(box_mean(x) - THRESHOLD).min()) for x in [image, *xs])


def ref_auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid rule, written out."""
    total = 0.0
    for i in range(1, len(fractions)):
        total += (fractions[i] - fractions[i - 1]) * (values[i] + values[i - 1]) / 2.0
    return total
