"""Notebook widget interruptions: run() never blocks on a chunk, close cancels, errors keep work."""

from __future__ import annotations

import html

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from maskscope.notebook import ExplainWidget

from .faults import BOUND, Faulty, Gated

#: Model calls a GUI makes before a run: the prediction it shows first.
CHECK = 1


def image() -> np.ndarray:
    img = np.zeros((24, 24), np.float32)
    img[6:15, 5:17] = 1.0
    return img


PARAMS = {"n_masks": 40, "grid": 4, "batch_size": 4}


def status(w: ExplainWidget) -> str:
    return html.unescape(w.status.value)


def test_run_during_a_running_chunk_returns_at_once_and_replaces_the_run() -> None:
    model = Gated(free_calls=CHECK + 2)  # unperturbed pass and one chunk, then blocked
    w = ExplainWidget(model, image(), **PARAMS)
    first = w.run()._run
    assert model.entered.wait(BOUND)
    w.run()  # would wait for the blocked chunk if it blocked the kernel
    second = w._run
    assert second is not first and first.running and not model.gate.is_set()
    model.gate.set()
    expl = w.wait(BOUND)
    assert expl is not None and expl.done and expl.n_done == 40
    assert first.cancelled and first.latest.n_done <= 8  # it stopped after its chunk
    assert w.run_button.disabled is False and w.error is None


def test_cancel_then_run() -> None:
    model = Gated(free_calls=CHECK + 2)
    w = ExplainWidget(model, image(), **PARAMS)
    w.run()
    assert model.entered.wait(BOUND)
    w.cancel()
    w.run()
    model.gate.set()
    assert w.wait(BOUND).done


def test_close_cancels_the_run() -> None:
    model = Gated(free_calls=CHECK + 2)
    w = ExplainWidget(model, image(), **PARAMS)
    run = w.run()._run
    assert model.entered.wait(BOUND)
    w.close()
    model.gate.set()
    assert run.wait(BOUND) and run.cancelled
    assert run.latest.cancelled and run.latest.n_done == 8
    assert model.calls == CHECK + 3  # the chunk running at close, and no other


def test_model_error_keeps_the_partial_and_the_widget_runs_again() -> None:
    model = Faulty("raise", n=CHECK + 4)
    w = ExplainWidget(model, image(), **PARAMS)
    partial = w.run().wait(BOUND)
    assert isinstance(w.error, RuntimeError) and f"broke down at call {CHECK + 4}" in str(w.error)
    assert partial is not None and partial.n_done == 8 and "broke down" in w.status.value
    model.fault = "none"
    assert w.run().wait(BOUND).done and w.error is None


def test_empty_grid_field_is_named_and_the_widget_stays_usable() -> None:
    w = ExplainWidget(Faulty("none"), image(), **PARAMS)
    w.form.fields["grid"].widget.value = ""
    assert w.run().wait(BOUND) is None
    assert "grid is empty: it takes a number or numbers separated by commas" in status(w)
    w.form.fields["grid"].widget.value = "4"
    assert w.run().wait(BOUND).done


def test_bad_choice_names_the_form_field() -> None:
    w = ExplainWidget(Faulty("none"), image(), **PARAMS)
    w.form.fields["baseline"].widget.value = "median"
    w.run()
    assert "\"baseline\" must be a number or one of 'min', 'mean'" in status(w)
    assert "SegRISEParams" not in status(w)
