"""The bundled demo models segment fresh samples well, and the 2D one follows the shapes rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope.data import phantom3d, shapes2d
from maskscope.models import load_model
from maskscope.models.train import dice

# Seeds far from the training batches (which use their own random streams anyway).
FRESH = (90_001, 90_002, 90_003)


@pytest.fixture(scope="module")
def shapes_model() -> torch.nn.Module:
    return load_model("shapes2d")


@pytest.mark.parametrize("right", ["circle", "square"])
def test_shapes2d_dice(shapes_model: torch.nn.Module, right: str) -> None:
    samples = [shapes2d(seed, right=right) for seed in FRESH]
    x = torch.from_numpy(np.stack([s.image for s in samples]))
    with torch.inference_mode():
        prediction = shapes_model(x).argmax(dim=1).numpy()
    scores = [dice(p, s.label) for p, s in zip(prediction, samples, strict=True)]
    assert min(scores) >= 0.95, scores


def test_shapes2d_follows_the_rule(shapes_model: torch.nn.Module) -> None:
    """Same left half, other right shape: the segmentation jumps to the other left shape."""
    circle = shapes2d(FRESH[0], right="circle")
    square = shapes2d(FRESH[0], right="square")
    # Same seed, same draws: the left halves are identical.
    np.testing.assert_array_equal(circle.image[..., :120], square.image[..., :120])
    x = torch.from_numpy(np.stack([circle.image, square.image]))
    with torch.inference_mode():
        on_circle, on_square = shapes_model(x).argmax(dim=1).numpy().astype(bool)
    assert dice(on_circle, circle.masks["triangle"]) >= 0.95
    assert dice(on_square, square.masks["cross"]) >= 0.95
    assert not (on_circle & circle.masks["cross"]).any()
    assert not (on_square & square.masks["triangle"]).any()


def test_phantom3d_dice() -> None:
    model = load_model("phantom3d")
    sample = phantom3d(90_001)
    with torch.inference_mode():
        prediction = model(torch.from_numpy(sample.image)[None]).argmax(dim=1)[0].numpy()
    assert dice(prediction, sample.label) >= 0.9
    assert not (prediction.astype(bool) & sample.masks["spine"]).any()
