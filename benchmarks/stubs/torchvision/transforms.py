"""The transforms that the benchmarked peers import (see the package docstring)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["GaussianBlur", "Normalize", "ToTensor"]


class ToTensor:
    """PIL image or ``(H, W[, C])`` uint8 array → float tensor ``(C, H, W)`` in [0, 1]."""

    def __call__(self, pic) -> torch.Tensor:
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        if t.dtype == torch.uint8:
            return t.float().div_(255.0)
        return t.float()


class Normalize:
    """``(x - mean) / std`` per channel."""

    def __init__(self, mean, std) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return (t - self.mean) / self.std


class GaussianBlur:
    """Imported by muppet's perturbator module; the benchmarked explainers never call it."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __call__(self, t):
        raise NotImplementedError("GaussianBlur is not part of the benchmark stub")
