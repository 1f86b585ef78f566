"""Scores: gathered probabilities and the prepared reference equal the plain formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine.scores import (
    PreparedReference,
    dice,
    iou,
    pixel_probabilities,
    region_index,
    region_mean_probability,
)


def softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_pixel_probabilities_equal_full_softmax_then_gather(k, kind):
    g = torch.Generator().manual_seed(k)
    out = torch.randn(3, k, 5, 6, generator=g, dtype=torch.float64) * 4
    if kind == "probabilities":
        out = torch.sigmoid(out) if k == 1 else torch.softmax(out, dim=1)
    region = torch.rand(5, 6, generator=g) > 0.6
    flat = out.numpy().reshape(3, k, -1)
    if kind == "logits":
        probs = 1 / (1 + np.exp(-flat)) if k == 1 else softmax_np(flat)
    else:
        probs = flat
    for target in range(max(k, 2)):
        p = probs[:, 0] if k == 1 else probs[:, target]
        if k == 1 and target == 0:
            p = 1 - p
        want = p[:, region.flatten().numpy()]
        got = pixel_probabilities(out, region_index(region), target, kind)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
        mean = region_mean_probability(out, region, target, kind)
        np.testing.assert_allclose(mean.numpy(), want.mean(1), rtol=1e-12)
        by_index = region_mean_probability(out, region_index(region), target, kind)
        np.testing.assert_array_equal(by_index.numpy(), mean.numpy())


def overlap_np(score, pred: np.ndarray, ref: np.ndarray, classes) -> float:
    vals = []
    for c in classes:
        p, r = pred == c, ref == c
        inter, total = (p & r).sum(), p.sum() + r.sum()
        if total == 0:
            continue
        vals.append(2.0 * inter / total if score is dice else inter / (total - inter))
    return float(np.mean(vals)) if vals else 1.0


@pytest.mark.parametrize("score", [dice, iou])
def test_prepared_reference_gives_the_same_overlap(score):
    g = torch.Generator().manual_seed(0)
    ref = torch.randint(0, 4, (7, 9), generator=g, dtype=torch.uint8)
    ref[ref == 3] = 2  # class 3 absent from the reference
    pred = torch.randint(0, 4, (5, 7, 9), generator=g, dtype=torch.uint8)
    pred[0] = ref  # a perfect prediction
    pred[1] = 0  # only background
    classes = [1, 2, 3]
    plain = score(pred, ref, classes)
    prepared = score(pred, PreparedReference(ref, classes), classes)
    np.testing.assert_array_equal(prepared.numpy(), plain.numpy())
    want = [overlap_np(score, b.numpy(), ref.numpy(), classes) for b in pred]
    np.testing.assert_allclose(plain.numpy(), want, rtol=1e-12)
    assert prepared[0] == 1.0 and prepared[1] == 0.0
    # two-class labels as booleans count the same
    binary = (pred == 1).to(torch.uint8)
    np.testing.assert_array_equal(
        score(binary.view(torch.bool), PreparedReference(ref, [0, 1]), [0, 1]).numpy(),
        score(binary, ref, [0, 1]).numpy(),
    )
    # a prepared reference for other classes is prepared again, not misused
    other = score(pred, PreparedReference(ref, [1]), [2, 3])
    np.testing.assert_array_equal(other.numpy(), score(pred, ref, [2, 3]).numpy())


@pytest.mark.parametrize("v", [7, 8, 2040, 2048, 4000, 4003, 589824])
@pytest.mark.parametrize("fill", ["random", "ones", "zeros"])
def test_count_of_flags_is_exact(v, fill):
    from maskscope._engine.scores import _count

    g = torch.Generator().manual_seed(v)
    if fill == "random":
        mask = torch.rand(3, v, generator=g) > 0.3
    else:
        mask = torch.full((3, v), fill == "ones")
    want = mask.long().sum(dim=1)
    assert torch.equal(_count(mask).long(), want)
    assert _count(mask).dtype == torch.int32
    if v >= 16:  # rows that start off a word boundary
        assert torch.equal(_count(mask[:, 1:]).long(), mask[:, 1:].long().sum(dim=1))
