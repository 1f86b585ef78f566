"""Which methods the GUIs offer, and what each one's run can do."""

from __future__ import annotations

from typing import Any

from ..methods import METHODS, Method

__all__ = [
    "STDERR_OPTIONS",
    "has_standard_error",
    "method_class",
    "method_name",
    "method_names",
]

#: Run options that only make sense for a method with a standard error (random masks):
#: the seed, and stopping early once the standard error is small enough.
STDERR_OPTIONS = frozenset({"seed", "tol", "min_masks"})


def method_names() -> list[str]:
    """The methods the GUIs list, in :data:`maskscope.METHODS` order."""
    return list(METHODS)


def method_name(name: str, *, any_case: bool = False) -> str:
    """The name of a method as :data:`maskscope.METHODS` lists it (see :func:`method_class`)."""
    if name in METHODS:
        return name
    if any_case:
        for key in METHODS:
            if key.lower() == str(name).lower():
                return key
    valid = ", ".join(repr(k) for k in METHODS)
    raise ValueError(f"method must be one of {valid}, got {name!r}")


def method_class(name: str, *, any_case: bool = False) -> type[Method]:
    """The method class for a name listed in :data:`maskscope.METHODS`.

    Parameters
    ----------
    name
        ``"SegRISE"``, ...
    any_case
        Also accept ``"segrise"`` (the notebook's keyword does).

    Raises
    ------
    ValueError
        Listing the valid names.
    """
    return METHODS[method_name(name, any_case=any_case)]


def has_standard_error(method: str | type[Method] | Any) -> bool:
    """Whether a method's runs have a standard error, so a seed and early stopping apply.

    The one place the frontends ask (a deterministic sweep such as HDM has neither).

    Parameters
    ----------
    method
        A method name, class or instance.
    """
    cls = method_class(method) if isinstance(method, str) else method
    return bool(getattr(cls, "stochastic", True))
