"""The unperturbed pass of one image or slice, and the target it resolves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._engine.loop import ModelRunner
from .._engine.scores import check_probabilities, segmentation

__all__ = ["Context", "build_context", "resolve_target"]


@dataclass
class Context:
    """Everything a method needs to build the task for one image or slice.

    Attributes
    ----------
    x
        The input ``(1, C, *spatial)`` on the device, in the model's dtype.
    output
        The model's output on the unperturbed input, ``(1, K, *spatial)`` or ``(1, K)``.
    reference
        Reference label image ``(*spatial)`` (given, or the model's prediction), or None
        for a classifier.
    prediction
        The model's own segmentation ``(*spatial)``, or None for a classifier.
    target
        The explained class; None means "all foreground classes" (overlap scores only).
    kind
        ``"logits"`` or ``"probabilities"``.
    seed
        The run's seed.
    device
        Where the work happens.
    voxel_spacing
        Physical voxel size per spatial axis of ``x``.

    A context is built by :func:`build_context` from the unperturbed pass; a method's
    ``make_task`` turns it into a complete :class:`~maskscope._engine.loop.Task`.
    """

    x: torch.Tensor
    output: torch.Tensor
    reference: torch.Tensor | None
    prediction: torch.Tensor | None
    target: int | None
    kind: str
    seed: int
    device: torch.device
    voxel_spacing: tuple[float, ...]
    #: Crop mode: the full image's spatial shape and the window, for RISE masks laid out
    #: in full-image coordinates (None: the masks cover ``x``).
    frame: tuple[tuple[int, ...], tuple[slice, ...]] | None = None
    #: Draw the RISE masks independently for each input channel.
    per_channel: bool = False

    @property
    def spatial(self) -> tuple[int, ...]:
        """Spatial shape of the input."""
        return tuple(self.x.shape[2:])

    @property
    def n_classes(self) -> int:
        """K, the number of output channels."""
        return int(self.output.shape[1])

    @property
    def is_segmentation(self) -> bool:
        """Whether the model returns a map per class."""
        return self.output.ndim > 2

    def foreground_classes(self) -> list[int]:
        """Classes 1 .. K-1 (just 1 for a one-channel model)."""
        return list(range(1, max(self.n_classes, 2)))

    def classes(self) -> list[int]:
        """The target as a list of classes (all foreground classes when None)."""
        return self.foreground_classes() if self.target is None else [self.target]

    def region(self) -> torch.Tensor:
        """Boolean mask of the reference voxels of the explained class(es)."""
        assert self.reference is not None
        if self.target is None:
            return self.reference > 0
        return self.reference == self.target


def build_context(
    method,
    x: torch.Tensor,
    runner: ModelRunner,
    ref: torch.Tensor | None,
    target: int | None,
    seed: int,
    spacing: tuple[float, ...],
) -> Context:
    """Run the model on ``x`` unperturbed and resolve the reference and the target.

    ``method`` is the :class:`~maskscope.methods.base.Method` (its ``name``, ``outputs``,
    ``device``, ``needs_segmentation`` and ``target_none_means_all``); ``target`` the
    class asked for, or the one an earlier slice resolved, or None.
    """
    out = runner(x.clone())  # the model's own copy: an in-place model changes nothing
    is_seg = out.ndim > 2
    if method.needs_segmentation and not is_seg:
        raise ValueError(
            f"{method.name} explains segmentations: the model must return (B, K, *spatial), "
            f"got {tuple(out.shape)} (a classifier output; use RISE instead)"
        )
    k = int(out.shape[1])
    check_probabilities(out, method.outputs)
    prediction = segmentation(out, method.outputs)[0] if is_seg else None
    if ref is not None and not is_seg:
        raise ValueError("a reference segmentation was given, but the model is a classifier")
    if ref is not None:
        hi = int(ref.max())
        if hi >= max(k, 2):
            raise ValueError(
                f"reference labels must be in [0, {max(k, 2) - 1}] for a model with "
                f"{k} output channels, got a maximum of {hi}"
            )
        ref = ref.to(method.device)
    reference = ref if ref is not None else prediction
    return Context(
        x=x,
        output=out,
        reference=reference,
        prediction=prediction,
        target=resolve_target(target, out, reference, method.target_none_means_all),
        kind=method.outputs,
        seed=seed,
        device=method.device,
        voxel_spacing=tuple(spacing),
    )


def resolve_target(
    target: int | None, out: torch.Tensor, reference: torch.Tensor | None, none_means_all: bool
) -> int | None:
    """The class to explain: ``target`` checked, or the default for this output."""
    k = int(out.shape[1])
    hi = max(k, 2) - 1
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
            raise TypeError(f"target must be an int class index, got {target!r}")
        if not 0 <= int(target) <= hi:
            raise ValueError(
                f"target must be a class index in [0, {hi}] for a model with {k} output "
                f"channel(s), got {target}"
            )
        return int(target)
    if out.ndim == 2:
        return int(out[0].argmax()) if k > 1 else 1
    if none_means_all:
        return None
    if k <= 2:
        return 1
    counts = torch.bincount(reference.flatten(), minlength=k)[1:]
    return int(counts.argmax()) + 1
