"""The notebook's model fields (output key, padding, array order), as in napari's widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")

from maskscope import SegRISE
from maskscope.gui import device_choices
from maskscope.notebook import ExplainWidget
from tests.conftest import ThresholdNet


class DictOut(ThresholdNet):
    """Returns its logits under "seg" beside an auxiliary head (no default key fits)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = super().forward(x)
        return {"aux": torch.zeros_like(logits), "seg": logits}


class NeedsMultiple(ThresholdNet):
    """Refuses inputs whose spatial sizes are not multiples of 16 (a U-Net's constraint)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % 16 for s in x.shape[2:]):
            raise RuntimeError(f"sizes must be multiples of 16, got {tuple(x.shape[2:])}")
        return super().forward(x)


class Ramp(ThresholdNet):
    """Weighs the input by a ramp along the first spatial axis: not symmetric in the axes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = x.shape[2]
        ramp = torch.linspace(0.3, 1.7, depth, dtype=x.dtype).view(1, 1, depth, 1, 1)
        return super().forward(x * ramp)


@pytest.fixture
def image2d() -> np.ndarray:
    img = np.zeros((40, 40), np.float32)
    img[8:26, 10:30] = 1.0
    return img


def test_output_key_field_chooses_what_is_explained(image2d):
    model = DictOut(2)
    w = ExplainWidget(model, image2d, n_masks=8, output_key="seg")
    assert w.output_key_text.value == "seg"
    expl = w.run().wait(timeout=30)
    assert w.error is None and expl.done
    expected = SegRISE(model, output_key="seg").explain(image2d, n_masks=8)
    np.testing.assert_allclose(expl.map, expected.map, rtol=1e-5, atol=1e-6)

    w.output_key_text.value = "logits"  # not a key of this model's output
    assert w.run().wait(timeout=30) is None
    assert "logits" in str(w.error) and "seg" in str(w.error)
    assert "failed" in w.status.value or "Cannot start" in w.status.value


def test_pad_multiple_field_pads_and_a_bad_one_is_named(image2d):
    model = NeedsMultiple(2)
    w = ExplainWidget(model, image2d, n_masks=8)
    assert w.run().wait(timeout=30) is None and "multiples of 16" in str(w.error)

    w.pad_multiple_text.value = "16"
    w.pad_mode_dropdown.value = "replicate"
    assert list(w.device_dropdown.options) == device_choices()
    w.device_dropdown.value = "cpu"
    expl = w.run().wait(timeout=30)
    assert w.error is None and expl.map.shape == image2d.shape
    expected = SegRISE(model, pad_multiple=16, pad_mode="replicate").explain(image2d, n_masks=8)
    np.testing.assert_allclose(expl.map, expected.map, rtol=1e-5, atol=1e-6)

    w.pad_multiple_text.value = "sixteen"
    assert w.run().wait(timeout=30) is expl  # a run that cannot start keeps the last map
    assert "pad multiple takes a positive int" in w.status.value and not w.running


def test_reversed_array_order_feeds_the_model_kji_and_shows_the_map_in_ijk():
    vol = np.zeros((10, 16, 20), np.float32)
    vol[2:8, 3:12, 4:15] = 1.0
    model = Ramp(3)
    spacing = (3.0, 2.0, 1.0)
    w = ExplainWidget(model, vol, voxel_spacing=spacing, axes="kji", n_masks=8, grid=3)
    expl = w.run().wait(timeout=60)
    assert w.error is None and expl.done
    kji = np.ascontiguousarray(vol.transpose(2, 1, 0))
    expected = SegRISE(model).explain(kji, voxel_spacing=spacing[::-1], n_masks=8, grid=3)
    np.testing.assert_allclose(expl.map, expected.map, rtol=1e-5, atol=1e-6)  # model's order
    shown = w._shown(expl)
    np.testing.assert_allclose(shown.map, expected.map.transpose(2, 1, 0), rtol=1e-5, atol=1e-6)
    assert shown.voxel_spacing == spacing and shown.map.shape == vol.shape

    w.axes_dropdown.value = "ijk"  # the same volume as given: another map
    as_given = w.run().wait(timeout=60)
    assert as_given.map.shape == vol.shape
    assert not np.allclose(as_given.map, shown.map, atol=1e-3)
