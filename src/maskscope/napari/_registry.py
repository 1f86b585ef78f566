"""Models handed to the napari widget from Python, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psygnal import Signal

from .._engine.scores import OUTPUT_KINDS

__all__ = ["ModelEntry", "ModelRegistry", "registry"]


@dataclass(frozen=True)
class ModelEntry:
    """A model given from Python, with what the widget cannot infer about it.

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


class ModelRegistry:
    """Named models that every maskscope widget lists; ``changed`` fires on every edit."""

    changed = Signal()

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def add(self, entry: ModelEntry) -> None:
        """Add or replace a model."""
        self._entries[entry.name] = entry
        self.changed.emit()

    def remove(self, name: str) -> None:
        """Remove a model; unknown names raise ``KeyError`` listing the known ones."""
        if name not in self._entries:
            raise KeyError(f"no model registered as {name!r}; registered: {sorted(self._entries)}")
        del self._entries[name]
        self.changed.emit()

    def get(self, name: str) -> ModelEntry:
        """The entry registered as ``name``."""
        if name not in self._entries:
            raise KeyError(f"no model registered as {name!r}; registered: {sorted(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)


#: The models registered with :func:`maskscope.napari.register_model`.
registry = ModelRegistry()
