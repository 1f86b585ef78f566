"""Checks on what user-given score, distance and fill functions return.

A custom function that returns NaN would silently make an all-NaN map; its output is
checked like a model's, and the error names the function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["checked_fill", "checked_score", "function_name"]


def function_name(fn: Callable) -> str:
    """A readable name for a user function (``my_score``, ``functools.partial(...)``)."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def checked_score(score: Callable[[torch.Tensor], torch.Tensor], label: str):
    """Wrap a task's score so that NaN, infinite or misshaped scores raise, naming ``label``."""

    def score_checked(outputs: torch.Tensor) -> torch.Tensor:
        w = score(outputs)
        b = outputs.shape[0]
        if not torch.is_tensor(w) or w.ndim == 0 or w.shape[0] != b:
            got = tuple(w.shape) if torch.is_tensor(w) else type(w).__name__
            raise ValueError(f"{label} must return one score per input ({b}, ...), got {got}")
        if w.is_complex() or w.dtype == torch.bool:
            raise ValueError(f"{label} must return real numbers, got dtype {w.dtype}")
        bad = ~torch.isfinite(w.reshape(b, -1)).all(dim=1)
        if bool(bad.any()):
            raise ValueError(
                f"{label} returned NaN or infinite values for {int(bad.sum())} of {b} "
                "perturbed inputs in this chunk; it must return finite numbers"
            )
        return w

    return score_checked


def checked_fill(fill: Callable, label: str):
    """Wrap a perturbation ``(x, masks) -> x'``: the right shape, finite values."""

    def fill_checked(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        out = fill(x, masks)
        want = (masks.shape[0], *x.shape[1:])
        if not torch.is_tensor(out) or tuple(out.shape) != want:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"{label} must return {want} (one input per mask), got {got}")
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            raise ValueError(
                f"{label} returned NaN or infinite values; it must return finite numbers"
            )
        return out

    return fill_checked
