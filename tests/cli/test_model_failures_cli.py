"""``maskscope explain`` with models that fail, need an output choice or padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope._engine.failures import ModelError
from maskscope.cli import main

F = "tests.cli.model_factories:"


def _image(tmp_path, shape=(24, 24)):
    img = np.zeros(shape, np.float32)
    img[tuple(slice(s // 4, s // 2 + 2) for s in shape)] = 1.0
    np.save(tmp_path / "img.npy", img)
    return str(tmp_path / "img.npy")


def _run(tmp_path, capsys, model, *extra, shape=(24, 24)):
    args = ["explain", "--model", model, "--trust-model", "--image", _image(tmp_path, shape)]
    args += ["--out", str(tmp_path / "map.npy"), "--quiet", "--n-masks", "8", "--grid", "4"]
    code = main([*args, *extra])
    captured = capsys.readouterr()
    return code, captured.err


def _one_error_line(code, err):
    assert code == 2
    assert err.startswith("maskscope: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len("maskscope: error: ") : -1]


def test_a_model_raising_is_one_line_with_its_message_and_status_2(tmp_path, capsys):
    line = _one_error_line(*_run(tmp_path, capsys, F + "raising"))
    assert line == (
        "the model failed on an input batch of shape (1, 1, 24, 24): RuntimeError: the "
        "weights are corrupt (run with --debug or MASKSCOPE_DEBUG=1 for the traceback)"
    )


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    with pytest.raises(ModelError, match="the weights are corrupt"):
        _run(tmp_path, capsys, F + "raising", "--debug")
    monkeypatch.setenv("MASKSCOPE_DEBUG", "1")
    with pytest.raises(ModelError):
        _run(tmp_path, capsys, F + "raising")


def test_a_factory_raising_is_one_line_naming_the_model(tmp_path, capsys):
    line = _one_error_line(*_run(tmp_path, capsys, F + "broken"))
    assert line.startswith(
        f"cannot load the model '{F}broken': RuntimeError: no GPU here (run with --debug"
    )


def test_a_model_file_torch_cannot_read_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"PK\x03\x04 not really a zip archive")
    line = _one_error_line(*_run(tmp_path, capsys, str(bad)))
    assert "bad.pt2" in line


def test_a_scripted_model_raising_gives_the_interpreters_cause(tmp_path, capsys):
    class Picky(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] % 16 != 0:
                raise ValueError("width must be a multiple of 16")
            return torch.cat([-x, x], 1)

    path = tmp_path / "picky.pt"
    with pytest.warns(DeprecationWarning):
        torch.jit.save(torch.jit.script(Picky()), str(path))
    line = _one_error_line(*_run(tmp_path, capsys, str(path), "--spatial-dims", "2"))
    assert "ValueError: width must be a multiple of 16" in line
    assert "TorchScript" not in line and "Traceback" not in line


def test_messages_name_cli_flags(tmp_path, capsys):
    line = _one_error_line(*_run(tmp_path, capsys, F + "no_conv", shape=(4, 24, 24)))
    assert line.endswith("pass --spatial-dims 2 or --spatial-dims 3")
    assert "spatial_dims" not in line


def test_a_dict_output_needs_output_key_and_works_with_it(tmp_path, capsys):
    line = _one_error_line(*_run(tmp_path, capsys, F + "dict_output"))
    assert "choose one of 'seg', 'aux' with --output-key KEY" in line
    code, err = _run(tmp_path, capsys, F + "dict_output", "--output-key", "seg", "--seed", "2")
    assert code == 0, err
    got = np.load(tmp_path / "map.npy")
    code, err = _run(tmp_path, capsys, "tests.cli.threshold_factory:make", "--seed", "2")
    np.testing.assert_array_equal(got, np.load(tmp_path / "map.npy"))


def test_an_output_of_another_size_suggests_the_flag(tmp_path, capsys):
    class Crops(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)  # no padding: 2 voxels smaller

        def forward(self, x):
            return self.conv(x)

    path = tmp_path / "crops.pt"
    with pytest.warns(DeprecationWarning):
        torch.jit.save(torch.jit.script(Crops().eval()), str(path))
    line = _one_error_line(*_run(tmp_path, capsys, str(path)))
    assert "a spatial size of 22×22 for an input of 24×24" in line
    assert "set --pad-multiple 16" in line and "the Python API's output= (a function" in line


monai_nets = pytest.importorskip("monai.networks.nets")


def test_a_monai_unet_file_needs_pad_multiple_and_says_so(tmp_path, capsys):
    torch.manual_seed(0)
    net = monai_nets.UNet(
        spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2)
    ).eval()
    path = tmp_path / "unet.pt"
    with pytest.warns(DeprecationWarning):
        torch.jit.save(torch.jit.script(net), str(path))
    shape = (33, 41, 25)
    line = _one_error_line(*_run(tmp_path, capsys, str(path), shape=shape))
    assert "RuntimeError: Sizes of tensors must match except in dimension 1" in line
    assert "33×41×25" in line and "set --pad-multiple 16" in line
    assert "TorchScript" not in line

    code, err = _run(tmp_path, capsys, str(path), "--pad-multiple", "16", shape=shape)
    assert code == 0, err
    assert np.load(tmp_path / "map.npy").shape == shape
    assert "training mode" not in err
