"""What a run records of its settings, and the checks wrapped around users' functions."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from .._engine.batch_tuner import BatchTuner, measurement_memo
from .._engine.custom import checked_fill, checked_score, function_name
from .._engine.loop import RunOptions, Task
from .._engine.params import replace_params, validate_params
from .._engine.perturb import bind
from .._engine.sliding import SlidingWindow

__all__ = ["batch_memo", "batch_plan", "checked_task", "jsonable", "resolve_settings", "run_record"]

#: The batch size of a compiled model's run when ``batch_size`` is None: measuring would
#: compile the model once per size tried. On a GPU, where 16 inputs leave most of it idle
#: (the bundled 2D U-Net runs 9k images/s at 16 and 56k at 128 on an H200), a larger one,
#: within the free memory's bound on a call's input voxels as for any batch.
COMPILED_BATCH = 16
COMPILED_BATCH_GPU = 128


def batch_plan(method, options: RunOptions) -> tuple[int | None, BatchTuner | None]:
    """The run's batch size, or None and the tuner that measures it.

    A number in ``options.batch_size`` is kept; None is measured, except for a compiled
    model (``compile=True``), which runs at :data:`COMPILED_BATCH` (on a CPU) or
    :data:`COMPILED_BATCH_GPU`.
    """
    if options.batch_size is not None:
        return options.batch_size, None
    if method.model_call.compile:
        return (COMPILED_BATCH if method.device.type == "cpu" else COMPILED_BATCH_GPU), None
    return None, BatchTuner(memo=batch_memo(method))


def batch_memo(method) -> dict | None:
    """Where the measured batch sizes of ``method``'s model are remembered in this process.

    A measurement is reused by runs of the same model, method, precision, compilation and
    padding (see :mod:`~maskscope._engine.batch_tuner`).
    """
    call = method.model_call
    settings = (call.precision, call.compile, call.pad_multiple, call.pad_mode)
    return measurement_memo(call.model, method.name, *settings)


def checked_task(method, task: Task, params: Any) -> Task:
    """Wrap the task's score and fill when they run a user's function, to check its output."""
    custom = [
        (name, fn)
        for name, fn in (
            ("score_fn", getattr(method, "score_fn", None)),
            ("distance_fn", getattr(method, "distance_fn", None)),
            ("score", getattr(params, "score", None)),
            ("distance", getattr(params, "distance", None)),
        )
        if callable(fn)
    ]
    if custom:
        name, fn = custom[0]
        task.score = checked_score(task.score, f"the {name} function {function_name(fn)}")
    fill = getattr(method, "fill_fn", None)
    if callable(fill):
        task.perturb = bind(task.x, checked_fill(fill, f"the fill_fn {function_name(fill)}"))
    return task


def run_record(method, params: Any, options: RunOptions, inp, normalize) -> dict[str, Any]:
    """The JSON-able parameters every snapshot of a run records."""
    call = method.model_call
    model: dict[str, Any] = {}
    if call.output_key is not None:
        model["output_key"] = call.output_key
    if call.output is not None:
        model["output"] = call.output
    if call.pad_multiple is not None:
        model["pad_multiple"] = call.pad_multiple
        model["pad_mode"] = call.pad_mode
    if call.precision != "float32":
        model["precision"] = call.precision
    if call.compile:
        model["compile"] = True
    if isinstance(call.model, SlidingWindow):
        window = call.model
        model.update(
            patch_size=window.patch_size,
            patch_overlap=window.overlap,
            patch_blend=window.blend,
            patch_batch=window.patch_batch,
        )
    return jsonable(
        {
            **dataclasses.asdict(params),
            **dataclasses.asdict(options),
            "outputs": method.outputs,
            "device": str(method.device),
            "spatial_dims": inp.spatial_dims,
            "slice_by_slice": inp.sliced,
            "normalize": str(normalize),
            **model,
            **method.record_extra(params, inp),
        }
    )


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON can hold them: numbers, strings, lists; names of functions."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (tuple, list)) and all(isinstance(i, (int, float, str)) for i in v):
            out[k] = list(v)
        elif callable(v):
            out[k] = getattr(v, "__name__", repr(v))
        elif isinstance(v, (np.ndarray, torch.Tensor)):
            out[k] = f"array{tuple(v.shape)}"
        else:
            out[k] = repr(v)
    return out


def resolve_settings(name: str, params_cls: type, params: Any, options, overrides: dict):
    """The method's parameters and run options with ``overrides`` applied, validated."""
    if params is None:
        params = params_cls()
    elif not isinstance(params, params_cls):
        raise TypeError(f"params must be a {params_cls.__name__}, got {type(params).__name__}")
    options = options or RunOptions()
    p_names = {f.name for f in dataclasses.fields(params_cls)}
    o_names = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(overrides) - p_names - o_names)
    if unknown:
        raise TypeError(
            f"{name} got unknown argument(s) {', '.join(unknown)}; parameters are "
            f"{', '.join(sorted(p_names))}; run options are {', '.join(sorted(o_names))}"
        )
    p_over = {k: v for k, v in overrides.items() if k in p_names}
    o_over = {k: v for k, v in overrides.items() if k in o_names}
    if p_over:
        params = replace_params(params, **p_over)
    if o_over:
        options = replace_params(options, **o_over)
    validate_params(params)
    validate_params(options)
    return params, options
