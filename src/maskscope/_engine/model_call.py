"""How the engine calls a model: padding, the output adapter, batch-1 fallback, clear errors.

:class:`ModelCall` composes, around the user's model,

1. :class:`~maskscope._engine.padding.PadToMultiple` when ``pad_multiple`` is set (pad the
   input, crop the outputs back);
2. the output adapter (:mod:`maskscope._engine.outputs`): the raw return value → one
   tensor;
3. :class:`~maskscope._engine.fast_forward.FastForward`: the forward under autocast
   (``precision``) and / or ``torch.compile`` (``compile``), both opt-in;
4. a fallback for models that only take a batch of 1 (a ``.pt2`` exported at batch 1, a
   model traced with a hard-coded batch): when the first batched call fails, every input
   of that batch is run alone; if each succeeds, the model is called one input at a time
   from then on, with a warning. The map does not depend on the batch size, so this
   changes nothing but the speed. If an input fails alone too, its error is raised;
5. errors: anything the model raises (but running out of memory, which the loop handles
   by halving the batch) becomes a :class:`~maskscope._engine.failures.ModelError` with the
   model's real message and, for the known failures, a hint.

Every method and the unperturbed pass go through one :class:`ModelCall`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .failures import ModelError, failure_hint, real_message
from .fast_forward import FastForward, autocast_dtype
from .loop import is_out_of_memory
from .outputs import OutputAdapter, OutputChoiceError
from .padding import PAD_MODES, PaddingError, PadToMultiple, normalize_multiple, pad_amounts

__all__ = ["ModelCall", "is_exported_module"]


class ModelCall:
    """The model as the engine calls it: ``(B, C, *spatial)`` → one output tensor.

    Parameters
    ----------
    model
        The user's model.
    output_key
        A dict key or tuple index choosing the output (see
        :func:`~maskscope._engine.outputs.adapt_output`), or None for the default.
    output
        Or a callable ``output(raw) -> tensor``.
    pad_multiple
        None, or pad every input to a multiple of this (one int, or one per axis).
    pad_mode
        One of :data:`~maskscope._engine.padding.PAD_MODES`.
    precision
        ``"float32"`` (no autocast, no TensorFloat-32), ``"tf32"`` (TensorFloat-32 convolutions on
        a CUDA device), ``"bfloat16"`` or ``"float16"``: the forward's autocast dtype (see
        :mod:`~maskscope._engine.fast_forward`).
    compile
        Whether to run ``torch.compile(model, dynamic=False)`` (batches padded to a
        compiled size).

    Attributes
    ----------
    single_only
        True once the model turned out to accept only one input per call.
    """

    def __init__(
        self,
        model: Callable,
        *,
        output_key: str | int | None = None,
        output: Callable[[Any], torch.Tensor] | None = None,
        pad_multiple: int | Sequence[int] | None = None,
        pad_mode: str = "zeros",
        precision: str = "float32",
        compile: bool = False,
    ) -> None:
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        autocast_dtype(precision)  # checks the name
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}")
        self.model = model
        self.output_key = output_key
        self.output = output
        self.pad_multiple = normalize_multiple(pad_multiple)
        self.pad_mode = pad_mode
        self.precision = precision
        self.compile = compile
        compiled = self._chain(torch.compile(model, dynamic=False)) if compile else None
        self._inner = FastForward(self._chain(model), compiled, precision=precision)
        self.single_only = False
        self._batched_ok = False

    def _chain(self, model: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
        """Output adapter, then padding, around ``model``."""
        inner: Callable = OutputAdapter(model, self.output_key, self.output)
        if self.pad_multiple is not None:
            inner = PadToMultiple(inner, self.pad_multiple, self.pad_mode)
        return inner

    def with_model(self, model: Callable) -> ModelCall:
        """A new call of ``model`` with the same output choice, padding, precision, compile."""
        return ModelCall(
            model,
            output_key=self.output_key,
            output=self.output,
            pad_multiple=self.pad_multiple,
            pad_mode=self.pad_mode,
            precision=self.precision,
            compile=self.compile,
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the model on ``batch``; see the module's description for what happens."""
        if self.single_only and batch.shape[0] > 1:
            return torch.cat([self._checked(batch[i : i + 1]) for i in range(batch.shape[0])])
        try:
            out = self._inner(batch)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            if batch.shape[0] > 1 and not self._batched_ok and not _own_error(exc):
                return self._fall_back(batch, exc)
            raise self._error(exc, batch) from exc
        if batch.shape[0] > 1:
            self._batched_ok = True
        return out

    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._inner(x)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            raise self._error(exc, x) from exc

    def _fall_back(self, batch: torch.Tensor, first: BaseException) -> torch.Tensor:
        """The batched call failed: run each input alone; succeed only if every one does."""
        outs = [self._checked(batch[i : i + 1]) for i in range(batch.shape[0])]
        self.single_only = True
        warnings.warn(
            f"the model failed on a batch of {batch.shape[0]} ({real_message(first, 160)}) "
            "but runs on each input alone: continuing with one input per call (batch_size=1); "
            "the same masks, so the map changes by float rounding at most",
            RuntimeWarning,
            stacklevel=4,
        )
        return torch.cat(outs)

    def _error(self, exc: BaseException, batch: torch.Tensor) -> BaseException:
        if _own_error(exc):
            return exc
        cause = real_message(exc)
        seen = tuple(batch.shape)  # what the model itself was given: the padded input
        if self.pad_multiple is not None:
            try:
                amounts = pad_amounts(seen[2:], self.pad_multiple)
            except ValueError:  # the padding itself does not fit: reported as it is
                amounts = [(0, 0)] * (len(seen) - 2)
            seen = (*seen[:2], *(n + b + a for n, (b, a) in zip(seen[2:], amounts, strict=True)))
        hint = failure_hint(cause, shape=seen, pad_multiple=self.pad_multiple)
        shape = ", ".join(str(s) for s in batch.shape)
        padded = "" if seen == tuple(batch.shape) else f", padded to {_size(seen[2:])}"
        return ModelError(cause, hint, context=f" on an input batch of shape ({shape}){padded}")


def _size(spatial: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in spatial)


def _own_error(exc: BaseException) -> bool:
    """Errors of maskscope's own making (the output choice): passed on unchanged."""
    from .sliding import PatchSizeError

    return isinstance(exc, (OutputChoiceError, PaddingError, ModelError, PatchSizeError))


def is_exported_module(model: Any) -> bool:
    """Whether ``model`` is the module of a ``torch.export`` program (``ep.module()``).

    Such a module has a ``training`` flag, but its mode was fixed when it was exported:
    ``eval()`` raises, and the flag says nothing about dropout or batch norm.
    """
    return any(
        c.__name__ == "_StatefulGraphModule" and c.__module__.startswith("torch.export")
        for c in type(model).__mro__
    )
