"""Load a segmentation model from a bundled name, a saved file or a factory function.

Nothing here touches the network: bundled weights ship inside the package.

What runs code (see docs/models-and-trust.md): a ``package.module:factory`` spec is an
import of code the caller names; a model file is code that comes with data: a TorchScript
file is a program (its unpickler refuses Python globals, but its TorchScript code runs when
loaded and called, with every torch operator at hand, ``torch.from_file`` and ``aten::save``
reading and writing any file among them), and a ``torch.export`` file (``.pt2``) is
unpickled in part by ``torch.export.load``, which can run any Python code. Both are refused
unless the caller trusts the file (``trusted=True``), before torch opens it.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskscope._engine.devices import check_device
from maskscope.models.unet import UNet

__all__ = [
    "WEIGHTS_DIR",
    "BundledModel",
    "UntrustedModelError",
    "build_bundled",
    "bundled_models",
    "load_model",
]

#: Folder holding the bundled weights, ``<name>.pt`` state dicts.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")
_EXPORT_SUFFIXES = (".pt2",)


class UntrustedModelError(ValueError):
    """A model file that can run arbitrary code was given without the trust switch.

    Attributes
    ----------
    path : pathlib.Path
        The refused file.
    """

    def __init__(self, path: Path, switch: str = "load_model(..., trusted=True)") -> None:
        self.path = Path(path)
        self.switch = switch
        super().__init__(self.message(switch))

    def message(self, switch: str) -> str:
        """The refusal, naming the frontend's own trust switch (a flag, a field)."""
        if self.path.suffix.lower() in _EXPORT_SUFFIXES:
            why = (
                "torch.export.load unpickles parts of a .pt2 file, which can run any Python "
                "code while it loads"
            )
        else:
            why = (
                "a TorchScript file is a program that runs when it is loaded and called, and "
                "it can read and write any file (torch.from_file, torch.save)"
            )
        return (
            f"refusing to load {str(self.path)!r}: {why}; if you trust its source, allow it "
            f"with {switch}"
        )


@dataclass(frozen=True)
class BundledModel:
    """Description of a demo model that ships with maskscope.

    Attributes
    ----------
    name : str
        Name to pass to :func:`load_model`.
    description : str
        One line on what the model segments.
    in_channels : int
        Number of input channels.
    spatial_dims : int
        2 for images ``(B, C, H, W)``, 3 for volumes ``(B, C, D, H, W)``.
    class_names : tuple of str
        Name of each output channel (the model returns logits ``(B, K, *spatial)``).
    sample : str
        Name of the :mod:`maskscope.data` function that generates matching inputs.
    """

    name: str
    description: str
    in_channels: int
    spatial_dims: int
    class_names: tuple[str, ...]
    sample: str
    unet_kwargs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def weights_path(self) -> Path:
        """Path of the bundled state dict."""
        return WEIGHTS_DIR / f"{self.name}.pt"


_BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="shapes2d",
            description="2D U-Net on the shapes set: segments the triangle if a circle is on the "
            "right, the cross if a square is",
            in_channels=1,
            spatial_dims=2,
            class_names=("background", "target"),
            sample="shapes2d",
            unet_kwargs={"features": (16, 32, 48, 64), "stem": 4},
        ),
        BundledModel(
            name="phantom3d",
            description="3D U-Net on the synthetic scan: segments the bright round lesion, not "
            "the equally bright spine",
            in_channels=1,
            spatial_dims=3,
            class_names=("background", "lesion"),
            sample="phantom3d",
            unet_kwargs={"features": (16, 24, 32, 48), "stem": (2, 4, 4), "global_context": False},
        ),
    )
}


def bundled_models() -> dict[str, BundledModel]:
    """List the demo models that ship with maskscope.

    Returns
    -------
    dict of str to BundledModel
        Name → description, input channels, spatial dims and class names.
    """
    return dict(_BUNDLED)


def build_bundled(name: str) -> UNet:
    """Build the untrained network of a bundled model.

    Parameters
    ----------
    name : str
        A name from :func:`bundled_models`.

    Returns
    -------
    UNet
        The network with freshly initialised weights.
    """
    info = _bundled_info(name)
    return UNet(info.spatial_dims, info.in_channels, len(info.class_names), **info.unet_kwargs)


def _bundled_info(name: str) -> BundledModel:
    if name not in _BUNDLED:
        raise ValueError(
            f"unknown bundled model {name!r}; expected one of {sorted(_BUNDLED)}, a model file "
            f"({', '.join(_TORCHSCRIPT_SUFFIXES + _EXPORT_SUFFIXES)}) or 'package.module:factory'"
        )
    return _BUNDLED[name]


def _load_bundled(name: str, device: torch.device | None) -> nn.Module:
    info = _bundled_info(name)
    if not info.weights_path.is_file():
        raise FileNotFoundError(
            f"weights of bundled model {name!r} not found at {info.weights_path}; train them with "
            f"`python -m maskscope.models.train {name}`"
        )
    model = build_bundled(name)
    state = torch.load(info.weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model = model.to(device) if device is not None else model
    return model.eval()


def _load_file(path: Path, device: torch.device | None, trusted: bool) -> nn.Module:
    suffix = path.suffix.lower()
    accepted = _TORCHSCRIPT_SUFFIXES + _EXPORT_SUFFIXES
    if suffix not in accepted:
        raise ValueError(
            f"cannot load a model from {str(path)!r}: expected a TorchScript file "
            f"({', '.join(_TORCHSCRIPT_SUFFIXES)}) or a torch.export file "
            f"({', '.join(_EXPORT_SUFFIXES)}), got suffix {suffix or '(none)'!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {str(path)!r}")
    if not trusted:  # before torch opens the file: loading it runs its code
        raise UntrustedModelError(path)
    if suffix in _EXPORT_SUFFIXES:
        try:
            program = torch.export.load(str(path))
        except RuntimeError as err:
            raise ValueError(
                f"{str(path)!r} is not a torch.export program (torch.export.save): {err}"
            ) from err
        # An exported module has no train/eval switch: its mode was fixed when it was exported.
        module = program.module()
        return module.to(device) if device is not None else module
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 deprecates TorchScript, but users still have such files.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as err:
        raise ValueError(
            f"{str(path)!r} is not a TorchScript archive (torch.jit.save): maskscope does not "
            "unpickle state dicts or pickled models, as unpickling can run any code. Save the "
            "model with torch.jit.save, or give 'package.module:factory' returning the model "
            "(load its weights there with torch.load(..., weights_only=True))"
        ) from err
    return module.eval()


def _import(module_name: str) -> Any:
    """Import a factory's module; one in the current folder too, as ``python -m`` would.

    The ``maskscope`` command's own folder, not the current one, heads ``sys.path``: a
    module missing there is looked for in the current folder (put at the end of the
    path, so that it shadows no installed package).
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        top = module_name.split(".")[0]
        here = Path.cwd()
        local = (here / f"{top}.py").is_file() or (here / top / "__init__.py").is_file()
        if err.name != top:  # the module is there; something it imports is not
            raise ImportError(f"{err} (imported by {module_name!r})") from err
        if not local or str(here) in sys.path:
            raise
    sys.path.append(str(here))
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        sys.path.remove(str(here))
        if isinstance(err, ModuleNotFoundError) and err.name != top:
            raise ImportError(f"{err} (imported by {module_name!r})") from err
        raise


def _load_factory(spec: str, device: torch.device | None) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected 'package.module:factory', got {spec!r}")
    try:
        module = _import(module_name)
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and err.name == module_name.split(".")[0]
        where = " (its folder must be the current one or on PYTHONPATH)" if missing else ""
        raise ValueError(
            f"cannot import module {module_name!r} of factory {spec!r}: {err}{where}"
        ) from err
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} (from {spec!r})")
        factory = getattr(factory, part)
    if isinstance(factory, nn.Module):
        model = factory
    elif callable(factory):
        model = factory()
    else:
        raise ValueError(f"{spec!r} is neither a torch.nn.Module nor a callable")
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"factory {spec!r} must return a torch.nn.Module, got {type(model).__name__}"
        )
    model = model.to(device) if device is not None else model
    return model.eval()


def load_model(
    spec: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    trusted: bool = False,
) -> nn.Module:
    """Load a segmentation model, in eval mode.

    Parameters
    ----------
    spec : str or os.PathLike
        One of:

        - a bundled model name, see :func:`bundled_models` (``"shapes2d"``, ``"phantom3d"``);
        - a TorchScript file saved with ``torch.jit.save`` (``.pt``, ``.pth``, ``.ts``, ...),
          only with ``trusted=True``;
        - a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``), only with
          ``trusted=True``;
        - ``"package.module:factory"``: the module is imported and ``factory()`` called with no
          arguments; it must return a ``torch.nn.Module`` (a module attribute is used as is).
    device : str or torch.device, optional
        Where to put the model; by default it stays where it was loaded (the CPU for files).
    trusted : bool
        Allow a model file. A TorchScript file's code runs when it is loaded and called and
        can read and write any file (``torch.from_file``, ``aten::save``); ``torch.export.load``
        unpickles parts of a ``.pt2`` archive (in torch 2.13: the sample inputs and constants
        or weights marked for pickling), and a crafted archive runs any Python code while
        it loads. Set this only for files whose source you trust.

    Returns
    -------
    torch.nn.Module
        The model, in eval mode (an exported program keeps the mode it was exported in).

    Raises
    ------
    FileNotFoundError
        If a model file or bundled weights are missing.
    UntrustedModelError
        A model file without ``trusted=True`` (a ``ValueError``).
    ValueError
        If ``spec`` matches none of the accepted kinds, or the file or factory is unusable.

    Notes
    -----
    Every kind of model is code: a factory spec imports a module (which runs it), a
    TorchScript file holds TorchScript code that runs when it is loaded and called (torch's
    TorchScript unpickler refuses Python globals, but the code can call any torch operator:
    ``torch.from_file`` and ``aten::save`` read and write any file, a ``.pth`` file in
    site-packages or a shell's start-up file among them, which is as good as running any
    code), and a ``.pt2`` file can run any Python code while it is unpickled. Load models
    you trust.

    The explainers call the model on batches of perturbed inputs: export a model with a dynamic
    batch dimension, e.g. ``torch.export.export(model, (x,), dynamic_shapes=({0: Dim("batch")},))``,
    or it will only accept the batch size it was exported with. Loading a TorchScript file silences
    torch's deprecation warning for TorchScript.

    Examples
    --------
    >>> model = load_model("shapes2d")  # bundled: no file of unknown origin
    >>> model(torch.zeros(1, 1, 240, 240)).shape
    torch.Size([1, 2, 240, 240])
    """
    if not isinstance(trusted, bool):
        raise TypeError(f"trusted must be True or False, got {trusted!r}")
    dev = check_device(device) if device is not None else None
    if isinstance(spec, os.PathLike):
        return _load_file(Path(spec), dev, trusted)
    if not isinstance(spec, str):
        raise ValueError(
            f"expected a bundled name, a file path or 'package.module:factory', got "
            f"{type(spec).__name__}"
        )
    if spec in _BUNDLED:
        return _load_bundled(spec, dev)
    suffix = Path(spec).suffix.lower()
    if ":" in spec and suffix not in _TORCHSCRIPT_SUFFIXES + _EXPORT_SUFFIXES:
        return _load_factory(spec, dev)
    if suffix or "/" in spec or "\\" in spec:
        return _load_file(Path(spec), dev, trusted)
    return _load_bundled(spec, dev)  # raises, listing the bundled names
