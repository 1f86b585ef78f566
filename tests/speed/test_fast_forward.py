"""Mixed precision and compilation of the model call (FastForward, ModelCall options)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import HDM, RISE
from maskscope._engine.fast_forward import FastForward
from maskscope._engine.model_call import ModelCall


class SmallConv(nn.Module):
    """Two convolutions with a nonlinearity: enough for rounding to show."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 3, padding=1)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


class AutocastProbe(nn.Module):
    """Records the dtype its convolution computes in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.seen: list[torch.dtype] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        self.seen.append(y.dtype)
        return y


class Recorder:
    """A stand-in for a compiled model: the eager chain, recording batch sizes."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.sizes: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.fn(x)


def _batch(b: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(b)
    return torch.rand(b, 1, 12, 12, generator=g)


@pytest.mark.parametrize(
    "precision,dtype", [("bfloat16", torch.bfloat16), ("float16", torch.float16)]
)
def test_autocast_runs_the_forward_low_and_returns_float32(precision, dtype):
    probe = AutocastProbe()
    out = ModelCall(probe, precision=precision)(_batch(3))
    assert probe.seen == [dtype]
    assert out.dtype == torch.float32
    eager = ModelCall(probe)(_batch(3))
    assert probe.seen[-1] == torch.float32
    # a 1x1 convolution: only the rounding of the inputs and weights differs
    assert torch.allclose(out, eager, atol=0.02, rtol=0.02)
    assert not torch.equal(out, eager)


def test_float32_is_the_model_itself():
    model = SmallConv()
    x = _batch(4)
    with torch.inference_mode():
        assert torch.equal(ModelCall(model, precision="float32")(x), model(x))


def test_tf32_is_float32_on_a_cpu():
    model = SmallConv()
    x = _batch(4)
    with torch.inference_mode():
        assert torch.equal(ModelCall(model, precision="tf32")(x), model(x))


def test_bad_precision_and_compile_values_are_named():
    with pytest.raises(
        ValueError, match=r"precision must be one of \('float32', 'tf32', 'bfloat16', "
    ):
        ModelCall(SmallConv(), precision="half")
    with pytest.raises(TypeError, match="compile must be True or False, got 'yes'"):
        ModelCall(SmallConv(), compile="yes")


def test_smaller_batches_are_padded_to_a_compiled_size():
    model = SmallConv()
    compiled = Recorder(model)
    ff = FastForward(model, compiled)
    with torch.inference_mode():
        full = ff(_batch(8))
        last = ff(_batch(3))
        big = ff(_batch(10))
        again = ff(_batch(9))
        alone = model(_batch(3))
    assert compiled.sizes == [8, 8, 10, 10]
    assert ff.compiled_sizes == [8, 10]
    assert last.shape[0] == 3 and full.shape[0] == 8 and big.shape[0] == 10
    assert again.shape[0] == 9
    torch.testing.assert_close(last, alone, rtol=1e-5, atol=1e-6)


def test_a_failing_compiler_falls_back_to_the_model_with_a_warning():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no code generator here")

    model = SmallConv()
    compiled = torch.compile(model, backend=broken_backend, dynamic=False)
    ff = FastForward(model, compiled)
    x = _batch(2)
    with pytest.warns(RuntimeWarning, match="torch.compile could not compile the model .*no code"):
        with torch.inference_mode():
            out = ff(x)
    assert not ff.compiling
    with torch.inference_mode():
        assert torch.equal(out, model(x))
        assert torch.equal(ff(x), model(x))


def test_the_models_own_error_is_not_taken_for_a_compile_failure():
    class Fails(nn.Module):
        def forward(self, x):
            raise ValueError("channels must be 3")

    model = Fails()
    ff = FastForward(model, torch.compile(model, backend="eager", dynamic=False))
    with pytest.raises(ValueError, match="channels must be 3"):
        ff(_batch(2))


def test_with_model_keeps_precision_and_compile():
    call = ModelCall(SmallConv(), precision="bfloat16", compile=True)
    other = call.with_model(SmallConv())
    assert (other.precision, other.compile) == ("bfloat16", True)


@pytest.mark.slow
def test_inductor_compiled_model_matches_eager_within_float32_rounding():
    model = SmallConv()
    eager, compiled = ModelCall(model), ModelCall(model, compile=True)
    with torch.inference_mode():
        for b in (4, 3, 1):
            torch.testing.assert_close(compiled(_batch(b)), eager(_batch(b)), rtol=1e-4, atol=1e-5)
    assert compiled._inner.compiled_sizes == [4]


# ---------------------------------------------------------------- through a method


def _square() -> np.ndarray:
    img = np.zeros((16, 16), np.float32)
    img[4:10, 5:12] = 1.0
    return img


@pytest.mark.parametrize("precision,atol", [("bfloat16", 1e-3), ("float16", 1e-4)])
def test_rise_map_under_autocast_is_within_the_stated_tolerance(precision, atol):
    # measured on this model: bfloat16 1.2e-4, float16 2.4e-5 (map range 1.5e-3),
    # correlation with the float32 map 0.9999996 / 0.99999996
    model = SmallConv()
    kw = {"n_masks": 64, "grid": 4, "batch_size": 8}
    base = RISE(model).explain(_square(), **kw)
    low = RISE(model, precision=precision).explain(_square(), **kw)
    assert low.params["precision"] == precision and "precision" not in base.params
    assert low.map.dtype == base.map.dtype
    diff = np.abs(low.map - base.map).max()
    assert 0 < diff <= atol
    assert np.corrcoef(low.map.ravel(), base.map.ravel())[0, 1] >= 0.9999


def test_autocast_map_is_the_same_for_any_batch_size():
    model = SmallConv()
    maps = [
        RISE(model, precision="bfloat16").explain(_square(), n_masks=24, grid=4, batch_size=b).map
        for b in (1, 5, 24)
    ]
    for m in maps[1:]:
        np.testing.assert_allclose(m, maps[0], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_compiled_hdm_and_rise_give_the_eager_maps():
    model = SmallConv()
    for cls, kw in ((HDM, {"diameter": 5, "stride": 3}), (RISE, {"n_masks": 20, "grid": 4})):
        base = cls(model).explain(_square(), batch_size=6, **kw)
        comp = cls(model, compile=True).explain(_square(), batch_size=6, **kw)
        assert comp.params["compile"] is True
        np.testing.assert_allclose(comp.map, base.map, rtol=1e-5, atol=1e-6)
