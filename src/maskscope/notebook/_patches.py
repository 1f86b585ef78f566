"""The notebook's sliding-window fields, from :func:`maskscope.gui.patch_form`."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..gui import SlidingSettings, patch_form, read_patches, split_patch_values
from ._form import Field

__all__ = ["PatchForm"]


class PatchForm:
    """Patch size, overlap, blending and patches per call, as the napari widget has them.

    Parameters
    ----------
    values
        Initial values by field name (``patch_size=64``); the defaults otherwise.

    Attributes
    ----------
    fields
        The :class:`~maskscope.notebook._form.Field` of each, by name.
    widget
        A ``VBox`` of the entries under a "sliding window" title.
    """

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        values = values or {}
        entries = patch_form()
        self.fields = {f.name: Field(f, values.get(f.name, f.spec.default)) for f in entries}
        size = self.fields["patch_size"].widget
        size.placeholder = "none (the whole input at once)"
        self.widget = widgets.VBox(
            [widgets.HTML("<b>sliding window</b>"), *(f.widget for f in self.fields.values())]
        )

    def values(self) -> dict[str, Any]:
        """Every field's value by name (``ValueError`` for text that cannot be read)."""
        return {name: f.get() for name, f in self.fields.items()}

    def set(self, **values: Any) -> None:
        """Set fields by name (``TypeError`` for a name that is not a field)."""
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            raise TypeError(
                f"unknown sliding-window field(s) {', '.join(unknown)}; fields are "
                f"{', '.join(self.fields)}"
            )
        for name, value in values.items():
            self.fields[name].set(value)

    def take(self, values: dict[str, Any]) -> dict[str, Any]:
        """Set the sliding-window fields among ``values``; returns the other values."""
        patch, rest = split_patch_values(values)
        self.set(**patch)
        return rest

    def settings(self) -> SlidingSettings | None:
        """The checked settings, or None when the patch size is empty."""
        return read_patches(self.values())
