"""The notebook widget's controls, built from :mod:`maskscope.gui` (no logic here)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..gui import PAD_MODES, device_choices, format_value, method_names
from ..gui.models import MODEL_HELP, pad_multiple_text
from ._form import FIELD_STYLE, FIELD_WIDTH
from ._view import COLORMAPS

__all__ = ["AXES_OPTIONS", "display_controls", "feedback", "model_controls", "run_controls"]

#: The "array order" choices: the image as given, or its spatial axes reversed.
AXES_OPTIONS = [("as given", "ijk"), ("spatial axes reversed", "kji")]

_ROW: dict[str, Any] = {"style": FIELD_STYLE, "layout": {"width": FIELD_WIDTH}}
_SHORT = {"style": {"description_width": "50px"}}


def run_controls(method: str, target: int | None, sliced: bool) -> dict[str, widgets.Widget]:
    """The header: method, target, slices (a 2D model on a volume), Run and Cancel."""
    out: dict[str, widgets.Widget] = {
        "method_dropdown": widgets.Dropdown(
            options=method_names(), value=method, description="method", layout={"width": "210px"}
        ),
        "target_text": widgets.Text(
            value="" if target is None else str(target),
            placeholder="auto",
            description="target",
            tooltip="Class to explain (empty: the method's default)",
            layout={"width": "150px"},
            **_SHORT,
        ),
        "slices_dropdown": widgets.Dropdown(
            options=[("current slice", "current"), ("all slices", "all")],
            description="slices",
            tooltip="A 2D model on a volume: explain the shown slice, or every slice",
            layout={"width": "200px", "display": "" if sliced else "none"},
            **_SHORT,
        ),
        "run_button": widgets.Button(description="Run", icon="play", button_style="primary"),
        "cancel_button": widgets.Button(description="Cancel", icon="stop", disabled=True),
    }
    for name in ("run", "cancel"):
        button = out[f"{name}_button"]
        button.layout.width = "100px"
        button.add_class(f"maskscope-{name}")
    return out


def model_controls(
    output_key: Any, pad_multiple: Any, pad_mode: str, axes: str
) -> dict[str, widgets.Widget]:
    """The model's fields: device, output key, pad multiple, pad mode and array order."""
    return {
        "device_dropdown": widgets.Dropdown(
            options=device_choices(),
            value="auto",
            description="device",
            tooltip="Where the model runs (auto: where it is; cpu / cuda / mps move it there)",
            **_ROW,
        ),
        "output_key_text": widgets.Text(
            value=format_value(output_key, none=""),
            placeholder="auto",
            description="output key",
            tooltip=MODEL_HELP["output_key"],
            continuous_update=False,
            **_ROW,
        ),
        "pad_multiple_text": widgets.Text(
            value=pad_multiple_text(pad_multiple),
            placeholder="none",
            description="pad multiple",
            tooltip=MODEL_HELP["pad_multiple"],
            continuous_update=False,
            **_ROW,
        ),
        "pad_mode_dropdown": widgets.Dropdown(
            options=list(PAD_MODES),
            value=pad_mode,
            description="pad mode",
            tooltip=MODEL_HELP["pad_mode"],
            **_ROW,
        ),
        "axes_dropdown": widgets.Dropdown(
            options=AXES_OPTIONS,
            value=axes,
            description="array order",
            tooltip=MODEL_HELP["axes"],
            **_ROW,
        ),
    }


def display_controls(cmap: str, opacity: float, channels: int) -> dict[str, widgets.Widget]:
    """Which map, colours, opacity, the reference outline and the channel underneath."""
    return {
        "channel_slider": widgets.IntSlider(
            value=0,
            min=0,
            max=max(channels - 1, 0),
            description="channel",
            layout={"width": "380px", "display": "" if channels > 1 else "none"},
        ),
        "view_dropdown": widgets.Dropdown(options=["map"], value="map", description="show", **_ROW),
        "cmap_dropdown": widgets.Dropdown(
            options=list(COLORMAPS) if cmap in COLORMAPS else [cmap, *COLORMAPS],
            value=cmap,
            description="colormap",
            **_ROW,
        ),
        "opacity_slider": widgets.FloatSlider(
            value=opacity, min=0.0, max=1.0, step=0.05, description="opacity", **_ROW
        ),
        "outline_checkbox": widgets.Checkbox(
            value=True, description="outline reference", indent=False
        ),
    }


def feedback() -> dict[str, widgets.Widget]:
    """The progress bar, the time label, the status line and the channel ranking."""
    progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0)
    progress.layout.width = "380px"
    progress.add_class("maskscope-progress")
    status = widgets.HTML(value="")
    status.add_class("maskscope-status")
    table = widgets.HTML(value="")  # the channels by importance (a per-channel run)
    table.add_class("maskscope-channel-table")
    return {
        "progress": progress,
        "time_label": widgets.Label(value=""),
        "status": status,
        "channel_table": table,
    }
