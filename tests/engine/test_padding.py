"""Padding to a multiple of k: amounts, modes, the crop back, and real U-Nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import RISE, SegRISE
from maskscope._engine.failures import ModelError
from maskscope._engine.padding import PadToMultiple, normalize_multiple, pad_amounts
from tests.conftest import Spy, ThresholdNet

RUN = {"n_masks": 24, "grid": 4, "batch_size": 6, "seed": 1}


def test_amounts_are_symmetric_with_the_odd_voxel_after():
    assert pad_amounts((33, 41, 25), 16) == [(7, 8), (3, 4), (3, 4)]
    assert pad_amounts((32, 40), (16, 8)) == [(0, 0), (0, 0)]
    assert pad_amounts((5, 6, 7), (1, 4, 8)) == [(0, 0), (1, 1), (0, 1)]
    with pytest.raises(ValueError, match="2 values for an input with 3 spatial axes"):
        pad_amounts((4, 4, 4), (2, 2))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, (), (4, 0), "16"])
def test_bad_multiples_are_refused(bad):
    with pytest.raises(ValueError, match="pad_multiple must be a positive int"):
        normalize_multiple(bad)


def test_the_model_sees_a_divisible_size_and_the_output_is_cropped_back_in_place():
    seen = []

    def model(x):
        seen.append(tuple(x.shape))
        return x * 2  # same spatial size: cropped back to the input's voxels

    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    out = PadToMultiple(model, (4, 8))(x)
    assert seen == [(2, 3, 8, 8)]
    torch.testing.assert_close(out, x * 2, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("mode", "row"),
    [
        ("zeros", [0, 1, 2, 3, 0, 0]),
        ("replicate", [1, 1, 2, 3, 3, 3]),
        ("reflect", [2, 1, 2, 3, 2, 1]),
    ],
)
def test_pad_modes(mode, row):
    seen = []
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])  # (1, 1, 1, 3)
    PadToMultiple(lambda t: seen.append(t) or t, (1, 6), mode)(x)
    assert seen[0][0, 0, 0].tolist() == row


def test_reflect_wider_than_the_axis_says_what_to_use():
    with pytest.raises(ValueError, match="use pad_mode='zeros' or 'replicate'"):
        PadToMultiple(lambda t: t, 16, "reflect")(torch.zeros(1, 1, 3, 3))


def test_outputs_of_another_size_are_left_alone_and_nested_outputs_are_cropped():
    def model(x):
        return {"out": x, "low": x[..., ::2, ::2], "score": x.mean((2, 3))}

    out = PadToMultiple(model, 8)(torch.ones(1, 1, 5, 6))
    assert out["out"].shape == (1, 1, 5, 6)
    assert out["low"].shape == (1, 1, 4, 4) and out["score"].shape == (1, 1)


def test_no_padding_needed_gives_the_same_map_and_calls(square2d):
    plain = Spy(ThresholdNet(2))
    padded = Spy(ThresholdNet(2))
    a = SegRISE(plain).explain(square2d, **RUN)
    b = SegRISE(padded, pad_multiple=8).explain(square2d, **RUN)
    np.testing.assert_array_equal(a.map, b.map)
    assert plain.batch_sizes == padded.batch_sizes
    assert b.params["pad_multiple"] == 8 and "pad_multiple" not in a.params


@pytest.mark.parametrize("method", [RISE, SegRISE])
def test_a_fully_convolutional_model_gives_the_same_map_padded(method):
    # a zero-padded 3×3 convolution without bias: zero padding of the input changes nothing
    # inside, so padding to 16 and cropping back must reproduce the unpadded map
    img = np.zeros((13, 19), np.float32)
    img[3:9, 4:12] = 1.0
    spy = Spy(ThresholdNet(2))
    a = method(ThresholdNet(2)).explain(img, **RUN)
    b = method(spy, pad_multiple=16).explain(img, **RUN)
    np.testing.assert_allclose(b.map, a.map, rtol=1e-6, atol=1e-7)
    assert a.map.shape == b.map.shape == (13, 19)
    assert spy.calls == 1 + 4  # the unperturbed pass and four batches, all padded


class SkipNet(nn.Module):
    """Pool, upsample, concatenate with the input: needs even sizes, like a U-Net level."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(2, 2, 1)
        with torch.no_grad():  # fixed weights: foreground where x + pooled x > 1
            self.head.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]).view(2, 2, 1, 1))
            self.head.bias.copy_(torch.tensor([0.0, -1.0]))
        self.eval()

    def forward(self, x):
        low = nn.functional.interpolate(nn.functional.max_pool2d(x, 2), scale_factor=2.0)
        return self.head(torch.cat([x, low], 1))


def test_unperturbed_and_perturbed_inputs_are_both_padded():
    img = np.random.default_rng(0).random((15, 17)).astype(np.float32)
    with pytest.raises(ModelError, match="pad_multiple=16"):
        SegRISE(SkipNet(), spatial_dims=2).explain(img, **RUN)
    spy = Spy(SkipNet())
    expl = SegRISE(spy, spatial_dims=2, pad_multiple=2).explain(img, **RUN)
    assert expl.map.shape == (15, 17) and spy.images == 1 + 24


monai_nets = pytest.importorskip("monai.networks.nets")


@pytest.fixture(scope="module")
def monai_unet():
    torch.manual_seed(0)
    net = monai_nets.UNet(
        spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2)
    )
    return net.eval()


def test_a_monai_unet_fails_on_33x41x25_without_padding_and_works_with_it(monai_unet):
    vol = np.random.default_rng(1).random((33, 41, 25)).astype(np.float32)
    with pytest.raises(ModelError) as err:
        SegRISE(monai_unet).explain(vol, n_masks=4, batch_size=2)
    msg = str(err.value)
    assert "Sizes of tensors must match" in msg  # the model's own message
    assert "the spatial size 33×41×25 is probably not divisible" in msg
    assert "set pad_multiple=16" in msg
    assert isinstance(err.value.__cause__, RuntimeError)

    expl = SegRISE(monai_unet, pad_multiple=16).explain(vol, n_masks=4, batch_size=2)
    assert expl.map.shape == (33, 41, 25) and np.isfinite(expl.map).all()
    # the prediction is the padded network's, cropped back at the right place
    with torch.inference_mode():
        x = torch.nn.functional.pad(torch.from_numpy(vol)[None, None], (3, 4, 3, 4, 7, 8))
        own = monai_unet(x)[..., 7:-8, 3:-4, 3:-4].argmax(1)[0].numpy()
    np.testing.assert_array_equal(expl.prediction, own)
