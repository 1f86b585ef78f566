"""Evaluation calls the model as the methods do: output key and padding."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope import SegRISE, faithfulness
from maskscope.cli import main
from tests.cli.threshold_factory import DictThreshold
from tests.conftest import ThresholdNet


class NeedsMultiple(ThresholdNet):
    """ThresholdNet that refuses sizes that are not multiples of 8."""

    def forward(self, x):
        if any(s % 8 for s in x.shape[2:]):
            raise RuntimeError(f"sizes must be multiples of 8, got {tuple(x.shape[2:])}")
        return super().forward(x)


def _image() -> np.ndarray:
    img = np.zeros((20, 20), np.float32)
    img[5:13, 4:14] = 1.0
    return img


def _assert_same_curves(got, want) -> None:
    for name, curve in want.curves().items():
        np.testing.assert_array_equal(got.curves()[name].runs["dice"], curve.runs["dice"])
        np.testing.assert_allclose(
            got.curves()[name].runs["probability"], curve.runs["probability"], rtol=1e-6
        )


def test_a_dict_output_is_evaluated_with_its_output_key():
    img = _image()
    expl = SegRISE(ThresholdNet(2)).explain(img, n_masks=24, grid=4, batch_size=8)
    kw = {"steps": 6, "n_random": 1, "batch_size": 4}
    want = faithfulness(expl, model=ThresholdNet(2), **kw)
    got = faithfulness(expl, model=DictThreshold(2), output_key="seg", **kw)
    _assert_same_curves(got, want)
    with pytest.raises(ValueError, match="output_key"):
        faithfulness(expl, model=DictThreshold(2), **kw)  # two entries: which one?


def test_a_model_that_needs_padding_is_evaluated_with_pad_multiple():
    img = _image()
    expl = SegRISE(ThresholdNet(2)).explain(img, n_masks=24, grid=4, batch_size=8)
    kw = {"steps": 6, "n_random": 1, "batch_size": 4}
    want = faithfulness(expl, model=ThresholdNet(2), **kw)
    got = faithfulness(expl, model=NeedsMultiple(2), pad_multiple=8, **kw)
    _assert_same_curves(got, want)  # zeros beyond the edge, as the convolution's own padding
    with pytest.raises(Exception, match="multiples of 8"):
        faithfulness(expl, model=NeedsMultiple(2), **kw)


def test_cli_evaluate_takes_the_output_key(tmp_path, capsys):
    np.save(tmp_path / "img.npy", _image())
    args = ["evaluate", "--image", str(tmp_path / "img.npy"), "--method", "segrise"]
    args += ["--n-masks", "16", "--grid", "4"]
    args += ["--steps", "4", "--quiet", "--json", str(tmp_path / "c.json")]
    assert main([*args, "--model", "tests.cli.threshold_factory:make_dict"]) == 2
    assert "--output-key" in capsys.readouterr().err
    code = main([*args, "--model", "tests.cli.threshold_factory:make_dict", "--output-key", "seg"])
    assert code == 0 and (tmp_path / "c.json").exists()
