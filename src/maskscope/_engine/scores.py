"""Scores: turn a batch of model outputs into one weight per mask (or per mask and pixel).

All functions are batched and stay on the outputs' device.

Conventions
-----------
* ``outputs`` are ``(B, K, *spatial)`` for a segmentation model, ``(B, K)`` for a classifier,
  as logits (``kind="logits"``: softmax over K, or sigmoid when K = 1) or probabilities
  (``kind="probabilities"``).
* A segmentation is a label image: ``argmax`` over K, or ``p > 0.5`` when K = 1 (label 1 is
  the foreground).
* Overlap scores (:func:`dice`, :func:`iou`) compare hard segmentations per class and average
  over the requested classes. A class that is empty in both segmentations is left out of the
  average (there is nothing to disagree about); when it is empty in both for every requested
  class the score is 1. A class present in one and absent in the other scores 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = [
    "OVERLAP_SCORES",
    "PROBABILITY_SLACK",
    "OverlapScore",
    "PreparedReference",
    "check_probabilities",
    "class_probability",
    "dice",
    "get_overlap_score",
    "iou",
    "pixel_probabilities",
    "probabilities",
    "region_index",
    "region_mean_probability",
    "segmentation",
]

OUTPUT_KINDS = ("logits", "probabilities")


def probabilities(outputs: torch.Tensor, kind: str = "logits") -> torch.Tensor:
    """Class probabilities from model outputs (softmax over K, or sigmoid when K = 1)."""
    if kind == "probabilities":
        return outputs
    if kind != "logits":
        raise ValueError(f"kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    if outputs.shape[1] == 1:
        return torch.sigmoid(outputs)
    return torch.softmax(outputs, dim=1)


def segmentation(outputs: torch.Tensor, kind: str = "logits") -> torch.Tensor:
    """Hard label image ``(B, *spatial)`` from segmentation outputs (uint8 when K ≤ 256)."""
    if outputs.shape[1] == 1:
        threshold = 0.0 if kind == "logits" else 0.5
        return (outputs[:, 0] > threshold).to(torch.uint8)
    # argmax over a short, strided class axis is slow on CPU: one pass per class instead
    # (ties go to the lower class, as with argmax)
    if outputs.shape[1] == 2:
        return (outputs[:, 1] > outputs[:, 0]).view(torch.uint8)
    best = outputs[:, 0]
    dtype = torch.uint8 if outputs.shape[1] <= 256 else torch.long
    labels = torch.zeros(best.shape, dtype=dtype, device=outputs.device)
    for k in range(1, outputs.shape[1]):
        better = outputs[:, k] > best
        labels.masked_fill_(better, k)
        best = torch.maximum(best, outputs[:, k])
    return labels


def _target_probability(outputs: torch.Tensor, target: int, kind: str) -> torch.Tensor:
    if outputs.shape[1] == 1:
        p1 = outputs[:, 0] if kind == "probabilities" else torch.sigmoid(outputs[:, 0])
        return p1 if target == 1 else 1.0 - p1
    if kind == "logits" and outputs.shape[1] == 2:
        # softmax over two classes is the sigmoid of the difference: one pass, no exp of both
        other = outputs[:, 1 - target]
        return torch.sigmoid(outputs[:, target] - other)
    return probabilities(outputs, kind)[:, target]


def class_probability(outputs: torch.Tensor, target: int, kind: str = "logits") -> torch.Tensor:
    """Probability of ``target`` for a classifier's ``(B, K)`` outputs → ``(B,)``."""
    return _target_probability(outputs, target, kind)


def region_index(region: torch.Tensor) -> torch.Tensor:
    """Flat indices of the True voxels of a boolean ``spatial`` mask (compute it once)."""
    return region.flatten().nonzero().squeeze(1)


def _gather(outputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(B, K, *spatial)`` → ``(B, K, P)`` at the flat voxel indices ``index``."""
    b, k = outputs.shape[:2]
    return outputs.reshape(b * k, -1).index_select(1, index).reshape(b, k, -1)


def region_mean_probability(
    outputs: torch.Tensor, region: torch.Tensor, target: int, kind: str = "logits"
) -> torch.Tensor:
    """Mean probability of ``target`` over the voxels of ``region`` → ``(B,)``.

    ``region`` is a boolean ``spatial`` mask (usually the reference segment) or, faster
    when called per chunk, its flat indices from :func:`region_index`.
    """
    index = region_index(region) if region.dtype == torch.bool else region
    return pixel_probabilities(outputs, index, target, kind).mean(dim=1)


def pixel_probabilities(
    outputs: torch.Tensor, index: torch.Tensor, target: int, kind: str = "logits"
) -> torch.Tensor:
    """Probability of ``target`` at the flat voxel indices ``index`` → ``(B, P)``.

    The logits are gathered first, so the softmax runs over the P voxels only.
    """
    return _target_probability(_gather(outputs, index), target, kind)


#: int64 words of eight 0/1 bytes added before a byte lane could reach 256 and carry.
_LANE_WORDS = 255


def _count(mask: torch.Tensor) -> torch.Tensor:
    """True values per row of a boolean ``(B, V)`` tensor (int32, exact below 2³¹).

    Rows are read eight flags at a time as int64 words (SWAR): sums of at most 255 words
    keep each byte lane at most 255, so the lanes never carry into each other and their
    bytes are added at the end. About ten times faster on a CPU than summing the bytes,
    which converts them first. Rows that are not whole, aligned words are summed plainly.
    """
    flags = mask.view(torch.uint8)
    b, v = flags.shape
    n_words = v // 8
    if v % 8 or n_words < _LANE_WORDS or not flags.is_contiguous() or flags.storage_offset() % 8:
        return flags.sum(dim=1, dtype=torch.int32)
    words = flags.view(torch.int64)
    n_full = n_words // _LANE_WORDS * _LANE_WORDS
    lanes = [words[:, :n_full].view(b, -1, _LANE_WORDS).sum(dim=2)]
    if n_full < n_words:
        lanes.append(words[:, n_full:].sum(dim=1, keepdim=True))
    return torch.cat(lanes, dim=1).view(torch.uint8).sum(dim=1, dtype=torch.int32)


class PreparedReference:
    """A reference segmentation with what overlap scores need of it, computed once.

    Pass it instead of the reference tensor to :func:`dice` or :func:`iou` when scoring
    many chunks against the same reference: the per-class voxel indices and counts are
    then not recomputed per chunk, and intersections are counted at the reference's
    voxels only.

    Parameters
    ----------
    ref
        The reference label image ``(*spatial)``.
    classes
        The classes that will be scored.
    """

    def __init__(self, ref: torch.Tensor, classes: Sequence[int]) -> None:
        self.ref = ref
        self.classes = tuple(int(c) for c in classes)
        flat = ref.reshape(-1)
        self.index = {c: (flat == c).nonzero().squeeze(1) for c in self.classes}
        self.counts = {c: int(i.numel()) for c, i in self.index.items()}


def _is_class(labels: torch.Tensor, c: int) -> torch.Tensor:
    """``labels == c``; a boolean label image (two classes) is its own class-1 mask."""
    if labels.dtype == torch.bool:
        return labels if c == 1 else ~labels if c == 0 else torch.zeros_like(labels)
    return labels == c


def _overlap_counts(
    pred: torch.Tensor, ref: torch.Tensor | PreparedReference, classes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(ref, PreparedReference) or not set(classes) <= set(ref.classes):
        ref = PreparedReference(ref.ref if isinstance(ref, PreparedReference) else ref, classes)
    b = pred.shape[0]
    pred = pred.reshape(b, -1)
    inter, n_pred, n_ref = [], [], []
    for c in classes:
        inter.append(_count(_is_class(pred.index_select(1, ref.index[c]), c)))
        n_pred.append(_count(_is_class(pred, c)))
        n_ref.append(torch.full((b,), ref.counts[c], dtype=torch.int32, device=pred.device))
    return (
        torch.stack(inter, 1).double(),
        torch.stack(n_pred, 1).double(),
        torch.stack(n_ref, 1).double(),
    )


def _mean_over_present(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    n = present.sum(dim=1)
    total = torch.where(present, values, torch.zeros_like(values)).sum(dim=1)
    return torch.where(n > 0, total / n.clamp(min=1), torch.ones_like(total))


def dice(
    pred: torch.Tensor, ref: torch.Tensor | PreparedReference, classes: Sequence[int]
) -> torch.Tensor:
    """Hard Dice between predictions ``(B, *sp)`` and a reference ``(*sp)``, per class averaged.

    ``2 |P ∩ R| / (|P| + |R|)`` for each class in ``classes``; see the module notes for the
    empty cases. ``ref`` may be a :class:`PreparedReference`. Returns ``(B,)`` float64.
    """
    inter, n_pred, n_ref = _overlap_counts(pred, ref, classes)
    denom = n_pred + n_ref
    present = denom > 0
    values = 2.0 * inter / denom.clamp(min=1)
    return _mean_over_present(values, present)


def iou(
    pred: torch.Tensor, ref: torch.Tensor | PreparedReference, classes: Sequence[int]
) -> torch.Tensor:
    """Hard intersection over union (Jaccard), same conventions as :func:`dice`."""
    inter, n_pred, n_ref = _overlap_counts(pred, ref, classes)
    union = n_pred + n_ref - inter
    present = union > 0
    values = inter / union.clamp(min=1)
    return _mean_over_present(values, present)


#: Signature of an overlap score: ``(pred (B, *sp), ref (*sp), classes) -> (B,)``.
OverlapScore = Callable[[torch.Tensor, torch.Tensor, Sequence[int]], torch.Tensor]

#: Overlap scores by name, as listed by the GUIs.
OVERLAP_SCORES: dict[str, OverlapScore] = {"dice": dice, "iou": iou}


def get_overlap_score(score: str | OverlapScore) -> OverlapScore:
    """Resolve a score name or callable once; unknown names list the valid ones."""
    if callable(score):
        return score
    try:
        return OVERLAP_SCORES[score]
    except KeyError:
        valid = ", ".join(repr(k) for k in OVERLAP_SCORES)
        raise ValueError(f"score must be one of {valid} or a callable, got {score!r}") from None


#: How far outside [0, 1] a probability may be (float rounding of a softmax or sigmoid).
PROBABILITY_SLACK = 1e-3


def check_probabilities(out: torch.Tensor, kind: str) -> None:
    """Refuse outputs called probabilities that are not: values outside [0, 1]."""
    if kind != "probabilities":
        return
    lo, hi = float(out.min()), float(out.max())
    if lo < -PROBABILITY_SLACK or hi > 1.0 + PROBABILITY_SLACK:
        raise ValueError(
            f"outputs='probabilities' expects values in [0, 1], but the model returned values "
            f"in [{lo:.3g}, {hi:.3g}]: these look like logits, so set outputs='logits' (or make "
            "the model end in a softmax or sigmoid)"
        )
