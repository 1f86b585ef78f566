"""What the napari and notebook frontends share (no GUI package is imported here).

Both GUIs list the same methods, build their forms from the same parameter dataclasses,
normalise inputs with :func:`maskscope.intensity.normalize` and start a run through
:func:`start_run`, which returns the engine's streaming generator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ._engine.cancel import CancelToken
from ._engine.loop import RunOptions
from ._engine.params import ParamSpec, describe_params, validate_params
from .explanation import Explanation
from .intensity import NORMALIZATIONS
from .methods import METHODS, Method

__all__ = [
    "NORMALIZATIONS",
    "device_choices",
    "form_fields",
    "method_class",
    "resolve_device",
    "split_values",
    "start_run",
]


def method_class(name: str) -> type[Method]:
    """The method class for a name listed in :data:`maskscope.methods.METHODS`."""
    try:
        return METHODS[name]
    except KeyError:
        valid = ", ".join(repr(k) for k in METHODS)
        raise ValueError(f"method must be one of {valid}, got {name!r}") from None


def form_fields(name: str) -> tuple[list[ParamSpec], list[ParamSpec]]:
    """The method's parameters and the run options that a GUI form shows."""
    cls = method_class(name)
    params = [p for p in describe_params(cls.Params) if p.gui]
    skip = set() if cls.stochastic else {"seed", "tol", "min_masks"}
    options = [p for p in describe_params(RunOptions) if p.gui and p.name not in skip]
    return params, options


def split_values(name: str, values: dict[str, Any]) -> tuple[Any, RunOptions]:
    """Split form values into the method's parameter dataclass and :class:`RunOptions`.

    Unknown names raise ``TypeError``; values are validated by the dataclasses.
    """
    cls = method_class(name).Params
    p_names = {f.name for f in dataclasses.fields(cls)}
    o_names = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(values) - p_names - o_names)
    if unknown:
        raise TypeError(f"unknown field(s) {', '.join(unknown)} for {name}")
    params = cls(**{k: v for k, v in values.items() if k in p_names})
    options = RunOptions(**{k: v for k, v in values.items() if k in o_names})
    validate_params(params)
    return params, options


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


def start_run(
    model: Callable,
    method: str,
    image: Any,
    *,
    values: dict[str, Any] | None = None,
    target: int | None = None,
    reference: Any = None,
    slices: Any = "all",
    voxel_spacing: Any = None,
    outputs: str = "logits",
    spatial_dims: int | None = None,
    yield_every: float = 0.2,
    cancel: CancelToken | None = None,
    normalize: str = "none",
    **model_options: Any,
) -> Iterator[Explanation]:
    """Validate everything and return the run's snapshot generator.

    Errors in the inputs are raised here, before any work starts; errors of the model
    surface from the generator. ``cancel`` stops the run from any thread after the chunk
    in progress (its last snapshot is then marked ``cancelled``). ``model_options`` go to
    the method's constructor (``output_key``, ``output``, ``pad_multiple``, ``pad_mode``).
    """
    params, options = split_values(method, values or {})
    options = dataclasses.replace(options, yield_every=yield_every)
    explainer = method_class(method)(
        model, outputs=outputs, spatial_dims=spatial_dims, **model_options
    )
    return explainer.iter_explain(
        image,
        target=target,
        reference=reference,
        params=params,
        options=options,
        slices=slices,
        voxel_spacing=voxel_spacing,
        cancel=cancel,
        normalize=normalize,
    )
