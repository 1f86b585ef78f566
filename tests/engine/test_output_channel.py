"""One channel of a multi-label model's output, explained as a binary output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import SegRISE
from maskscope._engine.outputs import OutputAdapter, OutputChoiceError, split_channel
from maskscope.cli import main
from tests.conftest import ThresholdNet


class TwoLabels(torch.nn.Module):
    """Two overlapping sigmoid-style logit channels: the bright square, and its left half."""

    def __init__(self) -> None:
        super().__init__()
        self.net = ThresholdNet(2)
        self.eval()

    def forward(self, x):
        z = self.net(x)
        whole = z[:, 1:] - z[:, :1]
        left = whole.clone()
        left[..., x.shape[-1] // 2 :] = -1.0
        return {"seg": torch.cat([whole, left], 1), "aux": whole}


def _image() -> np.ndarray:
    img = np.zeros((24, 24), np.float32)
    img[6:16, 4:20] = 1.0
    return img


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("channel 1", (None, 1)),
        ("seg/channel 0", ("seg", 0)),
        ("0 / channel 2", (0, 2)),
        ("seg", ("seg", None)),
        (3, (3, None)),
        (None, (None, None)),
    ],
)
def test_split_channel(key, parts):
    assert split_channel(key) == parts


def test_a_channel_is_explained_alone_and_matches_a_hand_written_output():
    img = _image()
    for channel in (0, 1):
        got = SegRISE(TwoLabels(), output_key=f"seg/channel {channel}").explain(
            img, n_masks=16, grid=4, seed=3
        )
        want = SegRISE(TwoLabels(), output=lambda o, c=channel: o["seg"][:, c : c + 1]).explain(
            img, n_masks=16, grid=4, seed=3
        )
        np.testing.assert_array_equal(got.map, want.map)
        np.testing.assert_array_equal(got.prediction, want.prediction)
    left = SegRISE(TwoLabels(), output_key="seg/channel 1").explain(img, n_masks=8, grid=4)
    assert left.prediction[:, 12:].sum() == 0 and left.prediction[:, :12].sum() > 0


def test_a_channel_out_of_range_names_the_channels():
    adapter = OutputAdapter(TwoLabels(), "seg/channel 2")
    with pytest.raises(OutputChoiceError, match=r"has 2 channel\(s\) \(0 to 1\)"):
        adapter(torch.zeros(1, 1, 8, 8))


def test_the_cli_takes_a_channel(tmp_path, monkeypatch, capsys):
    import sys
    import types

    module = types.ModuleType("maskscope_two_labels_probe")
    module.make = TwoLabels
    monkeypatch.setitem(sys.modules, module.__name__, module)
    np.save(tmp_path / "img.npy", _image())
    argv = ["explain", "--model", f"{module.__name__}:make", "--image", str(tmp_path / "img.npy")]
    argv += ["--out", str(tmp_path / "o.npy"), "--n-masks", "16", "--grid", "4", "--quiet"]
    assert main([*argv, "--output-key", "seg/channel 1", "--seed", "3"]) == 0
    want = SegRISE(TwoLabels(), output_key="seg/channel 1").explain(
        _image(), n_masks=16, grid=4, seed=3
    )
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want.map, rtol=1e-6)
    capsys.readouterr()
    assert main([*argv, "--output-key", "seg/channel 5"]) == 2
    err = capsys.readouterr().err
    assert "--output-key seg/channel 5 is out of range" in err and "(0 to 1)" in err
