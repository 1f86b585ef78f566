"""ROI masks and label images with a channel axis of one (MONAI's channel-first labels)."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope import ROI, SegRISE
from tests.conftest import ThresholdNet


def test_a_channel_axis_of_one_is_taken_as_references_are(square2d):
    mask = np.zeros((16, 16), bool)
    mask[4:10, 5:12] = True
    labels = mask.astype(np.int32) * 2
    # a fixed batch: a measured one follows timing, and other chunks round the sums otherwise
    kw = dict(n_masks=8, grid=4, seed=1, crop=False, batch_size=4)
    want = SegRISE(ThresholdNet(2)).explain(square2d, roi=mask, **kw)
    for roi in (mask[None], ROI.from_mask(mask[None]), ROI.from_label(labels[None], 2)):
        got = SegRISE(ThresholdNet(2)).explain(square2d, roi=roi, **kw)
        np.testing.assert_array_equal(got.map, want.map)
    with pytest.raises(ValueError, match=r"spatial shape"):
        SegRISE(ThresholdNet(2)).explain(square2d, roi=np.stack([mask, mask]), **kw)
