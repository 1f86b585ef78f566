"""What both GUIs need to evaluate their last map (no GUI package imported here)."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..explanation import Explanation
from ._setup import slice_fields
from .curves import iter_faithfulness
from .result import FaithfulnessResult

__all__ = ["evaluation_inputs", "start_evaluation", "summary_html"]


def evaluation_inputs(snap: Explanation | None, slice_index: int | None = None) -> dict[str, Any]:
    """What to evaluate, from a GUI's last explanation: the explanation, and for one made
    slice by slice the slice on screen (``slice_index``), checked here."""
    if snap is None:
        raise ValueError("there is no map to evaluate yet: run an explanation first")
    if snap.image is None:
        raise ValueError("the explanation holds no image to evaluate on")
    if snap.slices is None:
        return {"source": snap}
    try:
        slice_fields(snap, slice_index)
    except ValueError:
        shown = ", ".join(map(str, snap.slices[:8])) + (" …" if len(snap.slices) > 8 else "")
        raise ValueError(
            f"slice {slice_index} was not explained: show one of the explained slices "
            f"({shown}) to evaluate it"
        ) from None
    return {"source": snap, "slice_index": int(slice_index)}


def start_evaluation(
    snap: Explanation | None,
    model: Callable,
    *,
    slice_index: int | None = None,
    **options: Any,
) -> Iterator[FaithfulnessResult]:
    """A generator of evaluation snapshots that does all its work when advanced.

    The inputs are taken from ``snap`` here (so that a missing map fails at once); the
    model first runs in whatever thread advances the generator.

    Parameters
    ----------
    snap
        The explanation to evaluate.
    model
        The model that made it.
    slice_index
        The slice on screen, for a map made slice by slice.
    **options
        Passed to :func:`~maskscope.evaluate.iter_faithfulness` (``steps``, ``substrate``,
        ``n_random``, ``batch_size``, ``outputs``, ``spatial_dims``, ``cancel``).
    """
    inputs = evaluation_inputs(snap, slice_index)

    def run() -> Iterator[FaithfulnessResult]:
        yield from iter_faithfulness(inputs.pop("source"), model=model, **inputs, **options)

    return run()


def summary_html(result: FaithfulnessResult) -> str:
    """The AUCs in a small HTML table, with a plain-words verdict per curve."""
    rows = []
    for kind in ("deletion", "insertion"):
        curve = getattr(result, kind)
        if curve is None:
            continue
        for score in curve.runs:
            auc = result.auc(kind, score)
            base = result.random_deletion if kind == "deletion" else result.random_insertion
            b = base.auc(score) if base is not None else float("nan")
            if not np.isfinite(auc + b):
                verdict = ""
            elif (auc < b) == (kind == "deletion"):
                verdict = "better than random"
            else:
                verdict = "<b>not</b> better than random"
            rows.append(
                f"<tr><td>{kind}</td><td>{html.escape(score)}</td><td>{_fmt(auc)}</td>"
                f"<td>{_fmt(b)}</td><td>{verdict}</td></tr>"
            )
    head = "<tr><th>curve</th><th>score</th><th>AUC</th><th>random</th><th></th></tr>"
    note = "deletion: lower is better; insertion: higher is better"
    if result.slice_index is not None:
        note += f"; slice {result.slice_index}"
    if result.window is not None:
        note += f"; over {result.window_text().replace('the window', 'the crop window')}"
    state = "" if result.done else " (in progress)"
    return f"<table>{head}{''.join(rows)}</table><small>{note}{state}</small>"


def _fmt(v: float) -> str:
    return f"{v:.3f}" if np.isfinite(v) else "…"
