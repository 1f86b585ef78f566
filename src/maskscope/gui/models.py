"""The model a GUI explains: given from Python, bundled, or loaded from a file; devices.

Models given from Python are held by the widget that lists them, never by a module-level
store: :class:`ModelRegistry` keeps only weak references, so a model lives as long as the
user's code or an open widget holds it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._engine.inputs import model_device_dtype, model_layout
from .._engine.outputs import parse_output_key
from .._engine.padding import PAD_MODES, normalize_multiple
from .._engine.scores import OUTPUT_KINDS
from ..models import UntrustedModelError, bundled_models, load_model
from ..wording import load_for_frontend
from .fields import format_value, parse_text

__all__ = [
    "MODEL_HELP",
    "OUTPUT_KINDS",
    "PAD_MODES",
    "LoadedModel",
    "ModelEntry",
    "ModelRegistry",
    "bundled_models",
    "device_choices",
    "load_bundled",
    "load_spec",
    "model_dims",
    "model_layout",
    "pad_multiple_text",
    "parse_output_key",
    "parse_pad_multiple",
    "resolve_device",
    "to_device",
]


@dataclass(frozen=True)
class ModelEntry:
    """A model given from Python, with what a widget cannot infer about it.

    Attributes
    ----------
    name
        Name shown in the widget's model list.
    model
        Any callable taking ``(B, C, *spatial)``.
    outputs
        ``"logits"`` or ``"probabilities"``.
    spatial_dims
        2 or 3, or None to infer it from the model's first convolution.
    """

    name: str
    model: Callable
    outputs: str = "logits"
    spatial_dims: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a model name must be a non-empty string, got {self.name!r}")
        if not callable(self.model):
            raise TypeError(f"model must be callable, got {type(self.model).__name__}")
        if self.outputs not in OUTPUT_KINDS:
            raise ValueError(f"outputs must be one of {OUTPUT_KINDS}, got {self.outputs!r}")
        if self.spatial_dims not in (None, 2, 3):
            raise ValueError(f"spatial_dims must be 2, 3 or None, got {self.spatial_dims!r}")


def _reference(model: Callable) -> Callable[[], Callable | None]:
    """A weak reference to ``model`` (a strong one for callables that allow none)."""
    try:
        if hasattr(model, "__self__") and hasattr(model, "__func__"):
            return weakref.WeakMethod(model)  # a bound method dies with its call otherwise
        return weakref.ref(model)
    except TypeError:
        return lambda: model


class ModelRegistry:
    """Named models offered to every widget, held by weak reference.

    A widget that lists a model keeps its own strong reference until it closes; the
    registry forgets a model once nothing else holds it. Callbacks connected with
    :meth:`connect` run on every change.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Callable[[], Callable | None], ModelEntry]] = {}
        self._callbacks: list[Callable[[], Any]] = []

    def add(self, entry: ModelEntry) -> None:
        """Add or replace a model."""
        # the entry without its model, so that only the weak reference holds it
        shell = ModelEntry(entry.name, _placeholder, entry.outputs, entry.spatial_dims)
        self._entries[entry.name] = (_reference(entry.model), shell)
        self._changed()

    def remove(self, name: str) -> None:
        """Remove a model; unknown names raise ``KeyError`` listing the known ones."""
        self.get(name)
        del self._entries[name]
        self._changed()

    def get(self, name: str) -> ModelEntry:
        """The entry registered as ``name`` (``KeyError`` once its model is gone)."""
        ref, shell = self._entries.get(name, (None, None))
        model = ref() if ref is not None else None
        if model is None or shell is None:
            raise KeyError(f"no model registered as {name!r}; registered: {self.names()}")
        return ModelEntry(shell.name, model, shell.outputs, shell.spatial_dims)

    def names(self) -> list[str]:
        """Names of the models still alive, in registration order (the others are dropped)."""
        dead = [name for name, (ref, _) in self._entries.items() if ref() is None]
        for name in dead:
            del self._entries[name]
        return list(self._entries)

    def connect(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` after every change."""
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[], Any]) -> None:
        """Stop calling ``callback``."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def _changed(self) -> None:
        for callback in list(self._callbacks):
            callback()


def _placeholder(*_: Any) -> None:  # pragma: no cover - never called
    raise RuntimeError("a registered model's entry without its model")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to explain, with what the engine needs to know about it.

    Attributes
    ----------
    model
        The callable.
    outputs
        ``"logits"`` or ``"probabilities"``.
    spatial_dims
        2, 3, or None (inferred by the engine).
    label
        What the user chose, for messages.
    output_key
        The "output key" field: a dict key, a tuple index, or None (the default choice).
    pad_multiple
        The "pad multiple" field: None, or pad inputs to a multiple of it.
    pad_mode
        The "pad mode" field.
    """

    model: Callable
    outputs: str = "logits"
    spatial_dims: int | None = None
    label: str = "the model"
    output_key: str | int | None = None
    pad_multiple: int | tuple[int, ...] | None = None
    pad_mode: str = "zeros"

    def method_kwargs(self) -> dict:
        """The method constructor's keywords for this model (besides the model)."""
        return {
            "outputs": self.outputs,
            "output_key": self.output_key,
            "pad_multiple": self.pad_multiple,
            "pad_mode": self.pad_mode,
        }


def device_choices() -> list[str]:
    """``"auto"`` and the devices torch can use here."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(choice: str) -> torch.device:
    """``"auto"`` → CUDA, else MPS, else CPU; other names as given."""
    if choice == "auto":
        choice = next((d for d in ("cuda", "mps") if d in device_choices()), "cpu")
    if choice not in device_choices():
        raise ValueError(f"device must be one of {device_choices()}, got {choice!r}")
    return torch.device(choice)


def to_device(model: Callable, choice: str) -> Callable:
    """Move a model given from Python to the chosen device ("auto" leaves it in place)."""
    if choice == "auto":
        return model
    device = resolve_device(choice)
    current, _ = model_device_dtype(model)
    if current is not None and current.type != device.type and isinstance(model, torch.nn.Module):
        model.to(device)
    return model


def load_bundled(name: str, device: str) -> Callable:
    """A bundled demo model on the chosen device."""
    return load_model(name, device=resolve_device(device))


def load_spec(spec: str, device: str, *, trusted: bool, trust_label: str) -> Callable:
    """Load a model file or ``package.module:factory`` typed in a form.

    Parameters
    ----------
    spec
        The text of the file / factory field.
    device
        A name from :func:`device_choices`.
    trusted
        Whether the user allowed model files, which run code (TorchScript, ``.pt2``).
    trust_label
        How the form names that permission, for the message when it is missing.
    """
    spec = spec.strip()
    if not spec:
        raise ValueError(
            "no model given: choose a model, or type a model file or "
            "'package.module:factory' in the file / factory field"
        )
    try:
        return load_for_frontend(load_model, spec, device=resolve_device(device), trusted=trusted)
    except UntrustedModelError as exc:
        raise UntrustedModelError(exc.path, trust_label) from None


def parse_pad_multiple(text: str) -> int | tuple[int, ...] | None:
    """The "pad multiple" field: empty or ``none`` → None, ``16`` or ``16, 16, 8``."""
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    try:
        return normalize_multiple(parse_text(text))
    except (ValueError, TypeError):
        raise ValueError(
            "pad multiple takes a positive int, or one per axis separated by commas "
            f"(16 or 16, 16, 8), got {text!r}"
        ) from None


def pad_multiple_text(value: Any) -> str:
    """The text of the "pad multiple" field for a value (checked)."""
    multiple = normalize_multiple(value)
    return "" if multiple is None else format_value(multiple)


def model_dims(
    loaded: LoadedModel,
    spatial: tuple[int, ...],
    channels: int,
    *,
    source: str,
    channel_text: str | None = None,
) -> int | None:
    """The spatial dims to run the model with on an image, after checking that it fits.

    Parameters
    ----------
    loaded
        The model.
    spatial
        The image's spatial shape.
    channels
        Its number of channels.
    source
        How to name the image in messages (``"the image layer 'scan'"``).
    channel_text
        How the image's channels were chosen (``"RGB colours"``, ...), or None when the
        image has one channel by default (then the model's channel count is not checked).

    Returns
    -------
    int or None
        2 for a 2D image or a 2D model (slice by slice), else the model's dims (None:
        inferred by the engine).

    Raises
    ------
    ValueError
        When the model declares another channel count, is 3D on a 2D image, or its first
        convolution has other dims than the ones chosen for it.
    """
    layout_dims, _ = model_layout(loaded.model)
    in_channels = getattr(loaded.model, "in_channels", None)  # declared, not guessed
    in_channels = in_channels if isinstance(in_channels, int) else None
    dims = loaded.spatial_dims or layout_dims
    if loaded.spatial_dims and layout_dims and loaded.spatial_dims != layout_dims:
        raise ValueError(
            f'{loaded.label}\'s first convolution is {layout_dims}D, but "model input" is '
            f"set to {loaded.spatial_dims}D: set it to auto or {layout_dims}D"
        )
    if channel_text is not None and in_channels is not None and channels != in_channels:
        raise ValueError(
            f"{loaded.label} takes {in_channels} input channel(s), but {source} has "
            f"{channels} ({channel_text}): choose an image with {in_channels} channel(s), "
            "or another channel setting"
        )
    if len(spatial) == 2:
        if dims == 3:
            raise ValueError(
                f"{loaded.label} is a 3D model, but the image has 2 spatial axes "
                f"{spatial}: choose a volume or a 2D model"
            )
        return 2
    return dims


#: Help text of the model fields that both forms show.
MODEL_HELP = {
    "outputs": "Whether the model returns logits or probabilities",
    "output_key": (
        "What to explain in the model's output: a dict key (logits) or a tuple index (0). "
        "auto: the tensor, a dict's out / logits / pred, .logits, a tuple's first element. "
        "channel 2 (or logits/channel 2): that channel alone, as a binary output (a "
        "multi-label model's overlapping sigmoid channels)"
    ),
    "pad_multiple": (
        "Pad inputs to a multiple of this per axis (16, or 16, 16, 8) and crop the "
        "outputs back: U-Nets need 2**levels"
    ),
    "pad_mode": "How the padding is filled",
    "axes": (
        "The array order the model was trained on: ijk (nibabel, MONAI LoadImage) or kji "
        "(SimpleITK, nnU-Net). The image stays as it is on screen"
    ),
}
