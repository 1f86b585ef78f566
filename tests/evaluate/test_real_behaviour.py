"""On the bundled 2D sample, a SegRISE map beats the random order on every curve."""

from __future__ import annotations

import pytest

from maskscope import SegRISE, faithfulness
from maskscope.data import shapes2d
from maskscope.models import load_model


@pytest.mark.slow
def test_segrise_map_beats_the_random_baseline_on_shapes2d():
    sample = shapes2d(seed=1)
    model = load_model("shapes2d")
    expl = SegRISE(model).explain(sample.image, n_masks=300, seed=0)
    res = faithfulness(expl, model=model, steps=20, n_random=2, seed=0, batch_size=8)
    for score in ("dice", "probability"):
        assert res.auc("deletion", score) < res.auc("deletion", score, random=True) - 0.2
        assert res.auc("insertion", score) > res.auc("insertion", score, random=True) + 0.2
    # the first 5 % of the voxels in saliency order already take the segment away
    assert res.deletion.scores("dice")[1] < 0.1 < res.random_deletion.scores("dice")[1]
