"""Bad input gets an error naming what was expected and what was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import Explanation, SegRISE, faithfulness
from maskscope.evaluate import deletion, iter_faithfulness, randomization_check, seed_agreement
from tests.conftest import Spy, TinyClassifier
from tests.evaluate.cases import image2d, image3d, saliency_for
from tests.evaluate.reference import BoxNet


def args(**kw):
    img = image2d()
    base = {"model": BoxNet(2), "image": img, "steps": 4}
    return saliency_for(img.shape), {**base, **kw}


def test_empty_reference():
    sal, kw = args(reference=np.zeros((12, 12), np.int64))
    with pytest.raises(ValueError, match=r"no voxel of any foreground class \(labels > 0\)"):
        faithfulness(sal, **kw)
    sal, kw = args(target=1, image=np.zeros((12, 12), np.float32))  # the prediction is empty
    with pytest.raises(ValueError, match="no voxel of class 1: expected at least one voxel"):
        deletion(sal, **kw)


def test_map_of_the_wrong_shape():
    _, kw = args()
    with pytest.raises(ValueError, match=r"spatial shape \(12, 12\), got \(12, 11\)"):
        faithfulness(np.zeros((12, 11)), **kw)
    with pytest.raises(ValueError, match=r"spatial shape \(7, 8, 6\), got \(12, 12\)"):
        faithfulness(np.zeros((12, 12)), **{**kw, "model": BoxNet(3), "image": image3d()})


@pytest.mark.parametrize("steps", [0, -3])
def test_steps_must_be_positive(steps):
    sal, kw = args(steps=steps)
    with pytest.raises(ValueError, match=f"steps must be a positive int .*, got {steps}"):
        faithfulness(sal, **kw)
    with pytest.raises(TypeError, match=r"steps must be a positive int, got 2.5"):
        faithfulness(sal, **{**kw, "steps": 2.5})


def test_more_steps_than_voxels_is_refused():
    sal, kw = args(steps=145)  # a 12×12 image
    with pytest.raises(ValueError, match=r"steps must be at most the 144 voxels .*, got 145"):
        faithfulness(sal, **kw)
    assert faithfulness(sal, **{**kw, "steps": 144}).deletion.fractions[1] == 1 / 144


def test_unknown_substrate():
    sal, kw = args(substrate="noise")
    with pytest.raises(
        ValueError,
        match="substrate must be one of 'zero', 'blur', 'min' or a callable, got 'noise'",
    ):
        faithfulness(sal, **kw)
    with pytest.raises(ValueError, match="blur_sigma must be a positive number of voxels, got 0"):
        faithfulness(sal, **{**kw, "substrate": "blur", "blur_sigma": 0})
    bad = lambda im: im[:, :-1]  # noqa: E731
    with pytest.raises(ValueError, match=r"substrate must have the image's shape \(1, 12, 12\)"):
        faithfulness(sal, **{**kw, "substrate": bad})


def test_other_arguments():
    sal, kw = args()
    with pytest.raises(ValueError, match=r"n_random must be >= 0 .*, got -1"):
        faithfulness(sal, **kw, n_random=-1)
    with pytest.raises(ValueError, match="kinds must be 'deletion', 'insertion' or both"):
        faithfulness(sal, **kw, kinds=("deletion", "removal"))
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        faithfulness(sal, **kw, batch_size=0)
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 1\].*got 4"):
        faithfulness(sal, **kw, target=4)
    with pytest.raises(ValueError, match="map contains NaN or infinite values"):
        faithfulness(np.full((12, 12), np.nan), **kw)
    with pytest.raises(TypeError, match="map must be an Explanation, a numpy array or a torch"):
        faithfulness([[0.0] * 12] * 12, **kw)
    with pytest.raises(ValueError, match="a raw saliency map needs the image it explains"):
        faithfulness(sal, **{**kw, "image": None})
    with pytest.raises(TypeError, match="unexpected keyword argument 'stepz'"):
        faithfulness(sal, **kw, stepz=3)


def test_classifier_and_slices_are_refused_before_any_curve():
    spy = Spy(TinyClassifier())
    with pytest.raises(ValueError, match=r"must return \(B, K, \*spatial\), got \(1, 2\)"):
        iter_faithfulness(np.zeros((12, 12)), model=spy, image=image2d())
    assert spy.calls == 1
    expl = Explanation(
        "SegRISE", np.zeros((3, 12, 12)), slices=(1,), image=np.zeros((1, 3, 12, 12))
    )
    with pytest.raises(ValueError, match=r"made slice by slice .* evaluate one slice at a time"):
        faithfulness(expl, model=BoxNet(2))
    with pytest.raises(ValueError, match=r"a 2D model on a volume of shape \(7, 8, 6\)"):
        faithfulness(np.zeros((7, 8, 6)), model=BoxNet(2), image=image3d()[None], spatial_dims=2)


def test_randomization_and_agreement_inputs():
    with pytest.raises(
        TypeError,
        match=r"re-initialises a torch.nn.Module's layers; the method's model is a function",
    ):
        randomization_check(SegRISE(lambda x: torch.cat([-x, x], 1)), image2d())
    with pytest.raises(ValueError, match=r"steps must be a positive int or None .*, got 0"):
        randomization_check(SegRISE(BoxNet(2)), image2d(), steps=0)
    with pytest.raises(ValueError, match=r"same shape, got \(4, 4\) and \(4, 5\)"):
        seed_agreement(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(
        ValueError, match=r"region must have the maps' shape \(4, 4\), got \(3, 4\)"
    ):
        seed_agreement(np.zeros((4, 4)), np.zeros((4, 4)), region=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="region='reference' needs the first argument to be an"):
        seed_agreement(np.zeros((4, 4)), np.zeros((4, 4)), region="reference")


def test_a_model_in_training_mode_is_warned_about():
    sal, kw = args(model=BoxNet(2).train())
    with pytest.warns(UserWarning, match="the model is in training mode"):
        faithfulness(sal, **kw)
