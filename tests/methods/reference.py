"""Slow, obviously-correct reference implementations for tiny inputs (numpy loops)."""

from __future__ import annotations

import numpy as np
import torch

from maskscope._engine.masks import RiseMasks
from maskscope._engine.sum_estimates import MIN_FIT  # the covariate's masks at least


def masks_np(shape, grid, p_keep, seed, n) -> np.ndarray:
    """The engine's masks (themselves tested against full interpolation + crop)."""
    gen = RiseMasks(shape, grid, p_keep, seed, dtype=torch.float64)
    return gen(0, n)[:, 0].numpy()


def softmax(z: np.ndarray, axis: int = 0) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def model_np(model, x: np.ndarray) -> np.ndarray:
    """One image (C, *sp) through the model, one at a time."""
    with torch.no_grad():
        return model(torch.from_numpy(x[None].astype(np.float32)))[0].double().numpy()


def dice_np(pred: np.ndarray, ref: np.ndarray, classes) -> float:
    vals = []
    for c in classes:
        p, r = pred == c, ref == c
        if p.sum() + r.sum() == 0:
            continue
        vals.append(2.0 * (p & r).sum() / (p.sum() + r.sum()))
    return float(np.mean(vals)) if vals else 1.0


def rise_np(model, image, masks, p_keep, weight_fn, estimator="centred", region=None, cov=None):
    """The RISE map and its per-voxel standard error, one mask at a time.

    ``"paper"``: ``Σ w_i m_i / (N p)``; ``"centred"``: ``w̄ + Σ (w_i − w̄) m_i / (N p)``;
    ``"covariate"``: see :func:`estimate_np`.
    """
    weights = [weight_fn(model_np(model, image * m[None])) for m in masks]
    w = np.asarray(weights, dtype=np.float64)
    return estimate_np(masks, w, p_keep, estimator, region, cov)


def region_cov_np(shape, grid, p_keep, region, origin=None, full=None) -> np.ndarray:
    """``Cov(φ, m(x))`` for ``φ`` = the mask's mean over ``region``, by enumeration.

    Every shift of the crop and every grid cell: the cell's one-hot grid upsampled with
    ``F.interpolate`` and cropped, as the masks are defined; the cells are independent with
    variance ``p (1 − p)``. ``full`` and ``origin``: the masks of a ``full`` image seen
    through a window of ``shape`` at ``origin``.
    """
    import itertools

    full = tuple(shape) if full is None else tuple(full)
    origin = (0,) * len(shape) if origin is None else tuple(origin)
    grids = (grid,) * len(shape) if np.isscalar(grid) else tuple(grid)
    cells = [int(np.ceil(s / g)) for s, g in zip(full, grids, strict=True)]
    size = [(g + 1) * c for g, c in zip(grids, cells, strict=True)]
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    region = np.asarray(region, bool)
    out = np.zeros(shape)
    shifts = list(itertools.product(*[range(c) for c in cells]))
    for cell in itertools.product(*[range(g) for g in grids]):
        one = torch.zeros((1, 1, *grids), dtype=torch.float64)
        one[(0, 0, *cell)] = 1.0
        up = torch.nn.functional.interpolate(one, size=size, mode=mode, align_corners=False)
        up = up[0, 0].numpy()
        for sh in shifts:
            idx = tuple(slice(s + o, s + o + n) for s, o, n in zip(sh, origin, shape, strict=True))
            m = up[idx]
            out += m * m[region].mean()
    return p_keep * (1 - p_keep) * out / len(shifts)


def rise_cov_np(model, image, masks, p_keep, weight_fn, grid, region):
    """:func:`rise_np` with the default estimator, ``"covariate"``, over ``region``."""
    region = np.asarray(region, bool)
    cov = region_cov_np(masks.shape[1:], grid, p_keep, region)
    return rise_np(model, image, masks, p_keep, weight_fn, "covariate", region, cov)


def estimate_np(masks, weights, p_keep, estimator="centred", region=None, cov=None):
    """Map and standard error from masks ``(N, *sp)`` and weights ``(N,)`` (float64).

    ``"covariate"`` (with ``region`` and its ``cov`` from :func:`region_cov_np`): the
    weights' least-squares slope on ``φ`` = the mask's mean over the region minus ``p``,
    and ``w̄ + [Σ (w − w̄) m − β (Σ (φ − φ̄) m − (N − 1) C)] / (N p)``; centred below
    ``MIN_FIT`` masks.
    """
    n = len(masks)
    c = 0.0 if estimator == "paper" else weights.mean()
    # the standard error of a centred sum: the residuals times the masks' deviations from
    # their mean (Σ eᵢ = 0, so the map is the same; the spread is the sample covariance's)
    dev = masks if estimator == "paper" else masks - masks.mean(0)
    if estimator != "covariate" or region is None or n < MIN_FIT:
        xs = np.stack([(w - c) * m / p_keep for w, m in zip(weights, masks, strict=True)])
        es = np.stack([(w - c) * d / p_keep for w, d in zip(weights, dev, strict=True)])
        return xs.mean(0) + c, es.std(0, ddof=1) / np.sqrt(n)
    phi = np.array([m[region].mean() - p_keep for m in masks])
    beta = np.polyfit(phi, weights, 1)[0]
    res = weights - c - beta * (phi - phi.mean())
    xs = np.stack([r * m / p_keep for r, m in zip(res, masks, strict=True)])
    es = np.stack([r * d / p_keep for r, d in zip(res, dev, strict=True)])
    return xs.mean(0) + c + beta * (n - 1) * cov / (n * p_keep), es.std(0, ddof=1) / np.sqrt(n)


def reliability_np(masks, weights, p_keep, estimator="centred", region=None, cov=None):
    """Split-half reliability: even- vs odd-indexed masks, Spearman–Brown corrected."""
    a, _ = estimate_np(masks[0::2], weights[0::2], p_keep, estimator, region, cov)
    b, _ = estimate_np(masks[1::2], weights[1::2], p_keep, estimator, region, cov)
    r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    return max(2 * r / (1 + r), -1.0)  # kept in [-1, 1] when the halves disagree


def pixel_max_np(model, image, masks, p_keep, pixels, target, estimator="centred", gain=True):
    """Per-pixel RISE maps, each computed separately, then the max over pixels.

    ``gain``: each pixel's map less its mean score (``max_of="gain"``) before the max.
    """
    maps = []
    outs = [softmax(model_np(model, image * m[None]))[target] for m in masks]
    for px in pixels:
        w = np.array([o[px] for o in outs], dtype=np.float64)
        maps.append(estimate_np(masks, w, p_keep, estimator)[0] - (w.mean() if gain else 0.0))
    return np.max(maps, axis=0)
