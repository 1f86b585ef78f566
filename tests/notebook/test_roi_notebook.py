"""The notebook widget explains a region of interest given as an array or a box."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from maskscope import SegRISE
from maskscope.notebook import ExplainWidget
from tests.conftest import ThresholdNet


def _two_squares() -> np.ndarray:
    img = np.zeros((30, 34), np.float32)
    img[3:10, 3:11] = 1.0
    img[18:26, 20:30] = 1.0
    return img


@pytest.mark.parametrize("roi", ["16:28,18:32", "mask"])
def test_roi_as_a_box_or_an_array(roi):
    img = _two_squares()
    if roi == "mask":
        roi = np.zeros(img.shape, bool)
        roi[16:28, 18:32] = True
    w = ExplainWidget(ThresholdNet(2), img, roi=roi, crop=True, n_masks=16, grid=4)
    w.run_button.click()
    expl = w.wait(timeout=60)
    assert w.error is None, w.error
    want = SegRISE(ThresholdNet(2)).explain(img, roi=roi, crop=True, n_masks=16, grid=4)
    np.testing.assert_allclose(expl.map, want.map, rtol=1e-6, atol=1e-9)
    assert expl.params["crop_window"] == want.params["crop_window"]


def test_reversed_axes_turn_the_roi_too():
    vol = np.zeros((8, 10, 12), np.float32)
    vol[2:6, 3:8, 2:5] = 1.0
    vol[2:6, 3:8, 8:11] = 1.0
    w = ExplainWidget(ThresholdNet(3), vol, roi="0:8,0:10,0:6", axes="kji", n_masks=8, grid=2)
    w.run_button.click()
    expl = w.wait(timeout=60)
    assert w.error is None, w.error
    want = SegRISE(ThresholdNet(3)).explain(vol.T.copy(), roi="0:6,0:10,0:8", n_masks=8, grid=2)
    np.testing.assert_allclose(expl.map, want.map, rtol=1e-6, atol=1e-9)


def test_a_bad_roi_is_shown_and_kept_as_the_error():
    w = ExplainWidget(ThresholdNet(2), _two_squares(), roi="0:4,40:50", n_masks=8)
    w.run_button.click()
    w.wait(timeout=30)
    assert "must lie inside the image" in str(w.error)
    assert "must lie inside the image" in w.status.value
