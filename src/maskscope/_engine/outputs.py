"""The output adapter: whatever a model returns → one ``(B, K, *spatial)`` or ``(B, K)`` tensor.

Real models return more than a bare tensor:

- a tensor: used as is;
- a dict (torchvision's ``{"out": ..., "aux": ...}``, ``{"logits": ...}``, Hugging Face's
  ``ModelOutput``, which is a dict too): the value under the chosen key, or under the
  first of :data:`OBVIOUS_KEYS` that the dict holds, or its only value;
- an object with a ``.logits`` tensor attribute;
- a tuple or list, e.g. the heads of a deep-supervision U-Net (nnU-Net, MONAI's
  ``DynUNet``): the first element by default (the full-resolution head), or the chosen
  index;
- anything else: a callable given by the user turns it into a tensor.

A choice is a key (``str``), an index (``int``) or a callable ``output(raw) -> tensor``.
A key may also pick one channel of the tensor chosen: ``"channel 2"`` (of the default
tensor), ``"seg/channel 2"`` or ``"0/channel 2"`` (of a dict's ``"seg"``, a tuple's first
element). That channel is explained as a one-channel, binary output: the way to explain
a multi-label model whose channels are independent sigmoids that overlap (MONAI's BraTS
SegResNet: tumour core, whole tumour, enhancing tumour), which an argmax over the
channels would misread.
When no choice is given and none is obvious, :class:`OutputChoiceError` lists what the
model returned and how to choose (``output_key=`` in the API, ``--output-key`` in the
command line, the "output key" field in napari).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = [
    "OBVIOUS_KEYS",
    "OutputAdapter",
    "OutputChoiceError",
    "adapt_output",
    "parse_output_key",
    "split_channel",
]

#: Dict keys taken without a choice, in this order of preference.
OBVIOUS_KEYS = ("out", "logits", "pred")


class OutputChoiceError(ValueError):
    """The model's output holds several candidates and none was chosen, or the choice fits not."""


def parse_output_key(text: str | int | None) -> str | int | None:
    """A key typed in a form or on the command line: ``"2"`` → 2 (an index), else the key.

    An empty text means no choice (None).
    """
    if text is None or isinstance(text, int):
        return text
    s = str(text).strip()
    if not s:
        return None
    if s.lstrip("-").isdigit():
        return int(s)
    return s


_CHANNEL = re.compile(
    r"^\s*(?:(?P<key>.*?)\s*/\s*)?channel\s+(?P<channel>-?\d+)\s*$", re.IGNORECASE
)


def split_channel(key: str | int | None) -> tuple[str | int | None, int | None]:
    """``(key, channel)`` of a choice: ``"seg/channel 2"`` → ``("seg", 2)``, ``"channel 1"``
    → ``(None, 1)``, ``"0/channel 1"`` → ``(0, 1)``; other choices → ``(key, None)``."""
    if not isinstance(key, str):
        return key, None
    m = _CHANNEL.match(key)
    if m is None:
        return key, None
    return parse_output_key(m.group("key")), int(m.group("channel"))


def _one_channel(out: torch.Tensor, channel: int, choice: str) -> torch.Tensor:
    """Channel ``channel`` of ``(B, K, ...)`` as ``(B, 1, ...)``."""
    k = int(out.shape[1]) if out.ndim >= 2 else 0
    if not 0 <= channel < k:
        raise OutputChoiceError(
            f"output_key={choice!r} is out of range: the model's output, "
            f"{_describe(out)}, has {k} channel(s) (0 to {k - 1})"
        )
    return out[:, channel : channel + 1]


def _describe(out: Any) -> str:
    if torch.is_tensor(out):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, Mapping):
        items = ", ".join(f"{k!r}: {_short(v)}" for k, v in out.items())
        return f"a dict with keys {{{items}}}"
    if isinstance(out, (tuple, list)):
        items = ", ".join(f"[{i}] {_short(v)}" for i, v in enumerate(out))
        return f"a {type(out).__name__} of {len(out)} ({items})"
    return f"a {type(out).__name__}"


def _short(v: Any) -> str:
    if torch.is_tensor(v):
        return f"tensor{tuple(v.shape)}"
    if isinstance(v, (Mapping, tuple, list)):
        return f"{type(v).__name__} of {len(v)}"
    return type(v).__name__


def _from_mapping(out: Mapping, key: str | int | None) -> Any:
    keys = list(out.keys())
    if key is not None:
        if key in out:
            return out[key]
        raise OutputChoiceError(
            f"output_key={key!r} is not among the keys of the model's output: "
            f"{_describe(out)}; choose one of {', '.join(repr(k) for k in keys)} with "
            "output_key=KEY"
        )
    for k in OBVIOUS_KEYS:
        if k in out:
            return out[k]
    if len(keys) == 1:
        return out[keys[0]]
    raise OutputChoiceError(
        f"the model returned {_describe(out)} and none of the keys is one of "
        f"{', '.join(repr(k) for k in OBVIOUS_KEYS)}: choose one of "
        f"{', '.join(repr(k) for k in keys)} with output_key=KEY"
    )


def _from_sequence(out: tuple | list, key: str | int | None) -> Any:
    if not out:
        raise OutputChoiceError(f"the model returned an empty {type(out).__name__}")
    if key is None:
        return out[0]
    if isinstance(key, str):
        raise OutputChoiceError(
            f"output_key={key!r} is a key, but the model returned {_describe(out)}: "
            f"choose an index with output_key=INDEX (0 to {len(out) - 1})"
        )
    if not -len(out) <= key < len(out):
        raise OutputChoiceError(
            f"output_key={key} is out of range: the model returned {_describe(out)}; "
            f"choose an index with output_key=INDEX (0 to {len(out) - 1})"
        )
    return out[key]


def adapt_output(out: Any, key: str | int | None = None) -> torch.Tensor:
    """Select the tensor to explain from a model's return value.

    Parameters
    ----------
    out
        What the model returned.
    key
        A dict key or attribute name (``str``), a tuple / list index (``int``), or None for
        the default: the tensor itself, a dict's ``"out"``, ``"logits"`` or ``"pred"`` (or
        its only value), an object's ``.logits``, a sequence's first element.

    Returns
    -------
    torch.Tensor
        The selected tensor (its shape is checked later, by
        :func:`maskscope._engine.inputs.check_output`).

    Raises
    ------
    OutputChoiceError
        When the choice does not fit the output, or no choice is obvious; the message
        lists the keys or the elements.
    """
    original = out
    for _ in range(4):  # a dict inside a tuple, a tuple of dicts ...: a few levels at most
        if torch.is_tensor(out):
            if key is not None:
                raise OutputChoiceError(
                    f"output_key={key!r} was given, but the model returned {_describe(out)}: "
                    "leave output_key unset"
                )
            return out
        if isinstance(out, Mapping):
            out, key = _from_mapping(out, key), None
        elif isinstance(out, (tuple, list)):
            out, key = _from_sequence(out, key), None
        elif isinstance(key, str) and hasattr(out, key):
            out, key = getattr(out, key), None
        elif key is None and torch.is_tensor(getattr(out, "logits", None)):
            out = out.logits
        else:
            break
    if torch.is_tensor(out) and key is None:
        return out
    what = "" if key is None else f" (output_key={key!r} fits none of it)"
    raise OutputChoiceError(
        f"the model must return a tensor, got {type(original).__name__}: {_describe(original)}"
        f"{what}; a dict, a tuple or list, or an object with .logits holding the tensor is "
        "taken too, and any other output needs a callable output=lambda out: ... that "
        "returns the (B, K, *spatial) tensor"
    )


class OutputAdapter:
    """A model followed by the output choice: calling it returns one tensor.

    Parameters
    ----------
    model
        The model (any callable taking ``(B, C, *spatial)``).
    key
        A key or index (see :func:`adapt_output`), or None for the default.
    output
        A callable ``output(raw) -> tensor`` applied to the raw return value instead.

    Raises
    ------
    ValueError
        When both ``key`` and ``output`` are given, or ``key`` is neither a str nor an int.
    TypeError
        When ``output`` is not callable.
    """

    def __init__(
        self,
        model: Callable,
        key: str | int | None = None,
        output: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        if key is not None and output is not None:
            raise ValueError("give output_key= or output=, not both")
        if key is not None and (isinstance(key, bool) or not isinstance(key, (str, int))):
            raise ValueError(
                f"output_key must be a dict key (str) or a tuple index (int), got {key!r}"
            )
        if output is not None and not callable(output):
            raise TypeError(
                f"output must be a callable taking the model's return value, got "
                f"{type(output).__name__}"
            )
        self.model = model
        self.key = key
        self.output = output
        self._key, self._channel = split_channel(key)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on ``x`` and return the selected tensor."""
        raw = self.model(x)
        if self.output is None:
            out = adapt_output(raw, self._key)
            if self._channel is None:
                return out
            return _one_channel(out, self._channel, str(self.key))
        out = self.output(raw)
        if not torch.is_tensor(out):
            raise OutputChoiceError(
                f"the output callable must return a tensor, got {_describe(out)}"
            )
        return out
