"""Messages in each frontend's words: API parameters → command-line flags or form fields.

The engine's messages name API parameters (``set pad_multiple=16``, ``RunOptions.batch_size
must be ...``). The command line speaks of flags (``--pad-multiple 16``), the GUIs of
fields (``"pad multiple" = 16``). This module holds the one map between them and
:func:`failure_line`, the one-line reason for a failure that every frontend shows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from ._engine.failures import ModelError, real_message

__all__ = [
    "ModelLoadError",
    "failure_line",
    "for_cli",
    "for_gui",
    "load_for_frontend",
    "names",
]

#: Added to a failure with no known remedy, per frontend.
_DEBUG_HINT = {
    "cli": " (run with --debug or MASKSCOPE_DEBUG=1 for the traceback)",
    "gui": "",
}

#: Parameters that are not in the parameter dataclasses: name → (CLI flag, GUI field).
_EXTRA = {
    "spatial_dims": ("--spatial-dims", "model input"),
    "outputs": ("--outputs", "model outputs"),
    "output_key": ("--output-key", "output key"),
    "pad_multiple": ("--pad-multiple", "pad multiple"),
    "pad_mode": ("--pad-mode", "pad mode"),
    "voxel_spacing": ("--spacing", "voxel spacing"),
    "slices": ("--slices", "scope"),
    "crop": ("--crop", "crop"),
    "patch_size": ("--patch-size", "patch size"),
    "target": ("--target", "target class"),
}

#: How a GUI writes some values (the "model input" field reads 2D / 3D).
_GUI_VALUES = {
    "spatial_dims": lambda v: f"{v}D" if v in ("2", "3") else v,
    "crop": lambda v: {"False": "off: the whole image", "True": "to the region"}.get(v, v),
}

#: How the command line writes some values (``crop=False`` is ``--crop off``).
_CLI_VALUES = {"crop": lambda v: {"False": "off", "True": ""}.get(v, v)}

_ASSIGN = re.compile(
    r"\b([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|\[[^\]]*\]|\([^)]*\)|[A-Za-z0-9_.\-]+)"
)
#: A message that starts with the parameter it is about: "grid (100, 100) is larger ...".
_LEADING = re.compile(r"^([a-z][a-z0-9_]*)(?= (?:must|is|has|applies|needs|takes|\())")
#: A parameter named as a unit: "in the units of voxel_spacing".
_UNITS = re.compile(r"\bunits of ([a-z][a-z0-9_]*)\b")
_OWNED = re.compile(r"\b(?:[A-Z]\w*)\.([a-z][a-z0-9_]*)\b")
_CALLABLE = re.compile(r"(?:give )?(?:a callable )?output=lambda out: \.\.\.")


class ModelLoadError(ValueError):
    """The model could not be loaded (the loader or the user's factory raised)."""


@functools.cache
def names() -> dict[str, tuple[str, str]]:
    """API parameter name → (command-line flag, GUI field label)."""
    from . import METHODS, RunOptions, describe_params

    out: dict[str, tuple[str, str]] = {}
    for cls in [*[m.Params for m in METHODS.values()], RunOptions]:
        for spec in describe_params(cls):
            out.setdefault(spec.name, ("--" + spec.name.replace("_", "-"), spec.label))
    out.update(_EXTRA)
    return out


def _rewrite(text: str, gui: bool) -> str:
    table = names()

    def assign(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2).strip("'\"")
        if name not in table:
            return m.group(0)
        flag, label = table[name]
        if gui:
            return f'"{label}" = {_GUI_VALUES.get(name, str)(value)}'
        if value[:1] in "[(" and value[-1:] in "])":  # a list or tuple: 1,3 as a flag takes it
            value = value[1:-1].replace(" ", "")
        return f"{flag} {_CLI_VALUES.get(name, str)(value)}".rstrip()

    def owned(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in table:
            return m.group(0)
        flag, label = table[name]
        return f'"{label}"' if gui else flag

    text = _CALLABLE.sub("the Python API's output= (a function of the model's output)", text)
    text = _OWNED.sub(owned, _ASSIGN.sub(assign, text))
    text = _UNITS.sub(lambda m: "units of " + owned(m), text)
    # the GUIs' own messages start with their field labels already ("grid takes ...")
    return text if gui else _LEADING.sub(owned, text)


def for_cli(text: str) -> str:
    """A message with API parameters written as command-line flags."""
    return _rewrite(text, gui=False)


def for_gui(text: str) -> str:
    """A message with API parameters written as form field labels."""
    return _rewrite(text, gui=True)


def failure_line(exc: BaseException, *, frontend: str = "cli") -> str:
    """One line on why a run or a load failed, in the frontend's words.

    Parameters
    ----------
    exc
        The exception.
    frontend
        ``"cli"`` (flags) or ``"gui"`` (field labels).

    Returns
    -------
    str
        maskscope's own message for bad input and model failures (with the model's real
        message and a hint), else the exception's type and message (for TorchScript, the
        interpreter's last meaningful line).
    """
    if frontend not in _DEBUG_HINT:
        raise ValueError(f"frontend must be 'cli' or 'gui', got {frontend!r}")
    known = isinstance(exc, ValueError | TypeError | OSError | ImportError | KeyError)
    if isinstance(exc, ModelError | ModelLoadError) or (
        known and "TorchScript interpreter" not in str(exc)
    ):
        lines = str(exc).strip().splitlines()
        text = lines[0].strip() if lines else ""
        if isinstance(exc, KeyError):
            text = text.strip("'\"")
        text = text or type(exc).__name__
    else:
        text = real_message(exc)
    unexplained = exc.hint is None if isinstance(exc, ModelError) else not known
    if isinstance(exc, ModelLoadError) or unexplained:
        text += _DEBUG_HINT[frontend]
    return for_gui(text) if frontend == "gui" else for_cli(text)


def load_for_frontend(loader: Callable[..., Any], spec: str, **kwargs: Any) -> Any:
    """Load a model with ``loader(spec, **kwargs)``; name the model in any failure.

    The loader's own messages name the file or factory already and pass unchanged;
    anything else (a factory that raises, a file torch cannot read) becomes a
    :class:`ModelLoadError` with the real message.
    """
    try:
        return loader(spec, **kwargs)
    except Exception as exc:
        text = str(exc)
        if isinstance(exc, ValueError | FileNotFoundError) and str(spec) in text:
            raise
        raise ModelLoadError(f"cannot load the model {str(spec)!r}: {real_message(exc)}") from exc
