"""The model section's output key and padding fields; model failures as notifications."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import SegRISE
from maskscope._engine.failures import ModelError
from maskscope.gui import error_line
from maskscope.napari import explain_in_viewer
from maskscope.wording import failure_line

from .conftest import Threshold, run_to_end, saliency_layers, square_image

RUN = {"n_masks": 12, "grid": 4, "batch_size": 4, "seed": 2}


class Picky(nn.Module):
    """Raises from inside TorchScript on any input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 0:
            raise ValueError("this model refuses every input")
        return torch.cat([-x, x], 1)


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = Threshold(2)
        self.eval()

    def forward(self, x):
        logits = self.net(x)
        return {"seg": logits, "aux": -logits}


class SkipNet(nn.Module):
    """Pool, upsample, concatenate with the input: needs even sizes, like a U-Net level."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.head = nn.Conv2d(2, 2, 1)
        with torch.no_grad():  # class 1 where the mean of the image and its pooled copy > 0.5
            self.stem.weight.zero_()
            self.stem.weight[0, 0, 1, 1] = 1.0
            self.head.weight.copy_(torch.tensor([[-4.0, -4.0], [4.0, 4.0]])[..., None, None])
            self.head.bias.copy_(torch.tensor([4.0, -4.0]))
        self.eval()

    def forward(self, x):
        x = self.stem(x)
        low = nn.functional.interpolate(nn.functional.max_pool2d(x, 2), scale_factor=2.0)
        return self.head(torch.cat([x, low], 1))


def test_a_torchscript_failure_shows_the_real_cause(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    with pytest.warns(DeprecationWarning):
        scripted = torch.jit.script(Picky().eval())
    widget = explain_in_viewer(viewer, scripted, spatial_dims=2, method="SegRISE", **RUN)
    run_to_end(qtbot, widget)

    (message,) = errors()
    error = widget._failure.error
    assert isinstance(error, ModelError)
    line = failure_line(error, frontend="gui")
    assert line == (
        "the model failed on an input batch of shape (1, 1, 48, 48): ValueError: this model "
        "refuses every input"
    )
    assert message == f"maskscope: {line}" == f"maskscope: {error_line(error)}"
    assert widget.status.text() == f"failed: {line}"
    assert failure_line(error, frontend="cli").startswith(line)  # the CLI says the same
    assert widget.run_button.isEnabled() and widget.worker is None


def test_the_output_key_field_chooses_the_output(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    widget = explain_in_viewer(viewer, DictOutput(), method="SegRISE", **RUN)
    run_to_end(qtbot, widget)
    (message,) = errors()
    assert "choose one of 'seg', 'aux' with \"output key\" = KEY" in message
    assert "output_key" not in message

    widget.models.output_key.setText("seg")
    run_to_end(qtbot, widget)
    assert len(errors()) == 1
    (layer,) = saliency_layers(viewer)
    plain = SegRISE(Threshold(2)).explain(square_image(), **RUN)
    np.testing.assert_array_equal(layer.data, plain.map.astype(layer.data.dtype))


def test_the_pad_multiple_field_pads_the_model(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    image = np.random.default_rng(0).random((45, 47)).astype(np.float32)
    viewer.add_image(image, name="odd")
    widget = explain_in_viewer(viewer, SkipNet(), spatial_dims=2, method="SegRISE", **RUN)
    run_to_end(qtbot, widget)
    (message,) = errors()
    assert "45×47" in message and 'set "pad multiple" = 16' in message

    widget.models.pad_multiple.setText("16, 8")
    run_to_end(qtbot, widget)
    assert len(errors()) == 1
    (layer,) = saliency_layers(viewer)
    assert layer.data.shape == (45, 47) and layer.metadata["maskscope"]["partial"] is False

    widget.models.pad_multiple.setText("16, x")
    assert widget.run() is None
    assert errors()[-1] == (
        "maskscope: pad multiple takes a positive int, or one per axis separated by commas "
        "(16 or 16, 16, 8), got '16, x'"
    )


def test_explain_in_viewer_fills_the_fields(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = explain_in_viewer(viewer, DictOutput(), output_key="seg", pad_multiple=(16, 8))
    assert widget.models.output_key.text() == "seg"
    assert widget.models.pad_multiple.text() == "16, 8"
    assert widget.models.output_key.isVisibleTo(widget)


def test_model_input_set_against_the_first_convolution_is_refused(
    make_napari_viewer, qtbot, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 16, 16), np.float32), name="vol")
    model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1)).eval()
    widget = explain_in_viewer(viewer, model, spatial_dims=2, method="SegRISE", **RUN)
    assert widget.run() is None
    (message,) = errors()
    assert 'first convolution is 3D, but "model input" is set to 2D' in message
    assert "set it to auto or 3D" in message and widget.run_button.isEnabled()
