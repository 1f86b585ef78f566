"""Deletion / insertion curves against slow voxel-by-voxel reference code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import Explanation, faithfulness
from maskscope.evaluate import (
    deletion,
    insertion,
    random_orders,
    saliency_order,
    step_counts,
    trapezoid_auc,
)
from tests.evaluate.cases import image2ch, image2d, image3d, saliency_for
from tests.evaluate.reference import BoxNet, min_margin, ref_auc, ref_curve, ref_order

STEPS = 7
CASES = {
    "2d": (image2d, 2, 1),
    "3d": (image3d, 3, 1),
    "2ch": (image2ch, 2, 2),
}


def case(name):
    make, dims, channels = CASES[name]
    img = make()
    spatial = img.shape[1:] if channels > 1 else img.shape
    return img, saliency_for(spatial), BoxNet(dims, channels)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("substrate", ["zero", "blur", "min"])
@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_curve_matches_reference(name, substrate, kind):
    img, sal, net = case(name)
    assert min_margin(img, sal, kind, STEPS, substrate) > 1e-4  # no near-tie to flip
    fn = deletion if kind == "deletion" else insertion
    curve = fn(sal, model=net, image=img, steps=STEPS, substrate=substrate, batch_size=3)
    fractions, dice, prob = ref_curve(img, sal, kind, STEPS, substrate)
    np.testing.assert_allclose(curve.fractions, fractions, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve.scores("dice"), dice, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.scores("probability"), prob, rtol=1e-5, atol=1e-6)
    assert curve.auc("dice") == pytest.approx(ref_auc(fractions, dice), abs=1e-12)
    assert curve.auc("probability") == pytest.approx(ref_auc(fractions, prob), abs=1e-5)
    assert (curve.kind, curve.order, curve.done, curve.n_orders) == (kind, "saliency", True, 1)


@pytest.mark.parametrize("name", ["2d", "3d"])
def test_random_baseline_is_the_mean_over_seeded_orders(name):
    img, sal, net = case(name)
    res = faithfulness(sal, model=net, image=img, steps=STEPS, n_random=2, seed=5, batch_size=4)
    rng = np.random.default_rng(5)
    orders = [rng.permutation(sal.size) for _ in range(2)]
    for kind in ("deletion", "insertion"):
        base = getattr(res, f"random_{kind}")
        assert (base.order, base.n_orders, base.done) == ("random", 2, True)
        refs = [ref_curve(img, sal, kind, STEPS, "zero", order=o) for o in orders]
        fractions = refs[0][0]
        for i, score in enumerate(("dice", "probability"), start=1):
            want = np.mean([r[i] for r in refs], axis=0)
            np.testing.assert_allclose(base.scores(score), want, rtol=1e-5, atol=1e-6)
            aucs = [ref_auc(fractions, r[i]) for r in refs]
            assert base.auc(score) == pytest.approx(np.mean(aucs), abs=1e-5)
            assert base.auc_std(score) == pytest.approx(np.std(aucs, ddof=1), abs=1e-5)
        assert res.auc(kind, random=True) == base.auc("dice")
        assert res.auc(kind) == getattr(res, kind).auc("dice")


def test_orders_and_counts():
    sal = saliency_for((9, 7), seed=2)
    assert saliency_order(sal).tolist() == ref_order(sal)
    assert len(set(sal.ravel().tolist())) < sal.size  # the map has ties
    a, b = random_orders(63, 3, seed=1), random_orders(63, 3, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])
    assert sorted(a[2].tolist()) == list(range(63))
    assert step_counts(10, 4).tolist() == [0, 2, 5, 7, 10]
    assert trapezoid_auc(np.array([0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0])) == 0.5


def test_explanation_source_gives_its_reference_and_target():
    img, sal, net = case("2d")
    ref = np.zeros(sal.shape, np.int64)
    ref[4:8, 5:9] = 1  # not the model's prediction
    expl = Explanation(method="SegRISE", map=sal, image=img[None], reference=ref, target=1)
    res = faithfulness(expl, model=net, steps=STEPS, n_random=0)
    _, dice, prob = ref_curve(img, sal, "deletion", STEPS, "zero", reference=ref)
    np.testing.assert_allclose(res.deletion.scores("dice"), dice, atol=1e-12)
    np.testing.assert_allclose(res.deletion.scores("probability"), prob, rtol=1e-5, atol=1e-6)
    assert (res.method, res.target, res.random_deletion) == ("SegRISE", 1, None)
    tensor_map = faithfulness(torch.from_numpy(sal), model=net, image=img, steps=STEPS, n_random=0)
    assert not np.allclose(tensor_map.deletion.scores("dice"), dice)  # own prediction differs


class ThreeClassNet(torch.nn.Module):
    """Class 1 where the image is above 0.5, class 2 where it is below 0.1, else class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), 6 * (x - 0.5), 6 * (0.1 - x)], dim=1)


def test_all_foreground_classes_score_each_voxels_own_class():
    rng = np.random.default_rng(0)
    img = (rng.random((6, 7)) * 0.9 + 0.05).astype(np.float32)
    img[0, :3] = [0.02, 0.04, 0.97]  # keep both foreground classes present
    sal = rng.random((6, 7))
    net = ThreeClassNet()
    curve = deletion(sal, model=net, image=img, steps=3, substrate="min")
    ref = np.where(img > 0.5, 1, np.where(img < 0.1, 2, 0))
    x = np.concatenate([np.zeros_like(img)[None], 6 * (img - 0.5)[None], 6 * (0.1 - img)[None]])
    p = np.exp(x) / np.exp(x).sum(0)
    fg = ref > 0
    want = np.mean(np.where(ref == 1, p[1], p[2])[fg])
    assert curve.scores("probability")[0] == pytest.approx(want, rel=1e-5)
    assert curve.scores("dice")[0] == 1.0
    only2 = deletion(sal, model=net, image=img, steps=3, substrate="min", target=2)
    assert only2.scores("probability")[0] == pytest.approx(p[2][ref == 2].mean(), rel=1e-5)
