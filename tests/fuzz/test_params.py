"""Parameters, seeds, devices and custom functions: checked at the door, named in errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from maskscope import HDM, METHODS, RISE, RunOptions, SegRISE
from maskscope._engine.masks import BLOCK, RiseMasks
from maskscope.models import load_model
from tests.conftest import ThresholdNet


def image() -> np.ndarray:
    img = np.zeros((16, 16), np.float32)
    img[4:10, 5:12] = 1.0
    return img


def _fields():
    for name, cls in METHODS.items():
        for owner in (cls.Params, RunOptions):
            for f in dataclasses.fields(owner):
                yield pytest.param(name, owner, f, id=f"{name}-{owner.__name__}.{f.name}")


@pytest.mark.parametrize(("method", "owner", "field"), list(_fields()))
def test_none_is_refused_unless_the_field_is_optional(method, owner, field) -> None:
    if "None" in str(field.type):
        _validate(owner, field.name)  # accepted
        return
    with pytest.raises(TypeError, match=rf"{owner.__name__}\.{field.name} must be .* got None$"):
        _validate(owner, field.name)


def _validate(owner, name) -> None:
    from maskscope._engine.params import validate_params

    validate_params(owner(**{name: None}))


def test_none_grid_message_is_exact() -> None:
    with pytest.raises(TypeError) as info:
        SegRISE(ThresholdNet(2)).explain(image(), grid=None)
    assert str(info.value) == "SegRISEParams.grid must be an int or a tuple of ints, got None"


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"grid": (4.5, 4)}, TypeError, r"grid must be an int or a tuple of ints, got \(4.5, 4\)"),
        ({"grid": ()}, TypeError, r"grid must be an int or a tuple of ints, got \(\)"),
        ({"n_masks": True}, TypeError, r"n_masks must be an int, got True"),
        ({"n_masks": "10"}, TypeError, r"n_masks must be an int, got '10'"),
        ({"p_keep": "0.5"}, TypeError, r"p_keep must be a number, got '0.5'"),
        ({"baseline": float("nan")}, ValueError, r"baseline must be finite, got nan"),
        ({"baseline": float("inf")}, ValueError, r"baseline must be finite, got inf"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, inf\], got -1"),
        ({"seed": 1.0}, TypeError, r"seed must be an int, got 1.0"),
        ({"tol": np.float64("nan")}, ValueError, r"tol must be finite, got nan"),
        ({"score": 3}, TypeError, r"score must be one of 'dice', 'iou' or a function, got 3"),
    ],
)
def test_bad_parameter_values(kwargs, exc, message) -> None:
    with pytest.raises(exc, match=message):
        SegRISE(ThresholdNet(2)).explain(image(), **{"n_masks": 8, "grid": 4, **kwargs})


def test_numpy_scalars_are_accepted_and_recorded_as_numbers() -> None:
    plain = SegRISE(ThresholdNet(2)).explain(
        image(), n_masks=8, grid=4, p_keep=0.5, seed=3, batch_size=16
    )
    numpy = SegRISE(ThresholdNet(2)).explain(
        image(),
        n_masks=np.int64(8),
        grid=(np.int32(4), np.int64(4)),
        p_keep=np.float32(0.5),
        seed=np.uint64(3),
        batch_size=np.int16(16),
    )
    np.testing.assert_array_equal(plain.map, numpy.map)
    for key in ("n_masks", "seed", "batch_size"):
        assert type(numpy.params[key]) is int
    assert numpy.params["grid"] == [4, 4] and type(numpy.params["p_keep"]) is float


def _masks(seed: int) -> torch.Tensor:
    return RiseMasks((16, 16), 4, 0.5, seed)(0, 64)


def test_seeds_beyond_32_bits_have_masks_of_their_own() -> None:
    base = _masks(0)
    for seed in (2**32, 2**33, 2**64 + 5):
        other = _masks(seed)
        assert not torch.equal(other, base), seed
        assert torch.equal(other, _masks(seed))  # and they are reproducible
    assert not torch.equal(_masks(2**32), _masks(2**33))
    # [2**32, block 0] is not the entropy of [0, block 1]: seed 0's second block
    second_block_of_0 = RiseMasks((16, 16), 4, 0.5, 0)(BLOCK, BLOCK + 64)
    assert not torch.equal(_masks(2**32), second_block_of_0)


def _cuda_case() -> tuple[str, str]:
    if torch.cuda.is_available():
        return "cuda:99", r"there are \d+ CUDA devices"
    if not torch.backends.cuda.is_built():
        return "cuda", r"device='cuda' was asked, but this torch .* was built without CUDA"
    return "cuda", "no CUDA GPU is visible"


def test_unavailable_device_is_a_clear_message() -> None:
    device, message = _cuda_case()
    with pytest.raises(ValueError, match=message):
        SegRISE(lambda x: x, device=device)
    with pytest.raises(ValueError, match=message):
        load_model("shapes2d", device=device)
    with pytest.raises(ValueError, match=r"device must be a torch device .* got 'gpu'"):
        SegRISE(ThresholdNet(2), device="gpu")


def nan_score(out: torch.Tensor) -> torch.Tensor:
    return torch.full((out.shape[0],), float("nan"))


def nan_overlap(pred, ref, classes) -> torch.Tensor:
    return torch.full((pred.shape[0],), float("nan"))


def nan_distance(pred, ref) -> torch.Tensor:
    d = torch.ones(pred.shape[0], dtype=torch.float64)
    d[-1] = float("inf")
    return d


def nan_fill(x, masks) -> torch.Tensor:
    return x * masks * float("nan")


def half_fill(x, masks) -> torch.Tensor:
    return (x * masks)[..., :8]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RISE(ThresholdNet(2), score_fn=nan_score), r"the score_fn function nan_score "),
        (lambda: SegRISE(ThresholdNet(2)), r"the score function nan_overlap returned NaN"),
        (
            lambda: HDM(ThresholdNet(2), distance_fn=nan_distance),
            r"the distance_fn function nan_distance returned NaN or infinite values for 1 of",
        ),
        (lambda: HDM(ThresholdNet(2), fill_fn=nan_fill), r"the fill_fn nan_fill returned NaN"),
        (lambda: HDM(ThresholdNet(2), fill_fn=half_fill), r"fill_fn half_fill must return \("),
    ],
)
def test_custom_function_outputs_are_checked(build, message) -> None:
    explainer = build()
    kw = {"diameter": 4, "stride": 4} if isinstance(explainer, HDM) else {"n_masks": 8, "grid": 4}
    if isinstance(explainer, SegRISE):
        kw["score"] = nan_overlap
    with pytest.raises(ValueError, match=message):
        explainer.explain(image(), **kw)


def test_array_baselines_are_accepted_and_checked() -> None:
    per_channel = SegRISE(ThresholdNet(2)).explain(
        image(), n_masks=8, grid=4, baseline=np.array([0.25])
    )
    number = SegRISE(ThresholdNet(2)).explain(image(), n_masks=8, grid=4, baseline=0.25)
    np.testing.assert_allclose(per_channel.map, number.map, rtol=1e-6)
    with pytest.raises(ValueError, match=r"baseline must be an array of finite numbers"):
        SegRISE(ThresholdNet(2)).explain(image(), n_masks=8, baseline=np.array([np.nan]))
    with pytest.raises(ValueError, match=r"fill must be an array of finite numbers"):
        HDM(ThresholdNet(2)).explain(image(), diameter=4, stride=4, fill=torch.tensor([np.inf]))


@pytest.mark.parametrize(
    ("message", "cli", "form"),
    [
        (
            "RunOptions.tol must be in (0, inf], got -1",
            "--tol must be in (0, inf], got -1",
            '"early-stop tolerance" must be in (0, inf], got -1',
        ),
        (
            "SegRISEParams.n_masks must be an int, got 2.5",
            "--n-masks must be an int, got 2.5",
            '"n masks" must be an int, got 2.5',
        ),
    ],
)
def test_messages_speak_each_frontends_words(message, cli, form) -> None:
    from maskscope.wording import for_cli, for_gui

    assert for_cli(message) == cli and for_gui(message) == form
