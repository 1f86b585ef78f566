"""Model failures: the real cause, the known remedies, the batch-1 fallback, exported modes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import SegRISE
from maskscope._engine.failures import ModelError, failure_hint, real_message
from maskscope.models import load_model
from maskscope.wording import failure_line
from tests.conftest import ThresholdNet

RUN = {"n_masks": 20, "grid": 4, "batch_size": 4, "seed": 5}


class BoxNet(nn.Module):
    """ThresholdNet's arithmetic without its tie check, so that torch.export and tracing take it.

    Maps compared across call patterns are computed one input per call on both sides, so
    that no batched-versus-single rounding difference can meet a threshold.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 9)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.conv(x) - 0.4837
        return torch.cat([-m, m], dim=1) * 8.0


class Raises(nn.Module):
    """Raises from TorchScript: a Python exception, or a failing concatenation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 1:
            raise ValueError("two channels are not supported here")
        return torch.cat([x, x[..., :-1]], 1)


def test_torchscript_errors_give_the_interpreters_last_line():
    scripted = torch.jit.script(Raises())
    with pytest.raises(Exception) as err:  # torch.jit.Error
        scripted(torch.zeros(1, 2, 4, 4))
    assert "The following operation failed in the TorchScript interpreter" in str(err.value)
    assert real_message(err.value) == "ValueError: two channels are not supported here"
    with pytest.raises(RuntimeError) as err:
        scripted(torch.zeros(1, 1, 4, 4))
    assert real_message(err.value) == (
        "RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 4 "
        "but got size 3 for tensor number 1 in the list."
    )
    assert real_message(RuntimeError("first\nsecond")) == "RuntimeError: first"


def test_a_scripted_model_raising_is_a_model_error_with_its_cause(square2d):
    with pytest.raises(ModelError) as err:
        SegRISE(torch.jit.script(Raises()), spatial_dims=2).explain(square2d, **RUN)
    msg = str(err.value)
    assert msg.startswith("the model failed on an input batch of shape (1, 1, 16, 16): ")
    assert "RuntimeError: Sizes of tensors must match" in msg
    assert "TorchScript interpreter" not in msg
    # 16×16 is divisible by 16 already: the next power of two is suggested
    assert "set pad_multiple=32" in msg and "16×16" in msg


def test_a_wrong_channel_count_says_what_the_model_takes(cube3d):
    two = np.stack([cube3d, cube3d])  # (2, 8, 8, 8) for a one-channel model
    with pytest.raises(ModelError) as err:
        SegRISE(ThresholdNet(3)).explain(two, **RUN)
    assert "expected input[1, 2, 8, 8, 8] to have 1 channels, but got 2 channels" in str(err.value)
    assert err.value.hint == (
        "the model takes 1 input channel(s), the image has 2: give an image with 1 "
        "channel(s) as (C, *spatial), or another model"
    )


def test_an_output_of_another_spatial_size_is_named(square2d):
    with pytest.raises(ValueError) as err:
        SegRISE(lambda x: ThresholdNet(2)(x)[..., 1:], spatial_dims=2).explain(square2d, **RUN)
    msg = str(err.value)
    assert "a spatial size of 16×15 for an input of 16×16" in msg
    assert "set pad_multiple=16" in msg


def test_errors_of_plain_python_models_keep_type_message_and_cause(square2d):
    def broken(x):
        raise KeyError("weights")

    with pytest.raises(ModelError) as err:
        SegRISE(broken, spatial_dims=2).explain(square2d, **RUN)
    assert err.value.cause == "KeyError: 'weights'" and err.value.hint is None
    assert isinstance(err.value.__cause__, KeyError)


def _export(model: nn.Module, path, batch: int, dynamic: bool = False):
    example = (torch.zeros(batch, 1, 16, 16),)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(model, example, dynamic_shapes=shapes), str(path))
    return load_model(str(path), trusted=True)  # a file this test just exported


def test_a_pt2_exported_at_batch_1_falls_back_to_one_input_per_call(tmp_path, square2d):
    loaded = _export(BoxNet(), tmp_path / "b1.pt2", batch=1)
    with pytest.raises(AssertionError, match=r"Guard failed: x.size\(\)\[0\] == 1"):
        loaded(torch.zeros(4, 1, 16, 16))  # what torch says on its own
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expl = SegRISE(loaded, spatial_dims=2).explain(square2d, **RUN)
    messages = [str(w.message) for w in caught]
    (fallback,) = [m for m in messages if "one input per call" in m]
    assert "the model failed on a batch of 4 (AssertionError: Guard failed" in fallback
    assert not [m for m in messages if "training mode" in m]  # an exported module's flag
    reference = SegRISE(BoxNet()).explain(square2d, **{**RUN, "batch_size": 1})
    # chunks of 4 run one input per call, against chunks of 1: the same masks and scores,
    # summed in other groups (equal up to float rounding)
    np.testing.assert_allclose(expl.map, reference.map, rtol=1e-6, atol=1e-9)
    assert expl.n_forward == reference.n_forward

    sizes = []

    def spy(x):
        sizes.append(x.shape[0])
        return loaded(x)

    with pytest.warns(RuntimeWarning, match="one input per call"):
        SegRISE(spy, spatial_dims=2).explain(square2d, **RUN)
    assert sizes == [1, 4] + [1] * 20  # the batch of 4 failed, then every input alone


def test_a_pt2_with_a_dynamic_batch_keeps_its_batches(tmp_path, square2d):
    loaded = _export(BoxNet(), tmp_path / "dyn.pt2", batch=2, dynamic=True)
    assert loaded.training  # the flag an exported module carries, meaningless
    sizes = []

    def spy(x):
        sizes.append(x.shape[0])
        return loaded(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no training-mode warning, no fallback
        SegRISE(loaded, spatial_dims=2).explain(square2d, **RUN)
        SegRISE(spy, spatial_dims=2).explain(square2d, **RUN)
    assert sizes == [1, 4, 4, 4, 4, 4]


def test_a_pt2_exported_at_batch_2_says_to_export_a_dynamic_batch(tmp_path, square2d):
    loaded = _export(BoxNet(), tmp_path / "b2.pt2", batch=2)
    with pytest.raises(ModelError) as err:
        SegRISE(loaded, spatial_dims=2).explain(square2d, **RUN)
    assert "AssertionError: Guard failed: x.size()[0] == 2" in err.value.cause
    assert "only accepts a batch of 2" in err.value.hint
    assert 'torch.export.Dim("batch")' in err.value.hint


class HardBatch(nn.Module):
    """Reshapes with the batch size it was traced with (a common tracing mistake)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = BoxNet()

    def forward(self, x):
        return self.net(x).reshape(1, 2, 16, 16)


def test_a_model_traced_at_batch_1_falls_back_too(square2d):
    traced = torch.jit.trace(HardBatch().eval(), torch.zeros(1, 1, 16, 16))
    with pytest.warns(RuntimeWarning, match=r"shape '\[1, 2, 16, 16\]' is invalid"):
        expl = SegRISE(traced, spatial_dims=2).explain(square2d, **RUN)
    reference = SegRISE(BoxNet()).explain(square2d, **{**RUN, "batch_size": 1})
    # chunks of 4 run one input per call, against chunks of 1: the same masks and scores,
    # summed in other groups (equal up to float rounding)
    np.testing.assert_allclose(expl.map, reference.map, rtol=1e-6, atol=1e-9)
    assert expl.n_forward == reference.n_forward


def test_no_fallback_when_an_input_fails_alone_too(square2d):
    calls = []

    def fails_on_perturbed(x):
        calls.append(x.shape[0])
        if len(calls) > 1 and x.shape[0] == 1 and len(calls) > 2:
            raise RuntimeError("a perturbed input broke it")
        if x.shape[0] > 1:
            raise RuntimeError("batches are not supported")
        return ThresholdNet(2)(x)

    with pytest.raises(ModelError, match="a perturbed input broke it"):
        SegRISE(fails_on_perturbed, spatial_dims=2).explain(square2d, **RUN)
    assert calls == [1, 4, 1]  # reference, the batch, the first input alone: then it stops


@pytest.mark.parametrize(
    ("message", "shape", "expected"),
    [
        ("Guard failed: x.size()[0] == 1", (8, 1, 32, 32), "set batch_size=1"),
        ("Expected input at *args[0].shape[0] to be equal to 1", (8, 1, 4, 4), "batch_size=1"),
        ("Guard failed: x.size()[2] == 64", (1, 1, 33, 33), "fixed size 64 on axis 2"),
        ("The size of tensor a (17) must match the size of tensor b", (1, 1, 33, 32), "=16"),
        ("Sizes of tensors must match", (1, 1, 32, 32), "pad_multiple=64"),
        ("something else entirely", (1, 1, 33, 33), None),
    ],
)  # fmt: skip
def test_known_failures_get_their_hint(message, shape, expected):
    hint = failure_hint(message, shape=shape)
    assert (hint is None) if expected is None else (expected in hint)


def test_a_larger_multiple_is_suggested_when_the_padding_was_not_enough():
    hint = failure_hint("Sizes of tensors must match", shape=(1, 1, 48, 48), pad_multiple=16)
    assert "pad_multiple=16 was not enough" in hint and "set pad_multiple=32" in hint


def test_a_mismatch_left_after_padding_to_32_suggests_a_sliding_window():
    for multiple in (32, (64, 64)):
        hint = failure_hint(
            "The size of tensor a (17) must match the size of tensor b (16)",
            shape=(1, 1, 40, 40),
            pad_multiple=multiple,
        )
        assert f"padding to a multiple of {multiple} did not help" in hint
        assert "sliding window of that size (SlidingWindow.patch_size)" in hint
        assert "was not enough" not in hint
    hint = failure_hint("Sizes of tensors must match", shape=(1, 1, 48, 48), pad_multiple=16)
    assert "fixed input size needs a sliding window" in hint


def test_the_cli_and_the_guis_name_the_sliding_window_setting():
    error = ModelError(
        "RuntimeError: Sizes of tensors must match",
        failure_hint("Sizes of tensors must match", shape=(1, 1, 40, 40), pad_multiple=32),
    )
    assert "sliding window of that size (--patch-size)" in failure_line(error, frontend="cli")
    assert 'sliding window of that size ("patch size")' in failure_line(error, frontend="gui")


def test_a_module_in_training_mode_still_warns(square2d):
    net = ThresholdNet(2).train()
    with pytest.warns(UserWarning, match="training mode"):
        SegRISE(net).explain(square2d, **RUN)


def test_a_padded_input_is_named_as_the_model_saw_it():
    from maskscope._engine.model_call import ModelCall

    def fixed(x):
        raise RuntimeError("Guard failed: x.size()[2] == 64")

    call = ModelCall(fixed, pad_multiple=8)
    with pytest.raises(ModelError) as caught:
        call(torch.zeros(1, 1, 33, 30))
    text = str(caught.value)
    assert "on an input batch of shape (1, 1, 33, 30), padded to 40×32" in text
    assert "fixed size 64 on axis 2, the input is 40×32" in text
