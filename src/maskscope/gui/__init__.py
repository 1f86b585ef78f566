"""The GUI session layer: what the napari and notebook widgets share, with no GUI package.

Both widgets list the methods from here, build their forms from the same fields
(:func:`form`: one field per parameter of the method's dataclass and per run option,
with its kind, bounds, choices and parser), start and cancel runs through a
:class:`Session`, read the sliding-window fields with :func:`read_patches`, rank the
channels of a per-channel run with :func:`channel_ranking`, and word progress, outcomes
and errors with :mod:`maskscope.gui.status`. This package never imports napari, Qt or ipywidgets.

Why no magicgui: magicgui maps a type annotation to a widget, but 8 of the 30 fields the
forms show are unions it has no widget for (``grid: int | tuple[int, ...]``,
``baseline: float | str``, ``stride: float | tuple[float, ...]``, ``fill: float | str``
in every method: ``ValueError: No widget found for type int | tuple[int, ...]``), and the
string fields' choices live in the fields' metadata, so it gives them a plain line edit.
The forms would have had to choose every one of those entries themselves, which is what
:func:`field_kind` does for both frontends; so maskscope does not depend on magicgui
(napari itself still installs it).
"""

from .channels import ChannelRank, channel_ranking, ranking_html, ranking_text
from .fields import (
    FormField,
    ParamSpec,
    field_kind,
    field_types,
    form,
    form_fields,
    format_value,
    parse_text,
    split_values,
)
from .inputs import (
    AXES,
    NORMALIZATIONS,
    SCOPES,
    InputArray,
    input_array,
    resolve_normalization,
    reverse_axes,
    reverse_explanation,
    scope_slices,
)
from .methods import (
    STDERR_OPTIONS,
    has_standard_error,
    method_class,
    method_name,
    method_names,
)
from .models import (
    PAD_MODES,
    LoadedModel,
    ModelEntry,
    ModelRegistry,
    device_choices,
    resolve_device,
)
from .session import PredictionReady, RunRequest, Session, prediction_first
from .sliding import (
    PATCH_NAMES,
    PatchFields,
    SlidingSettings,
    patch_form,
    read_patches,
    split_patch_values,
    windowed,
)
from .status import crop_note, error_line, format_duration, progress_text

__all__ = [
    "AXES",
    "NORMALIZATIONS",
    "PAD_MODES",
    "PATCH_NAMES",
    "SCOPES",
    "STDERR_OPTIONS",
    "ChannelRank",
    "FormField",
    "InputArray",
    "LoadedModel",
    "ModelEntry",
    "ModelRegistry",
    "ParamSpec",
    "PatchFields",
    "PredictionReady",
    "RunRequest",
    "Session",
    "SlidingSettings",
    "channel_ranking",
    "crop_note",
    "device_choices",
    "error_line",
    "field_kind",
    "field_types",
    "form",
    "form_fields",
    "format_duration",
    "format_value",
    "has_standard_error",
    "input_array",
    "method_class",
    "method_name",
    "method_names",
    "parse_text",
    "patch_form",
    "prediction_first",
    "progress_text",
    "ranking_html",
    "ranking_text",
    "read_patches",
    "resolve_device",
    "resolve_normalization",
    "reverse_axes",
    "reverse_explanation",
    "scope_slices",
    "split_patch_values",
    "split_values",
    "windowed",
]
