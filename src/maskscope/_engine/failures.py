"""Model failures: the real cause in one line, and what to do about the common ones.

A model that raises inside a run is reported as a :class:`ModelError` whose message holds
the model's own message (for TorchScript, the interpreter's last meaningful line, not
"The following operation failed in the TorchScript interpreter.") and, when the failure
is a known one, a hint: sizes not divisible by the network's down-sampling factor, a
fixed batch size, a wrong channel count. Hints name API parameters (``pad_multiple=16``);
the frontends rewrite them into their flags and fields (:mod:`maskscope.wording`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = [
    "NOT_DIVISIBLE",
    "ModelError",
    "failure_hint",
    "real_message",
    "suggested_multiple",
]

_TS_HEADER = "The following operation failed in the TorchScript interpreter"
_ERROR_LINE = re.compile(
    r"^(?:builtins\.)?((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)): "
)

#: Parts of torch's messages when a size does not divide the network's down-sampling.
NOT_DIVISIBLE = (
    "Sizes of tensors must match",
    "must match the size of tensor b",
    "Expected size",
)
_BATCH_GUARD = re.compile(r"Guard failed: [\w.]+\.size\(\)\[0\] == (\d+)")
_SIZE_GUARD = re.compile(r"Guard failed: [\w.]+\.size\(\)\[(\d+)\] == (\d+)")
_EXPECTED_DIM = re.compile(r"shape\[0\] to be equal to (\d+)")
_VIEW_BATCH = re.compile(r"shape '\[(\d+),[^\]]*\]' is invalid for input of size")
_CHANNELS = re.compile(r"to have (\d+) channels, but got (\d+) channels")


class ModelError(RuntimeError):
    """The model raised (or returned something unusable) during a run.

    Attributes
    ----------
    cause
        The model's own message, on one line (with the exception's type).
    hint
        What to do, when the failure is a known one; else None.
    """

    def __init__(self, cause: str, hint: str | None = None, *, context: str = "") -> None:
        self.cause = cause
        self.hint = hint
        self.context = context
        text = f"the model failed{context}: {cause}"
        super().__init__(f"{text} — {hint}" if hint else text)


def real_message(exc: BaseException, limit: int = 400) -> str:
    """The exception's type and the first line of its message; TorchScript's real cause.

    ``torch.jit`` reports a failure inside a scripted module as "The following operation
    failed in the TorchScript interpreter. Traceback of TorchScript ... RuntimeError: <the
    cause>": this returns ``"RuntimeError: <the cause>"``.
    """
    text = str(exc).strip()
    name = type(exc).__name__
    if _TS_HEADER in text:
        lines = text.splitlines()
        starts = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
        if starts:
            head = _ERROR_LINE.match(lines[starts[-1]])
            assert head is not None
            kind = head.group(1).rsplit(".", 1)[-1]
            line = f"{kind}: {lines[starts[-1]][head.end() :].strip()}"
        else:
            line = f"{name}: {lines[-1].strip()}"
    else:
        first = text.splitlines()[0].strip() if text else ""
        line = f"{name}: {first}" if first else name
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _size_text(spatial: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in spatial)


def suggested_multiple(spatial: Sequence[int], current: object) -> int:
    """A power of two (16 at least) above the largest one already dividing every size."""
    power = min((int(s) & -int(s)) for s in spatial) if spatial else 1
    k = max(16, power * 2)
    if isinstance(current, int):
        k = max(k, current * 2)
    elif isinstance(current, tuple) and current:
        k = max(k, max(current) * 2)
    return 2 ** math.ceil(math.log2(k))


def failure_hint(
    message: str,
    *,
    shape: Sequence[int],
    pad_multiple: object = None,
    image_channels: int | None = None,
) -> str | None:
    """What to do about a known failure, from the model's message and the input's shape.

    Parameters
    ----------
    message
        The model's message (:func:`real_message`).
    shape
        The shape of the batch the model failed on, ``(B, C, *spatial)``.
    pad_multiple
        The padding in use, if any.
    image_channels
        The image's channels, when the batch's channel count differs from it.
    """
    spatial = tuple(shape[2:])
    channels = _CHANNELS.search(message)
    if channels:
        want, got = int(channels.group(1)), int(channels.group(2))
        return (
            f"the model takes {want} input channel(s), the image has {got}: give an image "
            f"with {want} channel(s) as (C, *spatial), or another model"
        )
    guard = _BATCH_GUARD.search(message) or _EXPECTED_DIM.search(message)
    view = _VIEW_BATCH.search(message)
    if guard or (view and int(view.group(1)) != shape[0]):
        n = int((guard or view).group(1))
        if n == 1:
            return (
                "the model only accepts a batch of 1 (it was exported or traced with a fixed "
                "batch size): set batch_size=1, or export it with a dynamic batch dimension "
                '(torch.export.Dim("batch"))'
            )
        return (
            f"the model only accepts a batch of {n} (it was exported or traced with a fixed "
            "batch size), but the unperturbed input is run alone: export it with a dynamic "
            'batch dimension (torch.export.Dim("batch"))'
        )
    size = _SIZE_GUARD.search(message)
    if size and int(size.group(1)) >= 2:
        axis, n = int(size.group(1)), int(size.group(2))
        return (
            f"the model was exported for a fixed size {n} on axis {axis}, the input is "
            f"{_size_text(spatial)}: give an image of the size it was exported for, or export "
            "it with dynamic spatial dimensions"
        )
    if any(p in message for p in NOT_DIVISIBLE) and spatial:
        if _largest(pad_multiple) >= FIXED_SIZE_MULTIPLE:
            more = suggested_multiple(spatial, pad_multiple)
            return (
                f"padding to a multiple of {pad_multiple} did not help, so the model probably "
                "takes one fixed input size (a transformer such as UNETR or SwinUNETR, or a "
                "model traced or exported at one size): run it in a sliding window of that "
                "size (SlidingWindow.patch_size), as MONAI's sliding_window_inference does "
                f"(a network that down-samples more often needs pad_multiple={more})"
            )
        k = suggested_multiple(spatial, pad_multiple)
        already = f" (pad_multiple={pad_multiple} was not enough)" if pad_multiple else ""
        return (
            f"the spatial size {_size_text(spatial)} is probably not divisible by the "
            f"network's down-sampling factor{already}: set pad_multiple={k} (2 to the number "
            "of down-samplings) to pad the input and crop the output back; a model that "
            "takes one fixed input size needs a sliding window instead "
            "(SlidingWindow.patch_size)"
        )
    return None


#: A padding multiple that covers five down-samplings: a size mismatch that remains is
#: one of a model made for a single input size.
FIXED_SIZE_MULTIPLE = 32


def _largest(multiple: object) -> int:
    if isinstance(multiple, bool):
        return 0
    if isinstance(multiple, int):
        return multiple
    if isinstance(multiple, tuple) and multiple:
        return max(int(m) for m in multiple)
    return 0
