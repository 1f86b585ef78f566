"""The prediction first: counts, Dice, the failed-segmentation warning, one model call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import SegRISE
from maskscope.prediction import CLI_FIELDS, check_prediction, summarize
from tests.conftest import ThresholdNet


class Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return self.inner(x)


def _square(size=20, lo=5, hi=15, value=1.0):
    img = np.zeros((size, size), np.float32)
    img[lo:hi, lo:hi] = value
    return img


def test_summary_counts_and_dice_match_slow_code():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, (9, 11))
    ref = rng.integers(0, 3, (9, 11))
    s = summarize(pred, ref)
    assert s.counts == {k: sum(1 for v in pred.ravel() if v == k) for k in range(3)}
    a = [v > 0 for v in pred.ravel()]
    b = [v > 0 for v in ref.ravel()]
    inter = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    assert s.dice == pytest.approx(2 * inter / (sum(a) + sum(b)))
    assert s.reference_voxels == sum(b)
    t = summarize(pred, ref, target=2)
    a2, b2 = pred == 2, ref == 2
    assert t.dice == pytest.approx(2 * (a2 & b2).sum() / (a2.sum() + b2.sum()))
    assert s.warning is None
    assert s.line().startswith(f"prediction: class 0 {s.counts[0]} voxels, class 1 ")
    assert s.line().endswith(f"; Dice {s.dice:.3f} against the reference ({sum(b)} voxels)")


def test_empty_and_tiny_predictions_warn_with_the_frontends_names():
    ref = np.zeros((20, 20), np.uint8)
    ref[2:18, 2:18] = 1  # 256 voxels
    empty = summarize(np.zeros_like(ref), ref, fields=CLI_FIELDS)
    assert empty.warning == (
        "the model predicts no foreground voxel on this input: explaining it would explain a "
        "failed segmentation; check --normalize (the intensities the model was trained on) "
        "and --axes (a transposed volume); a multi-label model (one sigmoid per channel, "
        "overlapping) needs one channel chosen: --output-key 'channel C'"
    )
    tiny = np.zeros_like(ref)
    tiny[5:9, 5:10] = 1  # 20 voxels: 7.8 % of the reference
    w = summarize(tiny, ref).warning
    assert w.startswith("the model predicts 20 foreground voxels, 7.8 % of the reference's 256")
    assert "check the normalisation" in w and "the array order" in w
    ok = np.zeros_like(ref)
    ok[5:10, 5:10] = 1  # 25 voxels would be 9.8 %, tiny; with one more, 10.2 %
    ok[10, 5] = 1
    assert summarize(ok, ref).warning is None
    assert summarize(np.zeros_like(ref)).warning.startswith("the model predicts no foreground")


def test_check_prediction_calls_the_model_once_with_the_normalised_input():
    net = Counting(ThresholdNet(2))
    raw = _square(value=1.0) * 400.0 + 100.0  # 100 outside, 500 inside: minmax → 0 / 1
    summary = check_prediction(SegRISE(net), raw, normalize="minmax")
    assert net.calls == [(1, 1, 20, 20)]
    expected = ThresholdNet(2)(torch.from_numpy(_square())[None, None])
    np.testing.assert_array_equal(
        summary.prediction, (expected[0, 1] > expected[0, 0]).numpy().astype(np.uint8)
    )
    assert summary.foreground > 50 and summary.warning is None
    raw_summary = check_prediction(SegRISE(ThresholdNet(2)), raw)  # no normalisation
    assert raw_summary.counts == {1: 400}  # everything above the threshold: no warning
    dark = check_prediction(SegRISE(ThresholdNet(2)), raw * 0.0)
    assert dark.warning is not None and dark.counts == {0: 400}


def test_a_2d_model_on_a_volume_predicts_the_explained_slices_only():
    net = Counting(ThresholdNet(2))
    vol = np.stack([_square(), _square() * 0.0, _square()])
    ref = np.zeros(vol.shape, np.uint8)
    ref[:, 5:15, 5:15] = 1
    s = check_prediction(SegRISE(net, spatial_dims=2), vol, reference=ref, slices=[0, 2])
    assert net.calls == [(1, 1, 20, 20)] * 2
    assert s.prediction.shape == vol.shape and not s.prediction[1].any()
    assert s.reference_voxels == 200  # the two slices predicted, not the third
    full = SegRISE(ThresholdNet(2), spatial_dims=2).explain(vol, n_masks=4, grid=2, slices=[0])
    np.testing.assert_array_equal(s.prediction[0], full.prediction[0])


def test_a_class_the_model_lacks_is_refused_before_any_warning():
    img = _square()
    for explainer in (SegRISE(ThresholdNet(2)), SegRISE(ThresholdNet(2), spatial_dims=2)):
        image = img if explainer.spatial_dims is None else np.stack([img, img])
        with pytest.raises(ValueError, match=r"class index in \[0, 1\] .* 2 output channel"):
            check_prediction(explainer, image, target=5)
        assert check_prediction(explainer, image, target=1).warning is None


class _Ends(torch.nn.Module):
    """ThresholdNet's logits (one channel: their difference) through ``end``: a sigmoid or
    softmax inside the model, or nothing."""

    def __init__(self, channels, end=None):
        super().__init__()
        self.inner, self.channels, self.end = ThresholdNet(2), channels, end

    def forward(self, x):
        z = self.inner(x)
        z = z[:, 1:] - z[:, :1] if self.channels == 1 else z
        return z if self.end is None else self.end(z)


@pytest.mark.parametrize(
    ("channels", "end", "words"),
    [
        (1, torch.sigmoid, "one output channel lies in"),
        (2, lambda z: torch.softmax(z, 1), "2 output channels lie in [0, 1] and sum to 1"),
    ],
)
def test_outputs_called_logits_that_look_like_probabilities_warn(channels, end, words):
    img = _square()
    model = _Ends(channels, end)
    summary = check_prediction(SegRISE(model), img, fields=CLI_FIELDS)
    assert words in summary.warning and "set --outputs to probabilities" in summary.warning
    assert check_prediction(SegRISE(model, outputs="probabilities"), img).warning is None
    assert check_prediction(SegRISE(_Ends(channels)), img).warning is None
    sliced = check_prediction(SegRISE(model, spatial_dims=2), np.stack([img, img]))
    assert (
        words in sliced.warning
        and '"model outputs" (the notebook widget\'s outputs=)' in sliced.warning
    )
