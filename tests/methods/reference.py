"""Slow, obviously-correct reference implementations for tiny inputs (numpy loops)."""

from __future__ import annotations

import numpy as np
import torch

from maskscope._engine.masks import RiseMasks


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


def rise_np(model, image, masks, p_keep, weight_fn, estimator="centred"):
    """The RISE map and its per-voxel standard error, one mask at a time.

    ``"paper"``: ``Σ w_i m_i / (N p)``; ``"centred"``: ``w̄ + Σ (w_i − w̄) m_i / (N p)``.
    """
    weights = [weight_fn(model_np(model, image * m[None])) for m in masks]
    return estimate_np(masks, np.asarray(weights, dtype=np.float64), p_keep, estimator)


def estimate_np(masks, weights, p_keep, estimator="centred"):
    """Map and standard error from masks ``(N, *sp)`` and weights ``(N,)`` (float64)."""
    n = len(masks)
    c = 0.0 if estimator == "paper" else weights.mean()
    xs = np.stack([(w - c) * m / p_keep for w, m in zip(weights, masks, strict=True)])
    return xs.mean(0) + c, xs.std(0, ddof=1) / np.sqrt(n)


def reliability_np(masks, weights, p_keep, estimator="centred"):
    """Split-half reliability: even- vs odd-indexed masks, Spearman–Brown corrected."""
    a, _ = estimate_np(masks[0::2], weights[0::2], p_keep, estimator)
    b, _ = estimate_np(masks[1::2], weights[1::2], p_keep, estimator)
    r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    return max(2 * r / (1 + r), -1.0)  # kept in [-1, 1] when the halves disagree


def pixel_max_np(model, image, masks, p_keep, pixels, target, estimator="centred"):
    """Per-pixel RISE maps, each computed separately, then the max over pixels."""
    maps = []
    outs = [softmax(model_np(model, image * m[None]))[target] for m in masks]
    for px in pixels:
        w = np.array([o[px] for o in outs], dtype=np.float64)
        maps.append(estimate_np(masks, w, p_keep, estimator)[0])
    return np.max(maps, axis=0)
