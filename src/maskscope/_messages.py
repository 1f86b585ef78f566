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


def for_form(message: str) -> str:
    """``SegRISEParams.n_masks must ...`` → ``the field 'n masks' must ...``."""
    return _FIELD.sub(lambda m: f"the field {m.group(1).replace('_', ' ')!r}", message)
