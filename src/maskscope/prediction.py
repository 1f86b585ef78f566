"""The prediction first: run the model once and say what it segments, before explaining it.

Every frontend (command line, napari, notebook) calls :func:`check_prediction` before the
perturbation run and shows :meth:`PredictionSummary.line` and, when the segmentation looks
failed, :attr:`PredictionSummary.warning`. An empty prediction, or one under
:data:`TINY_FRACTION` of the given reference's size, usually means the input is not what
the model was trained on: other intensities (normalisation) or a transposed volume (axis
order). No GUI package is imported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._engine.inputs import declared_channels, prepare_image, prepare_reference, resolve_slices
from ._engine.loop import ModelRunner
from ._engine.scores import segmentation
from .intensity import apply_normalization
from .methods.context import resolve_target

__all__ = [
    "CLI_FIELDS",
    "GUI_FIELDS",
    "TINY_FRACTION",
    "PredictionSummary",
    "check_prediction",
    "predict",
    "summarize",
]

#: A prediction smaller than this fraction of the reference's foreground is "tiny".
TINY_FRACTION = 0.10

#: How each frontend names the two settings a failed segmentation usually comes from.
CLI_FIELDS = {
    "normalize": "--normalize",
    "axes": "--axes",
    "outputs": "--outputs",
    "output_key": "--output-key",
}
GUI_FIELDS = {
    "normalize": "the normalisation",
    "axes": "the array order",
    "outputs": '"model outputs" (the notebook widget\'s outputs=)',
    "output_key": '"output key"',
}

#: How far a softmax's channel sum may be from 1 (float rounding).
SUM_SLACK = 1e-3


@dataclass(frozen=True)
class PredictionSummary:
    """What the model segments on the unperturbed input.

    Attributes
    ----------
    prediction
        The label image (the input's spatial shape; slices not predicted are 0).
    counts
        Voxels per class over the predicted slices, ``{class: voxels}``.
    dice
        Dice of the foreground (the target class when given, else every non-zero class)
        against the reference, or None without a reference.
    reference_voxels
        Foreground voxels of the reference (None without one).
    warning
        Why the prediction looks like a failed segmentation, or None.
    """

    prediction: np.ndarray
    counts: dict[int, int]
    dice: float | None
    reference_voxels: int | None
    warning: str | None

    @property
    def foreground(self) -> int:
        """Predicted voxels of every non-zero class."""
        return sum(n for k, n in self.counts.items() if k != 0)

    def line(self) -> str:
        """``"prediction: class 0 40000 voxels, class 1 2630; Dice 0.957 against the
        reference (2700 voxels)"``."""
        parts = [
            f"class {k} {n} voxels" if i == 0 else f"class {k} {n}"
            for i, (k, n) in enumerate(sorted(self.counts.items()))
        ]
        text = "prediction: " + ", ".join(parts)
        if self.dice is not None:
            text += f"; Dice {self.dice:.3f} against the reference ({self.reference_voxels} voxels)"
        return text


def predict(
    explainer: Any,
    image: Any,
    *,
    normalize: str | Callable[[np.ndarray], Any] = "none",
    slices: Any = "all",
    target: int | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """The model's segmentation of the unperturbed input, as the explanation will see it.

    Parameters
    ----------
    explainer
        A method instance (``SegRISE(model, ...)``): its model call (with its output choice
        and padding), device, dtype, output kind and spatial dimensionality are used, as in
        its runs.
    image, normalize, slices
        As for ``iter_explain``.
    target
        A class index to check against the model's output channels (``ValueError`` as the
        run would raise, before anything is said about a class the model does not have).

    Returns
    -------
    tuple of (labels or None, predicted)
        The label image (None for a classifier) and a boolean mask over the first spatial
        axis of the slices predicted (all True unless a 2D model goes slice by slice).
    """
    labels, done, _ = _predict(explainer, image, normalize, slices, target)
    return labels, done


def _predict(
    explainer: Any, image: Any, normalize: Any, slices: Any, target: int | None
) -> tuple[np.ndarray | None, np.ndarray, tuple | None]:
    """:func:`predict`, and what the outputs look like when they were called logits
    (:func:`_logit_range`), or None."""
    declared = declared_channels(getattr(explainer, "model", None))
    layout = prepare_image(
        image, explainer.spatial_dims, explainer.in_channels, declared_channels=declared
    )
    img = layout.image
    if callable(normalize) or normalize != "none":
        img = torch.from_numpy(apply_normalization(normalize, img))
    img = img.to(explainer.dtype)
    spatial = layout.spatial
    model = getattr(explainer, "model_call", explainer.model)  # with padding, output choice
    if not layout.slice_by_slice:
        out = ModelRunner(model, spatial)(img.unsqueeze(0).to(explainer.device))
        _check_target(target, out)
        if out.ndim <= 2:
            return None, np.ones(spatial[:1], bool), None
        labels = segmentation(out, explainer.outputs)[0].cpu().numpy()
        return labels, np.ones(spatial[:1], bool), _logit_range(out, explainer.outputs)
    runner = ModelRunner(model, spatial[1:])
    labels = np.zeros(spatial, np.uint8)
    done = np.zeros(spatial[0], bool)
    looks = None
    for z in resolve_slices(slices, spatial[0]):
        out = runner(img[:, z].unsqueeze(0).to(explainer.device))
        _check_target(target, out)
        if out.ndim <= 2:
            return None, done, None
        seg = segmentation(out, explainer.outputs)[0].cpu().numpy()
        labels = labels.astype(np.promote_types(labels.dtype, seg.dtype), copy=False)
        labels[z] = seg
        done[z] = True
        looks = _merge_ranges(looks, _logit_range(out, explainer.outputs))
    return labels, done, looks


def _logit_range(out: torch.Tensor, outputs: str) -> tuple | None:
    """``(min, max, the channels sum to 1 at every voxel, channels)`` of outputs called
    logits; None for probabilities."""
    if outputs != "logits":
        return None
    k = int(out.shape[1])
    sums = out.double().sum(dim=1)
    sums_to_one = k > 1 and bool(((sums - 1.0).abs() <= SUM_SLACK).all())
    return float(out.min()), float(out.max()), sums_to_one, k


def _merge_ranges(a: tuple | None, b: tuple | None) -> tuple | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), max(a[1], b[1]), a[2] and b[2], a[3]


def _outputs_warning(looks: tuple | None, fields: Mapping[str, str]) -> str | None:
    """Outputs called logits that look like probabilities: in [0, 1], summing to 1 over
    several channels, or one channel (a sigmoid), which read as logits (above 0 is
    foreground) makes every voxel foreground."""
    if looks is None:
        return None
    lo, hi, sums_to_one, channels = looks
    if not (lo >= 0.0 and hi <= 1.0 + SUM_SLACK):
        return None
    set_it = f"set {fields['outputs']} to probabilities"
    if channels == 1:
        return (
            f"the model's one output channel lies in [{lo:.3g}, {hi:.3g}]: these look like "
            "probabilities (a sigmoid inside the model), and read as logits every voxel "
            f"above 0 is foreground; {set_it}"
        )
    if sums_to_one:
        return (
            f"the model's {channels} output channels lie in [0, 1] and sum to 1 at every "
            f"voxel: these look like probabilities (a softmax inside the model), and read as "
            f"logits their scores are squeezed by a second softmax; {set_it}"
        )
    return None


def _check_target(target: int | None, out: torch.Tensor) -> None:
    if target is not None:
        resolve_target(target, out, None, True)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def summarize(
    prediction: np.ndarray,
    reference: Any = None,
    *,
    target: int | None = None,
    predicted: np.ndarray | None = None,
    fields: Mapping[str, str] = GUI_FIELDS,
) -> PredictionSummary:
    """Count voxels per class, compare with a reference, and warn about a failed one.

    Parameters
    ----------
    prediction
        The label image.
    reference
        A label image of the same shape, or None.
    target
        The class explained (Dice and warnings are about it); None: every foreground class.
    predicted
        Boolean mask over the first axis of the slices that were predicted (the others
        are left out of the counts and the Dice).
    fields
        How the frontend names the normalisation and axis-order settings in its warning.
    """
    pred = np.asarray(prediction)
    ref = None if reference is None else prepare_reference(reference, pred.shape, None)
    ref = None if ref is None else ref.numpy()
    if predicted is not None and not np.all(predicted):
        pred = pred[predicted]
        ref = None if ref is None else ref[predicted]
    values, counts = np.unique(pred, return_counts=True)
    per_class = {int(v): int(n) for v, n in zip(values, counts, strict=True)}
    fg = pred == target if target is not None else pred > 0
    dice = ref_n = None
    if ref is not None:
        ref_fg = ref == target if target is not None else ref > 0
        dice, ref_n = _dice(fg, ref_fg), int(ref_fg.sum())
    return PredictionSummary(
        np.asarray(prediction),
        per_class,
        dice,
        ref_n,
        _warning(int(fg.sum()), ref_n, target, {**GUI_FIELDS, **fields}),
    )


def _warning(
    n_fg: int, ref_n: int | None, target: int | None, fields: Mapping[str, str]
) -> str | None:
    what = "foreground" if target is None else f"class {target}"
    check = (
        f"check {fields['normalize']} (the intensities the model was trained on) and "
        f"{fields['axes']} (a transposed volume)"
    )
    if n_fg == 0:
        return (
            f"the model predicts no {what} voxel on this input: explaining it would explain a "
            f"failed segmentation; {check}; a multi-label model (one sigmoid per channel, "
            f"overlapping) needs one channel chosen: {fields['output_key']} 'channel C'"
        )
    if ref_n and n_fg < TINY_FRACTION * ref_n:
        return (
            f"the model predicts {n_fg} {what} voxels, {100.0 * n_fg / ref_n:.1f} % of the "
            f"reference's {ref_n}: explaining it would explain a failed segmentation; {check}"
        )
    return None


def check_prediction(
    explainer: Any,
    image: Any,
    *,
    reference: Any = None,
    target: int | None = None,
    normalize: str | Callable[[np.ndarray], Any] = "none",
    slices: Any = "all",
    fields: Mapping[str, str] = GUI_FIELDS,
) -> PredictionSummary | None:
    """:func:`predict` then :func:`summarize`; None for a classifier."""
    labels, done, looks = _predict(explainer, image, normalize, slices, target)
    if labels is None:
        return None
    summary = summarize(labels, reference, target=target, predicted=done, fields=fields)
    about_outputs = _outputs_warning(looks, {**GUI_FIELDS, **fields})
    if about_outputs is None:
        return summary
    warning = about_outputs if summary.warning is None else f"{about_outputs}; {summary.warning}"
    return dataclasses.replace(summary, warning=warning)
