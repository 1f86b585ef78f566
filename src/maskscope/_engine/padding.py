"""Pad inputs to a multiple of k and crop the outputs back: what most U-Nets need.

A U-Net that halves the size L times needs every spatial size divisible by 2**L (MONAI's
``UNet`` and ``DynUNet``, nnU-Net, most hand-written ones); on other sizes its skip
connections fail to concatenate. :class:`PadToMultiple` wraps such a model: it pads each
input symmetrically (as MONAI's ``DivisiblePad(k, method="symmetric")``: the odd voxel
goes after), runs the model, and crops every output tensor of the padded spatial size
back to the input's. When the input is already divisible nothing is padded, so the model
sees exactly the input it would see unwrapped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PAD_MODES", "PadToMultiple", "PaddingError", "normalize_multiple", "pad_amounts"]

#: Padding modes: zeros (MONAI's ``DivisiblePad`` default), the edge value repeated, or a
#: mirror image without the edge.
PAD_MODES = ("zeros", "replicate", "reflect")

_TORCH_MODES = {"zeros": "constant", "replicate": "replicate", "reflect": "reflect"}


class PaddingError(ValueError):
    """An input that the chosen padding cannot pad (reflect padding wider than the axis)."""


def normalize_multiple(multiple: Any, ndim: int | None = None) -> tuple[int, ...] | int | None:
    """Check a ``pad_multiple``: None, one int ≥ 1, or one int ≥ 1 per spatial axis.

    Returns an int, a tuple of ints (of length ``ndim`` when given), or None.
    """
    if multiple is None:
        return None
    if isinstance(multiple, (int, str)) or not hasattr(multiple, "__iter__"):
        items: tuple = (multiple,)
    else:
        items = tuple(multiple)
    if not items or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in items):
        raise ValueError(
            f"pad_multiple must be a positive int or one positive int per spatial axis, "
            f"got {multiple!r}"
        )
    if isinstance(multiple, int):
        return int(multiple)
    if ndim is not None and len(items) != ndim:
        raise ValueError(f"pad_multiple needs one int per spatial axis ({ndim}), got {multiple!r}")
    return items


def pad_amounts(spatial: Sequence[int], multiple: int | Sequence[int]) -> list[tuple[int, int]]:
    """``(before, after)`` padding per spatial axis to reach a multiple of ``multiple``.

    Symmetric: ``before = total // 2``, ``after = total - before``.
    """
    ks = [multiple] * len(spatial) if isinstance(multiple, int) else list(multiple)
    if len(ks) != len(spatial):
        raise ValueError(
            f"pad_multiple has {len(ks)} values for an input with {len(spatial)} spatial axes "
            f"{tuple(spatial)}"
        )
    out = []
    for size, k in zip(spatial, ks, strict=True):
        total = (-int(size)) % int(k)
        out.append((total // 2, total - total // 2))
    return out


def _crop(t: torch.Tensor, padded: tuple[int, ...], amounts: list[tuple[int, int]]) -> Any:
    n = len(padded)
    if t.ndim < n or tuple(t.shape[-n:]) != padded:
        return t  # another size (a low-resolution head, a class score): left alone
    index = [slice(None)] * (t.ndim - n)
    index += [slice(b, size - a) for size, (b, a) in zip(padded, amounts, strict=True)]
    return t[tuple(index)]


def _crop_tree(out: Any, padded: tuple[int, ...], amounts: list[tuple[int, int]]) -> Any:
    """Crop every tensor of the padded spatial size in a tensor, dict, tuple or list."""
    if torch.is_tensor(out):
        return _crop(out, padded, amounts)
    if isinstance(out, Mapping):
        return {k: _crop_tree(v, padded, amounts) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return type(out)(_crop_tree(v, padded, amounts) for v in out)
    logits = getattr(out, "logits", None)
    if torch.is_tensor(logits):
        return _crop(logits, padded, amounts)  # an object with .logits: its logits
    return out


class PadToMultiple(nn.Module):
    """Wrap a model so that it sees spatial sizes divisible by ``multiple``.

    An ``nn.Module``. A wrapped ``nn.Module`` is its registered submodule: ``parameters()``,
    ``state_dict()``, ``.to(...)`` and ``.eval()`` / ``.train()`` reach it, and
    ``torch.jit.trace`` records the padding and the crop for the traced input size
    (``torch.jit.script`` is not supported: the crop takes any output, a tensor, a dict, a
    tuple). Another callable is kept as it is, with no parameters. The wrapper starts in
    the wrapped model's mode (``training``) and declares its ``in_channels``, so that the
    image layout is read through it as from the model itself.

    Parameters
    ----------
    model
        Any callable taking ``(B, C, *spatial)``.
    multiple
        One int for every spatial axis (``16``), or one per axis (``(16, 16, 8)``).
    mode
        One of :data:`PAD_MODES`: ``"zeros"`` (default, as MONAI's ``DivisiblePad``),
        ``"replicate"`` or ``"reflect"``.

    Attributes
    ----------
    model
        The wrapped model.
    multiple
        ``multiple`` checked: an int or a tuple of ints.
    mode
        The padding mode.
    last_padded
        The padded spatial size of the last call (None before the first).

    Examples
    --------
    >>> import torch
    >>> wrapped = PadToMultiple(lambda x: x * 2, 16)
    >>> wrapped(torch.ones(1, 1, 33, 41)).shape
    torch.Size([1, 1, 33, 41])
    """

    def __init__(self, model: Callable, multiple: int | Sequence[int], mode: str = "zeros"):
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {mode!r}")
        super().__init__()
        self.model = model  # registered as a submodule when an nn.Module
        self.multiple = normalize_multiple(multiple)
        self.mode = mode
        self.last_padded: tuple[int, ...] | None = None
        self.training = _starting_mode(model)

    def train(self, mode: bool = True) -> PadToMultiple:
        """Set the mode of the wrapper and of the wrapped network; an exported program's
        module, whose mode was fixed when it was exported (it refuses ``train()``), is
        left as it is."""
        from .model_call import is_exported_module  # model_call imports this module

        self.training = bool(mode)
        if isinstance(self.model, nn.Module) and not is_exported_module(self.model):
            self.model.train(mode)
        return self

    @property
    def in_channels(self) -> int | None:
        """The input channels the wrapped model declares (``in_channels``), or None."""
        ch = getattr(self.model, "in_channels", None)
        return ch if isinstance(ch, int) and not isinstance(ch, bool) else None

    def forward(self, x: torch.Tensor) -> Any:
        """Pad ``x``, run the model, crop its outputs back to ``x``'s spatial size."""
        spatial = tuple(int(s) for s in x.shape[2:])
        amounts = pad_amounts(spatial, self.multiple)
        if not any(b or a for b, a in amounts):
            self.last_padded = spatial
            return self.model(x)
        flat = [v for b, a in reversed(amounts) for v in (b, a)]  # F.pad: last axis first
        mode = _TORCH_MODES[self.mode]
        if mode == "reflect":
            for size, (b, a) in zip(spatial, amounts, strict=True):
                if max(b, a) >= size:
                    raise PaddingError(
                        f"pad_mode='reflect' cannot pad an axis of size {size} by {max(b, a)}: "
                        "use pad_mode='zeros' or 'replicate'"
                    )
        padded_x = F.pad(x, flat, mode=mode) if mode != "constant" else F.pad(x, flat)
        padded = tuple(s + b + a for s, (b, a) in zip(spatial, amounts, strict=True))
        self.last_padded = padded
        return _crop_tree(self.model(padded_x), padded, amounts)


def _starting_mode(model: Callable) -> bool:
    """The wrapper's first ``training`` flag: the wrapped model's (False for a callable).

    The module of an exported program reports ``training=True`` whatever mode it was
    exported in (see :func:`~maskscope._engine.model_call.is_exported_module`): False.
    """
    from .model_call import is_exported_module  # model_call imports this module

    return bool(getattr(model, "training", False)) and not is_exported_module(model)
