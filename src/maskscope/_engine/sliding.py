"""Patch-based models: run the model by sliding window, as nnU-Net and MONAI do.

:class:`SlidingWindow` wraps a model that works on patches of a fixed size: each batch of
perturbed volumes is cut into overlapping patches by MONAI's
:func:`monai.inferers.sliding_window_inference`, the patches of *all* volumes of the batch
are sent to the model ``patch_batch`` at a time (one volume's last patches and the next
volume's first share a call), and the patch outputs are blended back into full-size
outputs. The model's memory is bounded by ``patch_batch`` patches, whatever the number of
volumes in the engine's batch; the outputs themselves are full-size, as without a window.

MONAI is an optional dependency: ``pip install maskscope[monai]``.

Where it equals a direct run: a patch's outputs near its edge see the patch's zero padding
instead of the neighbouring image, so a voxel's blended output equals the direct run's
only where the model's receptive field of that voxel lies inside every patch covering it
(everywhere for a pointwise model, or a volume no larger than one patch). There the
blend is ``Σ wⱼ·y / Σ wⱼ`` of equal values ``y``: equal to ``y`` up to the float rounding
of that sum (a few units in the last place of the output dtype).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .outputs import OutputAdapter

__all__ = ["BLEND_MODES", "SlidingWindow"]

#: Blending of overlapping patches: a plain average, or a Gaussian weight that trusts the
#: patches' centres more than their edges (MONAI's ``mode``).
BLEND_MODES = ("constant", "gaussian")


def _per_axis(value: Any, name: str) -> tuple[int, ...] | int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive int or one per spatial axis, got {value!r}")
    if np.isscalar(value):
        items: tuple = (value,)
    else:
        items = tuple(value)
    if not items or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in items
    ):
        raise ValueError(f"{name} must be a positive int or one per spatial axis, got {value!r}")
    return int(items[0]) if np.isscalar(value) else tuple(int(v) for v in items)


class PatchSizeError(ValueError):
    """A patch size that does not fit the input (one size per spatial axis, or one)."""


def _patch_error(exc: BaseException, size: tuple[int, ...]) -> BaseException:
    """A size failure on the patches blamed on ``patch_size``, not on the image."""
    from .failures import NOT_DIVISIBLE, ModelError, real_message, suggested_multiple

    cause = real_message(exc)
    if isinstance(exc, ModelError) or not any(p in cause for p in NOT_DIVISIBLE):
        return exc
    k = suggested_multiple(size, None)
    rounded = ",".join(str(-(-int(s) // k) * k) for s in size)
    hint = (
        f"the model ran on patches of {'×'.join(map(str, size))} voxels, probably not a "
        "multiple of the network's down-sampling factor: make every patch size a multiple "
        f"of it (e.g. patch_size={rounded} for a factor of {k}); padding the image does not "
        "change the patches"
    )
    return ModelError(cause, hint, context=f" on patches of shape {tuple(size)}")


class SlidingWindow:
    """Wrap a patch-based model so that it runs on volumes of any size.

    Parameters
    ----------
    model
        A callable taking ``(b, C, *patch)`` and returning ``(b, K, *patch)``.
    patch_size
        The patch size: one int for every axis, or one per spatial axis.
    overlap
        Fraction of a patch shared with its neighbour along each axis, in [0, 1).
    blend
        One of :data:`BLEND_MODES`.
    patch_batch
        Patches per model call (of any volumes of the batch).
    sigma_scale
        Width of the Gaussian weight as a fraction of the patch (``blend="gaussian"``).
    output_key, output
        Which part of the patch model's return value is its output (as for
        :class:`~maskscope.Method`): applied to every patch before blending.

    Attributes
    ----------
    n_calls
        Model calls so far.
    max_patches
        The largest number of patches the model received in one call.
    """

    def __init__(
        self,
        model: Callable,
        patch_size: int | Sequence[int],
        *,
        overlap: float = 0.25,
        blend: str = "constant",
        patch_batch: int = 4,
        sigma_scale: float = 0.125,
        output_key: str | int | None = None,
        output: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        self.patch_size = _per_axis(patch_size, "patch_size")
        if not 0.0 <= float(overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
        if blend not in BLEND_MODES:
            raise ValueError(f"blend must be one of {BLEND_MODES}, got {blend!r}")
        if isinstance(patch_batch, bool) or not isinstance(patch_batch, int) or patch_batch < 1:
            raise ValueError(f"patch_batch must be an int >= 1, got {patch_batch!r}")
        try:
            from monai.inferers import sliding_window_inference
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "sliding-window inference needs MONAI: pip install 'maskscope[monai]'"
            ) from exc
        self._infer = sliding_window_inference
        self.model = model
        self._adapted = OutputAdapter(model, output_key, output)
        self.overlap = float(overlap)
        self.blend = blend
        self.patch_batch = int(patch_batch)
        self.sigma_scale = float(sigma_scale)
        self.n_calls = 0
        self.max_patches = 0

    def __repr__(self) -> str:
        return (
            f"SlidingWindow(patch_size={self.patch_size}, overlap={self.overlap}, "
            f"blend={self.blend!r}, patch_batch={self.patch_batch})"
        )

    def _predict(self, patches: torch.Tensor) -> torch.Tensor:
        self.n_calls += 1
        self.max_patches = max(self.max_patches, int(patches.shape[0]))
        try:
            return self._adapted(patches)
        except Exception as exc:
            raise _patch_error(exc, tuple(patches.shape[2:])) from exc

    # the wrapped model's layout, device, dtype and mode, for the engine's checks
    def modules(self):
        """The wrapped model's modules (none for a plain callable)."""
        return self.model.modules() if hasattr(self.model, "modules") else iter(())

    def parameters(self):
        """The wrapped model's parameters (none for a plain callable)."""
        return self.model.parameters() if hasattr(self.model, "parameters") else iter(())

    def buffers(self):
        """The wrapped model's buffers (none for a plain callable)."""
        return self.model.buffers() if hasattr(self.model, "buffers") else iter(())

    @property
    def training(self) -> bool:
        """Whether the wrapped model is in training mode."""
        return bool(getattr(self.model, "training", False))

    @property
    def in_channels(self) -> int | None:
        """The wrapped model's declared input channels, if it declares them."""
        return getattr(self.model, "in_channels", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(B, K, *spatial)`` of the model run patch by patch on ``x``."""
        nd = x.ndim - 2
        size = (self.patch_size,) * nd if isinstance(self.patch_size, int) else self.patch_size
        if len(size) != nd:
            raise PatchSizeError(
                f"patch_size has {len(size)} values for an input with {nd} spatial axes "
                f"{tuple(x.shape[2:])}: give one size for every axis, or {nd}"
            )
        return self._infer(
            x,
            roi_size=size,
            sw_batch_size=self.patch_batch,
            predictor=self._predict,
            overlap=self.overlap,
            mode=self.blend,
            sigma_scale=self.sigma_scale,
        )
