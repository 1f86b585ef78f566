"""Perturbations: plain functions ``(x, masks) -> perturbed batch``.

``x`` is one input ``(1, C, *spatial)`` and ``masks`` a chunk ``(B, 1, *spatial)`` with
1 = keep the input and 0 = replace it. Every function returns ``(B, C, *spatial)``. A task
holds its perturbation bound to its own input (:func:`bind`, :func:`blend_into`): it takes
the loop's :class:`~maskscope._engine.mask_batch.MaskBatch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .mask_batch import MaskBatch
from .reused import ReusedArray

__all__ = [
    "BatchPerturbation",
    "Perturbation",
    "bind",
    "blend",
    "blend_into",
    "make_perturbation",
    "multiply",
    "resolve_fill",
]

#: Signature of a perturbation: ``(x (1, C, *sp), masks (B, 1, *sp)) -> (B, C, *sp)``.
Perturbation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: A perturbation bound to a task's input: ``MaskBatch -> (B, C, *sp)``.
BatchPerturbation = Callable[[MaskBatch], torch.Tensor]


def multiply(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """RISE's perturbation: ``x * m`` (hidden parts become 0)."""
    return x * masks


def blend(x: torch.Tensor, masks: torch.Tensor, baseline: torch.Tensor | float) -> torch.Tensor:
    """Blend with a baseline: ``x * m + baseline * (1 - m)``.

    ``baseline`` is a number, or a tensor broadcastable to ``x`` (one value per channel,
    or a whole baseline image).
    """
    return baseline + (x - baseline) * masks


def resolve_fill(
    x: torch.Tensor, fill: float | str | torch.Tensor, *, name: str = "baseline"
) -> torch.Tensor | float:
    """Turn a fill specification into a value or tensor broadcastable to ``x``.

    Parameters
    ----------
    x
        The input ``(1, C, *spatial)``.
    fill
        A number; ``"min"`` or ``"mean"`` (per channel, over the image); or an array of
        shape ``(C,)`` or ``x``'s own shape (with or without the leading batch axis).
    name
        The parameter's name, for error messages.
    """
    if isinstance(fill, str):
        dims = tuple(range(2, x.ndim))
        if fill == "min":
            return x.amin(dim=dims, keepdim=True)
        if fill == "mean":
            return x.mean(dim=dims, keepdim=True)
        raise ValueError(f"{name} must be a number, 'min', 'mean' or an array, got {fill!r}")
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        return float(fill)
    t = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    c, spatial = x.shape[1], tuple(x.shape[2:])
    if t.ndim == 0:
        return t
    if tuple(t.shape) == (c,):
        return t.reshape(1, c, *([1] * len(spatial)))
    if tuple(t.shape) == (c, *spatial):
        return t.unsqueeze(0)
    if tuple(t.shape) == tuple(x.shape):
        return t
    if c == 1 and tuple(t.shape) == spatial:
        return t.reshape(x.shape)
    raise ValueError(
        f"{name} array must have shape ({c},), {(c, *spatial)} or {spatial if c == 1 else ''} "
        f"to match the input, got {tuple(t.shape)}"
    )


def make_perturbation(
    x: torch.Tensor,
    baseline: float | str | torch.Tensor | Sequence[float] = 0.0,
    channel: int | None = None,
) -> Perturbation:
    """Build the perturbation ``(x, masks) -> batch`` for inputs like ``x``.

    Parameters
    ----------
    x
        The input ``(1, C, *spatial)`` (``"min"`` and ``"mean"`` are taken from it).
    baseline
        What hidden voxels become: 0 (plain multiplication), a number, ``"min"``,
        ``"mean"`` or an array (see :func:`resolve_fill`).
    channel
        Perturb this input channel only; the others are left as they are.
    """
    c = x.shape[1]
    if channel is not None and not 0 <= channel < c:
        raise ValueError(f"channel must be in [0, {c - 1}] for a {c}-channel input, got {channel}")
    value = resolve_fill(x, baseline)
    is_zero = isinstance(value, float) and value == 0.0

    def perturb(xx: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if channel is None:
            return multiply(xx, masks) if is_zero else blend(xx, masks, value)
        out = xx.expand(masks.shape[0], *xx.shape[1:]).clone()
        part = xx[:, channel : channel + 1]
        v = value if not torch.is_tensor(value) or value.ndim == 0 else _channel(value, channel)
        out[:, channel : channel + 1] = multiply(part, masks) if is_zero else blend(part, masks, v)
        return out

    return perturb


def bind(x: torch.Tensor, perturbation: Perturbation) -> BatchPerturbation:
    """The task's form of a perturbation: ``batch -> perturbation(x, batch.masks)``."""

    def perturb(batch: MaskBatch) -> torch.Tensor:
        return perturbation(x, batch.masks)

    return perturb


def blend_into(
    x: torch.Tensor, baseline: float | str | torch.Tensor | Sequence[float] = 0.0
) -> BatchPerturbation:
    """:func:`make_perturbation` of ``x`` itself, writing every batch into one array.

    The array (the function's ``output``, a :class:`~.reused.ReusedArray`) is reallocated
    only when the batch's shape changes, so each call overwrites the previous result: for a
    loop that runs the model on each batch before perturbing the next (fresh multi-megabyte
    arrays cost page faults on every chunk), or that gives the array a second slot.
    """
    value = resolve_fill(x, baseline)
    is_zero = isinstance(value, float) and value == 0.0
    diff = x if is_zero else x - value
    output = ReusedArray()

    def perturb(batch: MaskBatch) -> torch.Tensor:
        masks = batch.masks
        shape = (masks.shape[0], *x.shape[1:])
        out = output.take(shape, torch.result_type(x, masks), x.device)
        torch.mul(diff, masks, out=out)
        return out if is_zero else out.add_(value)

    perturb.output = output  # type: ignore[attr-defined]
    return perturb


def _channel(value: torch.Tensor, channel: int) -> torch.Tensor:
    if value.shape[1] == 1:
        return value
    return value[:, channel : channel + 1]
