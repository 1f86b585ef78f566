"""load_model: bundled names, TorchScript and torch.export files, factories, and bad specs."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from maskscope.models import UNet, bundled_models, load_model


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


FACTORY_MODULE = textwrap.dedent(
    """
    from torch import nn

    calls = []

    def make():
        calls.append(1)
        return nn.Sequential(nn.Conv2d(1, 2, 1), nn.Dropout(0.5))

    def not_a_model():
        return 42

    ready = nn.Conv2d(1, 2, 1)
    """
)


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write a helper module with factories to tmp_path and make it importable."""
    name = "maskscope_test_factories"
    (tmp_path / f"{name}.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    return name


def test_bundled_models_listing() -> None:
    models = bundled_models()
    assert set(models) == {"shapes2d", "phantom3d"}
    assert models["shapes2d"].spatial_dims == 2 and models["phantom3d"].spatial_dims == 3
    for name, info in models.items():
        assert info.name == name
        assert info.description and "\n" not in info.description
        assert info.in_channels == 1
        assert len(info.class_names) == 2 and info.class_names[0] == "background"
        assert info.weights_path.is_file()


@pytest.mark.parametrize(
    ("name", "shape"), [("shapes2d", (1, 1, 40, 56)), ("phantom3d", (1, 1, 16, 24, 20))]
)
def test_load_bundled(name: str, shape: tuple[int, ...]) -> None:
    model = load_model(name)
    assert isinstance(model, UNet) and not model.training
    with torch.inference_mode():
        assert model(torch.rand(shape)).shape == (shape[0], 2, *shape[2:])


def test_load_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(_Tiny().train(), torch.rand(1, 1, 8, 8)), str(path))
    model = load_model(path, trusted=True)
    assert not model.training
    x = torch.rand(3, 1, 8, 8)
    assert load_model(str(path), trusted=True)(x).shape == (3, 2, 8, 8)


def test_load_exported_program(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tiny = _Tiny().eval()
    x = torch.rand(2, 1, 8, 8)
    batch = torch.export.Dim("batch")
    program = torch.export.export(tiny, (x,), dynamic_shapes=({0: batch},))
    path = tmp_path / "tiny.pt2"
    torch.export.save(program, str(path))
    model = load_model(path, trusted=True)
    x3 = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(model(x3), tiny(x3))


def test_load_factory(factory_module: str) -> None:
    model = load_model(f"{factory_module}:make")
    assert isinstance(model, nn.Sequential) and not model.training
    assert load_model(f"{factory_module}:ready").training is False


@pytest.mark.parametrize(
    ("attr", "match"),
    [("missing", "has no attribute 'missing'"), ("not_a_model", "must return a torch.nn.Module")],
)
def test_bad_factory(factory_module: str, attr: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_model(f"{factory_module}:{attr}")


def test_factory_module_not_importable() -> None:
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        load_model("no_such_module_xyz:make")


def test_unknown_bundled_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown bundled model 'unet'.*'phantom3d', 'shapes2d'"):
        load_model("unet")


def test_unknown_suffix_lists_accepted_ones(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.pt2.*got suffix '\.onnx'"):
        load_model(path)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere/model\.pt"):
        load_model("nowhere/model.pt")


def test_state_dict_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(_Tiny().state_dict(), path)
    with pytest.raises(ValueError, match=r"not a TorchScript archive.*package\.module:factory"):
        load_model(path, trusted=True)


def test_not_a_string() -> None:
    with pytest.raises(ValueError, match="got int"):
        load_model(3)  # type: ignore[arg-type]


class _Grouped(nn.Module):
    """A first convolution with groups: ``in_channels`` is its weight's dim 1 × groups."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 2, 3, padding=1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(
    ("net", "channels"), [(_Tiny, 1), (_Grouped, 4)], ids=["one-channel", "grouped"]
)
def test_traced_model_layout_is_read_from_its_weights(
    tmp_path: Path, net: type[nn.Module], channels: int
) -> None:
    """A traced TorchScript file keeps no ``in_channels``: the layout comes from the weight."""
    from maskscope._engine.inputs import model_layout

    path = tmp_path / "traced.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(net().eval(), torch.rand(1, channels, 8, 8)), str(path))
    loaded = load_model(str(path), trusted=True)
    assert model_layout(loaded) == (2, channels)


def test_traced_2d_model_explains_a_volume_slice_by_slice(tmp_path: Path) -> None:
    """A (D, H, W) volume for a traced one-channel 2D model is a stack of slices."""
    from maskscope import SegRISE

    path = tmp_path / "traced.pt"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(_Tiny().eval(), torch.rand(1, 1, 8, 8)), str(path))
    volume = np.random.default_rng(0).random((5, 12, 12)).astype(np.float32)
    expl = SegRISE(load_model(str(path), trusted=True)).explain(
        volume, slices=[1, 3], n_masks=8, grid=3
    )
    assert expl.map.shape == (5, 12, 12)
    assert expl.slices == (1, 3)


def test_a_factory_module_in_the_current_folder_is_found(tmp_path, monkeypatch) -> None:
    import sys

    name = "maskscope_cwd_factory_probe"
    (tmp_path / f"{name}.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Conv2d(1, 2, 1)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, name, raising=False)
    model = load_model(f"{name}:make")
    assert isinstance(model, nn.Conv2d) and sys.path[-1] == str(tmp_path)
    with pytest.raises(ValueError, match="must be the current one or on PYTHONPATH"):
        load_model("no_such_module_xyz:make")


def test_an_exported_programs_layout_is_read_from_its_graph(tmp_path: Path) -> None:
    from maskscope import SegRISE
    from maskscope._engine.inputs import model_layout

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 2, 3, padding=1)).eval()
    x = torch.rand(2, 2, 6, 8, 8)
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "net.pt2"))
    loaded = load_model(tmp_path / "net.pt2", trusted=True)
    assert model_layout(loaded) == (3, 2)
    # a (2, 6, 8, 8) array is then a 2-channel volume, not a stack of 2D images
    image = np.random.default_rng(0).random((2, 6, 8, 8)).astype(np.float32)
    got = SegRISE(loaded).explain(image, n_masks=8, grid=2, seed=0, batch_size=2)
    want = SegRISE(net).explain(image, n_masks=8, grid=2, seed=0, batch_size=2)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-5, atol=1e-6)


def test_a_factory_module_whose_own_import_fails_says_so(tmp_path, monkeypatch) -> None:
    import sys

    name = "maskscope_cwd_broken_probe"
    (tmp_path / f"{name}.py").write_text("import no_such_dependency_xyz\n\ndef make():\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ValueError) as caught:
        load_model(f"{name}:make")
    text = str(caught.value)
    assert "no_such_dependency_xyz" in text and f"imported by {name!r}" in text
    assert "PYTHONPATH" not in text and str(tmp_path) not in sys.path
