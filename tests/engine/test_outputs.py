"""The output adapter: every form a model may return, the choices and their errors."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import SegRISE
from maskscope._engine.outputs import (
    OutputAdapter,
    OutputChoiceError,
    adapt_output,
    parse_output_key,
)
from tests.conftest import Spy, ThresholdNet

RUN = {"n_masks": 24, "grid": 4, "batch_size": 5, "seed": 3}


class Wrapped(nn.Module):
    """Runs ThresholdNet and packs its logits with a decoy of the same shape."""

    def __init__(self, pack) -> None:
        super().__init__()
        self.net = ThresholdNet(2)
        self.pack = pack
        self.eval()

    def forward(self, x: torch.Tensor):
        logits = self.net(x)
        decoy = -logits  # explaining it would give another map
        return self.pack(logits, decoy)


class HasLogits:
    """An output object as many model libraries return (no dict behind it)."""

    def __init__(self, logits: torch.Tensor, hidden: torch.Tensor) -> None:
        self.hidden = hidden
        self.logits = logits


class ModelOutput(OrderedDict):
    """Like Hugging Face's ModelOutput: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        return self[name]


@pytest.fixture
def plain_map(square2d):
    return SegRISE(ThresholdNet(2)).explain(square2d, **RUN).map


@pytest.fixture
def decoy_map(square2d):
    return SegRISE(Wrapped(lambda lg, d: d), spatial_dims=2).explain(square2d, **RUN).map


@pytest.mark.parametrize(
    ("pack", "choice"),
    [
        (lambda lg, d: {"aux": d, "logits": lg}, {}),
        (lambda lg, d: {"aux": d, "out": lg}, {}),  # torchvision's segmentation models
        (lambda lg, d: {"pred": lg, "aux": d}, {}),
        (lambda lg, d: {"seg": lg}, {}),  # a single key
        (lambda lg, d: {"seg": lg, "aux": d}, {"output_key": "seg"}),
        (lambda lg, d: HasLogits(lg, d), {}),
        (lambda lg, d: HasLogits(d, lg), {"output_key": "hidden"}),
        (lambda lg, d: ModelOutput(loss=d[:, 0].sum(), logits=lg), {}),
        (lambda lg, d: (lg, d[..., ::2, ::2]), {}),  # deep supervision: full-resolution first
        (lambda lg, d: [lg, d], {}),
        (lambda lg, d: (d, lg), {"output_key": 1}),
        (lambda lg, d: [d, lg], {"output_key": -1}),
        (lambda lg, d: ({"logits": lg}, d), {}),  # a dict inside a tuple
        (lambda lg, d: {"heads": [d, lg]}, {"output": lambda out: out["heads"][1]}),
    ],
)
def test_every_output_form_explains_the_chosen_tensor(pack, choice, square2d, plain_map, decoy_map):
    expl = SegRISE(Wrapped(pack), spatial_dims=2, **choice).explain(square2d, **RUN)
    np.testing.assert_array_equal(expl.map, plain_map)
    assert not np.array_equal(expl.map, decoy_map)  # the decoy would have been seen
    for name, value in choice.items():
        assert name in expl.params
        if name == "output_key":
            assert expl.params["output_key"] == value


def test_the_default_takes_the_first_obvious_key():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert adapt_output({"aux": a, "pred": b, "logits": c}) is c
    assert adapt_output({"logits": c, "out": a}) is a
    assert adapt_output({"x": b}) is b
    assert adapt_output(HasLogits(c, a)) is c


def test_several_keys_and_no_choice_lists_the_keys(square2d):
    model = Wrapped(lambda lg, d: {"seg": lg, "aux": d})
    with pytest.raises(OutputChoiceError) as err:
        SegRISE(model, spatial_dims=2).explain(square2d, **RUN)
    msg = str(err.value)
    assert "'seg': tensor(1, 2, 16, 16)" in msg and "'aux': tensor(1, 2, 16, 16)" in msg
    assert "choose one of 'seg', 'aux' with output_key=KEY" in msg
    assert "'out', 'logits', 'pred'" in msg


@pytest.mark.parametrize(
    ("out", "key", "match"),
    [
        ({"a": torch.zeros(1)}, "b", r"output_key='b' is not among the keys.*'a'"),
        ((torch.zeros(1), torch.zeros(1)), 2, r"output_key=2 is out of range.*\(0 to 1\)"),
        ((torch.zeros(1),), "logits", r"is a key, but the model returned a tuple of 1"),
        (torch.zeros(1), "logits", "leave output_key unset"),
        ([], None, "empty list"),
        ("text", None, "must return a tensor, got str"),
        (HasLogits(torch.zeros(1), torch.zeros(1)), "nope", "output_key='nope' fits none"),
    ],
)
def test_choices_that_do_not_fit_say_why(out, key, match):
    with pytest.raises(OutputChoiceError, match=match):
        adapt_output(out, key)


def test_callable_output_must_return_a_tensor_and_excludes_a_key():
    with pytest.raises(OutputChoiceError, match="must return a tensor, got a dict"):
        OutputAdapter(lambda x: {"a": x}, output=lambda out: out)(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="not both"):
        SegRISE(ThresholdNet(2), output_key="a", output=lambda out: out)
    with pytest.raises(TypeError, match="output must be a callable"):
        SegRISE(ThresholdNet(2), output="logits")
    with pytest.raises(ValueError, match="output_key must be a dict key"):
        SegRISE(ThresholdNet(2), output_key=1.5)


def test_the_unperturbed_pass_and_every_batch_go_through_the_choice(square2d):
    spy = Spy(Wrapped(lambda lg, d: {"seg": lg, "aux": d}))
    expl = SegRISE(spy, spatial_dims=2, output_key="seg").explain(square2d, **RUN)
    assert spy.batch_sizes == [1, 5, 5, 5, 5, 4]
    assert expl.n_forward == 25
    own = ThresholdNet(2)(torch.from_numpy(square2d)[None, None]).argmax(1)[0].numpy()
    np.testing.assert_array_equal(expl.prediction, own)


@pytest.mark.parametrize(
    ("text", "value"), [("logits", "logits"), ("2", 2), ("-1", -1), ("", None), (None, None)]
)
def test_typed_keys_become_indices_when_they_are_numbers(text, value):
    assert parse_output_key(text) == value


def test_setting_another_model_keeps_the_choice(square2d):
    method = SegRISE(Wrapped(lambda lg, d: {"seg": d}), spatial_dims=2, output_key="seg")
    first = method.model
    method.model = Wrapped(lambda lg, d: {"seg": lg})
    assert method.model is not first and method.model_call.output_key == "seg"
    plain = SegRISE(ThresholdNet(2)).explain(square2d, **RUN)
    np.testing.assert_array_equal(method.explain(square2d, **RUN).map, plain.map)
