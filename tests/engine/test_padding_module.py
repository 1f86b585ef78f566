"""PadToMultiple as an nn.Module: tracing, parameters, devices and dtypes, layout."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import SegRISE
from maskscope._engine.inputs import model_device_dtype, model_layout
from maskscope._engine.padding import PadToMultiple

monai_nets = pytest.importorskip("monai.networks.nets")


def small_unet() -> nn.Module:
    torch.manual_seed(0)
    net = monai_nets.UNet(
        spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,)
    )
    return net.eval()


def _trace(model: nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # the trace holds this size only, as torch warns
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, x)


def test_a_padded_unet_traces_at_a_size_that_is_not_a_multiple():
    net = small_unet()
    x = torch.randn(2, 1, 13, 18)
    with torch.no_grad():
        assert net(x).shape == (2, 2, 14, 18)  # the network alone: 13 rows in, 14 out
    model = nn.Sequential(PadToMultiple(net, 4), nn.Sigmoid()).eval()
    traced = _trace(model, x)
    with torch.no_grad():
        eager = model(x)
        got = traced(x)
    assert eager.shape == got.shape == (2, 2, 13, 18)
    torch.testing.assert_close(got, eager, rtol=0, atol=0)
    # saved and loaded: the same model without the Python classes
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), eager, rtol=0, atol=0)


def test_the_wrapper_alone_traces_and_crops_where_the_eager_one_does():
    net = small_unet()
    x = torch.randn(1, 1, 9, 7)
    wrapped = PadToMultiple(net, (4, 8), "replicate")
    traced = _trace(wrapped, x)
    with torch.no_grad():
        padded = nn.functional.pad(x, (0, 1, 1, 2), mode="replicate")  # 12×8
        own = net(padded)[..., 1:-2, :-1]
        torch.testing.assert_close(traced(x), own, rtol=0, atol=0)
        torch.testing.assert_close(wrapped(x), own, rtol=0, atol=0)
    assert wrapped.last_padded == (12, 8)


def test_parameters_and_state_are_the_wrapped_networks():
    net = small_unet()
    wrapped = PadToMultiple(net, 4)
    assert wrapped.model is net
    assert [id(p) for p in wrapped.parameters()] == [id(p) for p in net.parameters()]
    assert list(wrapped.state_dict()) == [f"model.{k}" for k in net.state_dict()]
    # a state saved from one padded network loads into another
    other = monai_nets.UNet(
        spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,)
    ).eval()
    again = PadToMultiple(other, 4)
    again.load_state_dict(wrapped.state_dict())
    x = torch.randn(1, 1, 10, 11)
    with torch.no_grad():
        torch.testing.assert_close(again(x), wrapped(x), rtol=0, atol=0)


def test_dtype_device_and_mode_reach_the_wrapped_network():
    net = small_unet()
    wrapped = PadToMultiple(net, 4)
    assert wrapped.training is False  # starts in the network's mode
    assert wrapped.to(torch.float64) is wrapped
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    assert model_device_dtype(wrapped) == (torch.device("cpu"), torch.float64)
    with torch.no_grad():
        assert wrapped(torch.randn(1, 1, 10, 11, dtype=torch.float64)).dtype == torch.float64
    wrapped.train()
    assert all(m.training for m in net.modules())
    wrapped.eval()
    assert not any(m.training for m in net.modules())
    assert PadToMultiple(small_unet().train(), 4).training is True


class _SpaceToDepth(nn.Module):
    """Declares 3 input channels; its first convolution takes 12 (after a 2×2 fold)."""

    in_channels = 3

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        return self.conv(nn.functional.pixel_unshuffle(x, 2))


def test_layout_and_declared_channels_are_read_through_the_wrapper():
    net = small_unet()
    assert model_layout(PadToMultiple(net, 4)) == model_layout(net) == (2, 1)
    folded = _SpaceToDepth()
    wrapped = PadToMultiple(folded, 2)
    assert model_layout(wrapped) == model_layout(folded) == (2, 3)
    assert wrapped.in_channels == 3
    assert PadToMultiple(net, 4).in_channels == net.in_channels == 1
    assert PadToMultiple(nn.Sequential(nn.Conv2d(1, 1, 1)), 4).in_channels is None


def test_a_plain_callable_is_stored_unregistered_and_still_works():
    def double(x):
        return x * 2

    wrapped = PadToMultiple(double, 8)
    assert wrapped.model is double and not list(wrapped.children())
    assert not list(wrapped.parameters()) and wrapped.training is False
    assert model_layout(wrapped) == (None, None)
    assert model_device_dtype(wrapped) == (None, None)
    x = torch.randn(1, 1, 5, 6)
    torch.testing.assert_close(wrapped.to(torch.float64)(x), x * 2)


def test_a_method_explains_the_wrapper_as_the_network_with_pad_multiple():
    img = np.random.default_rng(0).random((13, 18)).astype(np.float32)
    run = {"n_masks": 8, "grid": 4, "batch_size": 4, "seed": 1}
    net = small_unet()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "the model is in training mode" warning
        a = SegRISE(PadToMultiple(net, 4)).explain(img, **run)
    b = SegRISE(net, pad_multiple=4).explain(img, **run)
    np.testing.assert_array_equal(a.map, b.map)
    np.testing.assert_array_equal(a.prediction, b.prediction)


def test_an_exported_module_is_wrapped_as_not_training():
    conv = nn.Conv2d(1, 2, 3, padding=1).eval()
    module = torch.export.export(conv, (torch.zeros(1, 1, 8, 8),)).module()
    assert module.training  # whatever mode it was exported in
    assert PadToMultiple(module, 8).training is False


def test_an_exported_module_inside_keeps_its_mode_and_a_model_source_loads_it():
    from maskscope.batch.model_source import ModelSource

    conv = nn.Conv2d(1, 2, 3, padding=1).eval()
    module = torch.export.export(conv, (torch.zeros(1, 1, 8, 8),)).module()
    wrapped = PadToMultiple(module, 8)
    assert wrapped.eval() is wrapped and wrapped.train() is wrapped and wrapped.training
    x = torch.rand(1, 1, 5, 7)
    loaded, _ = ModelSource(wrapped.eval(), threads=1).load()
    torch.testing.assert_close(loaded(x), PadToMultiple(conv, 8)(x))
    bare, _ = ModelSource(module, threads=1).load()  # refused train() before
    assert bare is module
