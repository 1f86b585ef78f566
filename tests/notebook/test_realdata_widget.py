"""The notebook widget chooses a normalisation for the data, says so, and shows the
prediction before explaining it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from maskscope import SegRISE
from maskscope.intensity import normalize
from maskscope.notebook import ExplainWidget
from tests.conftest import ThresholdNet


def _scan() -> np.ndarray:
    img = np.full((20, 20), 100.0, np.float32)
    img[4:12, 6:16] = 900.0
    return img


def test_auto_normalisation_is_percentile_for_scanner_values_and_is_used():
    w = ExplainWidget(ThresholdNet(2), _scan(), method="SegRISE", n_masks=12, grid=4, seed=0)
    assert w.normalize_dropdown.value == "percentile"
    assert w.normalization_label.value == (
        "normalisation: percentile: clip to the 0.5–99.5th percentiles, rescale to [0, 1] "
        "(input range 100 … 900), chosen for this image"
    )
    expl = w.run().wait(60)
    want = SegRISE(ThresholdNet(2)).explain(
        normalize(_scan(), "percentile"), n_masks=12, grid=4, seed=0
    )
    np.testing.assert_allclose(expl.map, want.map, rtol=1e-6)
    counts = np.bincount(want.prediction.ravel())
    assert w.prediction_summary.counts == {0: counts[0], 1: counts[1]}
    assert (
        f"prediction: class 0 {counts[0]} voxels, class 1 {counts[1]}" in w.prediction_label.value
    )
    assert ExplainWidget(ThresholdNet(2), _scan() / 1000.0).normalize_dropdown.value == "none"


def test_a_failed_prediction_warns_in_the_notebook():
    ref = (_scan() > 500).astype(np.uint8)
    w = ExplainWidget(
        ThresholdNet(2), _scan(), ref, method="SegRISE", normalize="none", n_masks=8, grid=4
    )
    w.normalize_dropdown.value = "zscore"  # the bright square becomes ~1.9, the field ~ -0.5
    w.run().wait(60)
    assert w.prediction_summary.warning is None
    w.normalize_dropdown.value = "none"
    w.image = _scan() - 5000.0  # nothing above the threshold
    w.run().wait(60)
    assert w.prediction_summary.warning.startswith("the model predicts no foreground voxel")
    assert "Warning: the model predicts no foreground voxel" in w.prediction_label.value
    assert "the normalisation" in w.prediction_label.value
    with pytest.raises(ValueError, match="normalize must be 'auto' or one of 'none'"):
        ExplainWidget(ThresholdNet(2), _scan(), normalize="clip")
