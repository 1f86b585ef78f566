"""Error messages in the words of each frontend: CLI flags, form field labels.

The parameter dataclasses name a field as ``SegRISEParams.grid``; the command line calls
it ``--grid`` and the forms ``grid`` (their label). These helpers rewrite the names in a
message, so that every error names what the user typed into.
"""

from __future__ import annotations

import re

__all__ = ["for_cli", "for_form"]

_FIELD = re.compile(r"\b(?:[A-Z]\w*Params|RunOptions)\.(\w+)")


_ARGUMENT = re.compile(r"^(target|slices|slice indices|slice index|outputs|spatial_dims)\b")
_FLAGS = {"slice indices": "--slices", "slice index": "--slices: slice index"}


def for_cli(message: str) -> str:
    """``SegRISEParams.n_masks must`` → ``--n-masks must``; ``target must`` → ``--target must``."""
    message = _FIELD.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)
    return _ARGUMENT.sub(
        lambda m: _FLAGS.get(m.group(1), "--" + m.group(1).replace("_", "-")), message
    )


def _label(owner: str, name: str) -> str:
    from .engine.loop import RunOptions
    from .engine.params import describe_params
    from .methods import METHODS

    for cls in [*(m.Params for m in METHODS.values()), RunOptions]:
        if cls.__name__ == owner:
            for spec in describe_params(cls):
                if spec.name == name:
                    return spec.label
    return name.replace("_", " ")


def for_form(message: str) -> str:
    """``RunOptions.tol must ...`` → ``the field 'early-stop tolerance' must ...`` (its label)."""
    return _FIELD.sub(lambda m: f"the field {_label(*m.group(0).split('.'))!r}", message)
