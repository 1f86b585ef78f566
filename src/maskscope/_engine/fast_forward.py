"""Opt-in speed for the model call: mixed precision and compilation.

:class:`FastForward` wraps the model's forward (inside :class:`~._engine.model_call.ModelCall`,
before the output adapter):

* ``precision="bfloat16"`` or ``"float16"`` runs the forward under :func:`torch.autocast`
  for the input's device; the model's output is cast back to the input's dtype at once,
  so scores, sums and maps stay in float32 (sums in float64) as without it. Only the
  forward is approximate: the map changes by what the model's outputs change (measured in
  ``docs/speed.md``).
* ``precision="float32"`` (the default) is float32 throughout: on a CUDA device the
  forward runs with TensorFloat-32 off for convolutions and matrix products
  (:mod:`~._engine.fp32`: PyTorch lets cuDNN convolutions use it by default, and the
  bundled 3D U-Net's HDM map then differs from the CPU's, rank correlation 0.88 on an
  H200). ``precision="tf32"`` runs the convolutions on TensorFloat-32, for speed, and keeps
  matrix products in float32: the engine's own products run beside the forward (pipelined
  chunks) and must not follow it. Every CUDA forward, under autocast too, runs so.
* ``compile=True`` runs ``torch.compile(model, dynamic=False)``. A compiled graph is
  specialised to its input shape, and each new batch size costs a compilation, so a batch
  smaller than one already compiled (the last chunk of a run, a slice's last chunk) is
  padded to that size with copies of its last input and the extra outputs are dropped.
  The model sees the same inputs; per-input results do not depend on what else is in the
  batch (a model in ``eval()`` mode), so the map is that of the compiled model. If the
  compilation itself fails (no C++ compiler, an operation the compiler does not support)
  and the model runs without it, the run continues uncompiled with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from .failures import real_message
from .fp32 import fp32_precision

__all__ = ["PRECISIONS", "FastForward", "autocast_dtype"]

#: Names accepted by ``precision``.
PRECISIONS = ("float32", "tf32", "bfloat16", "float16")

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision name (None for float32 and tf32: no autocast)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return _DTYPES.get(precision)


class FastForward:
    """The model's forward under autocast and / or ``torch.compile``.

    Parameters
    ----------
    eager
        ``(B, C, *spatial) -> (B, ...)``: the model as called without compilation (output
        adapter, padding included), returning one tensor.
    compiled
        The same chain around ``torch.compile(model, dynamic=False)``, or None.
    precision
        One of :data:`PRECISIONS`.

    Attributes
    ----------
    compiled_sizes
        Batch sizes the compiled model has been called at, ascending.
    compiling
        True while the compiled chain is in use (False when none was given, or once the
        compilation failed and the model runs uncompiled).
    """

    def __init__(
        self,
        eager: Callable[[torch.Tensor], torch.Tensor],
        compiled: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        precision: str = "float32",
    ) -> None:
        self.eager = eager
        self.compiled = compiled
        self.precision = precision
        self.dtype = autocast_dtype(precision)
        self.compiling = compiled is not None
        self.compiled_sizes: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the model on ``batch`` (padded to a compiled batch size where one fits)."""
        if not self.compiling:
            return self._forward(self.eager, batch)
        b = batch.shape[0]
        size = next((s for s in self.compiled_sizes if s >= b), None)
        if size is None or size == b:
            out = self._compiled(batch)
            if size is None and self.compiling:
                self.compiled_sizes = sorted({*self.compiled_sizes, b})
            return out
        pad = batch[-1:].expand(size - b, *batch.shape[1:])
        out = self._compiled(torch.cat([batch, pad]))
        return out[:b] if out.shape[0] == size else out

    def _compiled(self, batch: torch.Tensor) -> torch.Tensor:
        try:
            return self._forward(self.compiled, batch)
        except Exception as exc:
            if not _compile_failure(exc):
                raise
            out = self._forward(self.eager, batch)  # raises the model's own error, if any
            self.compiling = False
            cause = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
            warnings.warn(
                f"torch.compile could not compile the model ({real_message(cause, 200)}); "
                "continuing without compilation",
                RuntimeWarning,
                stacklevel=4,
            )
            return out

    def _forward(self, fn: Callable, batch: torch.Tensor) -> torch.Tensor:
        if batch.device.type == "cuda":
            with fp32_precision(conv="tf32" if self.precision == "tf32" else "ieee", matmul="ieee"):
                return self._cast(fn, batch)
        return self._cast(fn, batch)

    def _cast(self, fn: Callable, batch: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return fn(batch)
        with torch.autocast(device_type=batch.device.type, dtype=self.dtype):
            out = fn(batch)
        low = out.dtype in (torch.bfloat16, torch.float16)
        return out.to(batch.dtype) if low and batch.dtype.is_floating_point else out


def _compile_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the compiler rather than from the model's own code."""
    mod = type(exc).__module__
    name = type(exc).__name__
    return mod.startswith(("torch._dynamo", "torch._inductor")) or "BackendCompiler" in name
