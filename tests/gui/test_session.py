"""maskscope.gui's Session, model registry and annotation parser, without any GUI."""

from __future__ import annotations

import gc
from typing import Optional

import numpy as np
import pytest
import torch
from torch import nn

from maskscope import HDM, RISE, Explanation, RunOptions
from maskscope._engine.params import annotation_kinds
from maskscope.gui import (
    LoadedModel,
    ModelEntry,
    ModelRegistry,
    PredictionReady,
    RunRequest,
    Session,
    has_standard_error,
)
from maskscope.gui import status as st
from tests.conftest import ThresholdNet


class Counting(nn.Module):
    """Counts forward calls of the wrapped model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x)


def square() -> np.ndarray:
    img = np.zeros((32, 32), np.float32)
    img[8:20, 10:26] = 1.0
    return img


def test_a_run_is_the_same_as_explain_and_the_session_keeps_its_state():
    model = Counting(ThresholdNet(2))
    session = Session("SegRISE")
    values = {"n_masks": 12, "batch_size": 4, "seed": 3}
    snaps = list(
        session.start(RunRequest(square()), values, method="RISE", model=LoadedModel(model))
    )
    for snap in snaps:
        session.record(snap)
    assert session.method == "RISE" and session.model.model is model
    assert session.last is snaps[-1] and session.last.done
    expected = RISE(model).explain(square(), n_masks=12, batch_size=4, seed=3)
    np.testing.assert_allclose(session.last.map, expected.map, rtol=1e-6, atol=1e-7)


def test_bad_values_raise_before_the_model_runs_and_leave_the_last_run_alone():
    model = Counting(ThresholdNet(2))
    session = Session("RISE", LoadedModel(model))
    with pytest.raises(ValueError, match="n_masks"):
        session.start(RunRequest(square()), {"n_masks": 0})
    with pytest.raises(TypeError, match="unknown field"):
        session.start(RunRequest(square()), {"masks": 3})
    other = LoadedModel(ThresholdNet(2))
    with pytest.raises(ValueError, match="p_keep"):
        session.start(RunRequest(square()), {"p_keep": 2.0}, method="SegRISE", model=other)
    assert model.calls == 0
    assert session.method == "RISE" and session.model.model is model and session.token is None


def test_cancel_stops_after_the_chunk_in_progress():
    model = Counting(ThresholdNet(2))
    session = Session("RISE", LoadedModel(model))
    snapshots = session.start(
        RunRequest(square()), {"n_masks": 64, "batch_size": 4}, yield_every=0.0
    )
    first = next(snapshots)
    session.cancel()
    rest = list(snapshots)
    last = rest[-1] if rest else first
    assert last.cancelled and not last.done and last.n_done < 64
    assert model.calls <= last.n_done // 4 + 2  # the unperturbed pass and one chunk more


def test_the_prediction_check_comes_first_and_runs_only_when_advanced():
    model = Counting(ThresholdNet(2))
    session = Session("SegRISE", LoadedModel(model))
    run = session.start(RunRequest(square()), {"n_masks": 8}, prediction=True)
    assert model.calls == 0  # nothing runs until the generator is advanced
    ready = next(run)
    assert isinstance(ready, PredictionReady) and model.calls == 1
    assert ready.summary.prediction.shape == (32, 32)
    snaps = list(run)
    assert all(isinstance(s, Explanation) for s in snaps) and snaps[-1].done


def test_has_standard_error_is_asked_once_for_methods_and_instances():
    assert has_standard_error("RISE") and has_standard_error(RISE)
    assert not has_standard_error("HDM") and not has_standard_error(HDM(ThresholdNet(2)))
    with pytest.raises(ValueError, match="method must be one of"):
        has_standard_error("LIME")


def test_the_registry_holds_models_weakly():
    registry = ModelRegistry()
    seen = []
    registry.connect(lambda: seen.append(registry.names()))
    model = ThresholdNet(2)
    registry.add(ModelEntry("net", model, spatial_dims=2))
    assert registry.get("net").model is model and registry.get("net").spatial_dims == 2
    held = registry.get("net")  # what a widget keeps while it lists the model
    del model
    gc.collect()
    assert registry.names() == ["net"]
    del held
    gc.collect()
    assert registry.names() == []
    with pytest.raises(KeyError, match="no model registered as 'net'"):
        registry.get("net")
    registry.add(ModelEntry("abs", abs))  # takes no weak reference: held
    assert registry.get("abs").model is abs
    registry.remove("abs")
    assert seen == [["net"], ["abs"], []]  # a model that is gone was listed nowhere
    with pytest.raises(ValueError, match="non-empty string"):
        ModelEntry(" ", abs)


def test_one_annotation_parser_for_strings_and_types():
    assert annotation_kinds("int | tuple[int, ...]") == ("int", "tuple[int, ...]")
    assert annotation_kinds(Optional[float]) == ("float", "None")  # noqa: UP045
    assert annotation_kinds(float | None) == ("float", "None")
    assert annotation_kinds(bool) == ("bool",)
    assert annotation_kinds("dict[str, int | None] | None") == ("dict[str, int | None]", "None")
    assert annotation_kinds(RunOptions.__dataclass_fields__["tol"].type) == ("float", "None")


def test_status_words_for_both_frontends():
    snap = Explanation(method="RISE", map=np.eye(2), n_done=30, n_total=120, elapsed=90.0)
    assert st.format_duration(90.0) == "1 min 30 s"
    assert st.time_text(snap) == "1 min 30 s elapsed · ~4 min 30 s left"
    assert st.progress_text(snap) == "30/120 · 1 min 30 s · about 4 min 30 s left"
    done = snap.with_status(n_done=120, elapsed=200.0, done=True)
    assert st.time_text(done) == "3 min 20 s elapsed"
    assert (
        st.finished("RISE", done, None, False).text
        == "RISE done: 120 perturbations in 3 min 20 s; no reliability yet: one half of the "
        "masks gave a constant map (their scores did not change); use more masks"
    )
    cancelled = st.finished("RISE", snap, None, True)
    assert (
        cancelled.text.startswith("RISE cancelled at 30/120") and cancelled.bar_style == "warning"
    )
    failed = st.finished("RISE", snap, RuntimeError("boom"), False)
    assert failed.text == (
        "RISE failed at 30/120: RuntimeError: boom; the map shown is the partial one of 30 "
        "perturbations"
    )
    assert failed.color == st.RED
    # what an ROI run's crop did: said when skipped, or when a margin given is too small
    skipped = done.with_status(
        params={"crop": True, "crop_skipped": "the ROI's box plus the margin covers it"}
    )
    text = st.finished("RISE", skipped, None, False).text
    assert text.endswith("; not cropped: the ROI's box plus the margin covers it")
    small = done.with_status(params={"crop": 4, "crop_margin_difference": 0.969})
    warned = st.finished("RISE", small, None, False)
    assert "the crop margin is too small for this model" in warned.text and "0.969" in warned.text
    assert warned.color == st.ORANGE
    fine = done.with_status(params={"crop": 4, "crop_margin_difference": 1e-7})
    assert st.crop_note(fine) == "" and st.crop_note(done) == ""
    with pytest.raises(ValueError, match="max_rate must be > 0"):
        st.check_rate(0)


class FailsAt(Counting):
    """Counting, raising at call ``n`` (the unperturbed pass is call 1)."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__(model)
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calls + 1 == self.n:
            self.calls += 1
            raise RuntimeError(f"broke down at call {self.n}")
        return super().forward(x)


def test_a_failed_run_yields_the_map_of_every_finished_chunk_before_its_error():
    """Snapshots 60 s apart: only the first comes while the run goes; when the model fails
    at its 7th call the five chunks before it (20 masks) still reach the GUI."""
    model = FailsAt(ThresholdNet(2), n=7)
    session = Session("SegRISE", LoadedModel(model))
    values = {"n_masks": 40, "batch_size": 4, "seed": 1}
    snapshots = session.start(RunRequest(square()), values, yield_every=60.0)
    got = []
    with pytest.raises(RuntimeError, match="broke down at call 7"):
        for snap in snapshots:
            got.append(snap)
    assert [s.n_done for s in got] == [4, 20] and not got[-1].done
    ok = FailsAt(ThresholdNet(2), n=0)  # never fails: the same masks, summed to 20
    want = next(
        s
        for s in Session("SegRISE", LoadedModel(ok)).start(
            RunRequest(square()), values, yield_every=0.0
        )
        if s.n_done == 20
    )
    np.testing.assert_allclose(got[-1].map, want.map, rtol=1e-6, atol=1e-7)
