"""Slow, obviously-correct reference implementations for tiny inputs (numpy loops)."""

from __future__ import annotations

import numpy as np
import torch

from maskscope.engine.masks import RiseMasks


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


def rise_np(model, image, masks, p_keep, weight_fn):
    """Σ w_i m_i / (N p) and the per-voxel standard error, one mask at a time."""
    n = len(masks)
    xs = []
    for m in masks:
        out = model_np(model, image * m[None])
        xs.append(weight_fn(out) * m / p_keep)
    xs = np.stack(xs)
    return xs.mean(0), xs.std(0, ddof=1) / np.sqrt(n)


def pixel_max_np(model, image, masks, p_keep, pixels, target):
    """Per-pixel RISE maps, each computed separately, then the max over pixels."""
    maps = []
    outs = [softmax(model_np(model, image * m[None]))[target] for m in masks]
    for px in pixels:
        acc = np.zeros(masks.shape[1:])
        for m, o in zip(masks, outs, strict=True):
            acc += o[px] * m
        maps.append(acc / (len(masks) * p_keep))
    return np.max(maps, axis=0)
