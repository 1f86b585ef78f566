"""Faulty models: errors name the fault, the finished work is kept, runs can be stopped."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from maskscope import HDM, CancelToken, PixelRISE, SegRISE
from tests.conftest import ThresholdNet

from .faults import BOUND, Faulty, Gated


def image() -> np.ndarray:
    img = np.zeros((16, 16), np.float32)
    img[4:10, 5:12] = 1.0
    return img


RUN = {"n_masks": 40, "grid": 4, "batch_size": 4, "seed": 1}


@pytest.mark.parametrize(
    ("fault", "exc", "message"),
    [
        ("raise", RuntimeError, "the model broke down at call 4"),
        ("nan", ValueError, "the model returned NaN or infinite values"),
        ("shape", ValueError, r"the model must return \(B, K, \*spatial\)"),
    ],
)
def test_model_fault_raises_with_the_finished_chunks(fault, exc, message) -> None:
    model = Faulty(fault, n=4)
    with pytest.raises(exc, match=message) as info:
        SegRISE(model).explain(image(), **RUN)
    partial = info.value.partial
    # calls 1 (unperturbed), 2 and 3 (chunks of 4) went through: 8 masks kept
    assert partial is not None and not partial.done and not partial.cancelled
    assert partial.n_done == 8 and partial.n_total == 40
    assert np.ptp(partial.map) > 0


def test_partial_of_a_failed_run_is_the_map_of_its_finished_masks() -> None:
    with pytest.raises(RuntimeError) as info:
        SegRISE(Faulty("raise", n=4)).explain(image(), **RUN)
    gen = SegRISE(ThresholdNet(2)).iter_explain(image(), **RUN)
    same = next(s for s in gen if s.n_done == 8)
    gen.close()
    np.testing.assert_allclose(info.value.partial.map, same.map, rtol=1e-12)


def test_keyboard_interrupt_carries_the_partial() -> None:
    with pytest.raises(KeyboardInterrupt) as info:
        SegRISE(Faulty("interrupt", n=3)).explain(image(), **RUN)
    assert info.value.partial.n_done == 4


def test_failure_in_the_unperturbed_pass_has_no_partial() -> None:
    with pytest.raises(RuntimeError) as info:
        SegRISE(Faulty("raise", n=1)).explain(image(), **RUN)
    assert info.value.partial is None


def test_iter_explain_exception_carries_the_partial_too() -> None:
    gen = SegRISE(Faulty("raise", n=3)).iter_explain(image(), **RUN)
    seen = []
    with pytest.raises(RuntimeError) as info:
        for snap in gen:
            seen.append(snap)
    assert info.value.partial.n_done == seen[-1].n_done == 4


@pytest.mark.parametrize("method", [SegRISE, HDM])
def test_in_place_model_changes_neither_the_input_nor_the_result(method) -> None:
    img = image()
    before = img.copy()
    kw = {"diameter": 5, "stride": 4} if method is HDM else {"n_masks": 12, "grid": 4}
    got = method(Faulty("inplace")).explain(img, **kw)
    want = method(ThresholdNet(2)).explain(before, **kw)
    np.testing.assert_array_equal(img, before)
    np.testing.assert_array_equal(got.image[0], before)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-6, atol=1e-12)
    img[0, 0] = 5.0  # the result owns its image
    assert got.image[0, 0, 0] == 0.0


def test_batch1_model_runs_one_at_a_time_with_an_honest_warning() -> None:
    want = SegRISE(ThresholdNet(2)).explain(image(), **RUN)
    model = Faulty("batch1")
    with pytest.warns(RuntimeWarning, match=r"continuing with one input per call .*float round"):
        got = SegRISE(model).explain(image(), **RUN)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-6, atol=1e-12)
    assert got.n_done == 40 and model.images == 1 + 4 + 40  # one failed batch of 4


def test_simulated_oom_backs_off_with_an_honest_warning() -> None:
    model = Faulty("oom")
    with pytest.warns(RuntimeWarning, match=r"batches of 2: the same masks, so the map changes by"):
        got = PixelRISE(model).explain(image(), merge="max", **RUN)
    want = PixelRISE(ThresholdNet(2)).explain(image(), merge="max", **RUN)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-5)
    assert got.params["batch_size_used"] == 2 and got.n_done == 40


def _run_in_thread(gen):
    out: dict = {"snaps": []}

    def drive() -> None:
        try:
            for snap in gen:
                out["snaps"].append(snap)
        except BaseException as exc:  # reported to the probe
            out["error"] = exc

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    return thread, out


def test_cancel_token_from_another_thread_stops_within_one_chunk() -> None:
    model = Gated(free_calls=3)  # the unperturbed pass and 2 chunks, then the gate
    token = CancelToken()
    gen = SegRISE(model).iter_explain(image(), cancel=token, **RUN)
    thread, out = _run_in_thread(gen)
    assert model.entered.wait(BOUND)  # chunk 3 is running
    with pytest.raises(ValueError, match="generator already executing"):
        gen.close()  # what does not work from another thread
    token.cancel()
    model.gate.set()
    thread.join(BOUND)
    assert not thread.is_alive() and "error" not in out
    last = out["snaps"][-1]
    assert last.cancelled and not last.done and last.n_done == 12  # chunk 3 finished
    assert model.calls == 4  # no chunk started after the cancel
    assert repr(last).count("cancelled") == 1


def test_cancelled_explain_returns_the_cancelled_snapshot() -> None:
    token = CancelToken()
    token.cancel()
    expl = SegRISE(ThresholdNet(2)).explain(image(), cancel=token, **RUN)
    assert expl.cancelled and expl.n_done == 0 and not expl.done


def test_cancel_must_be_a_token() -> None:
    with pytest.raises(TypeError, match="cancel must be a CancelToken or None, got Event"):
        SegRISE(ThresholdNet(2)).explain(image(), cancel=threading.Event())


def test_cancel_between_slices_of_a_volume() -> None:
    vol = np.zeros((4, 16, 16), np.float32)
    vol[:, 4:10, 5:12] = 1.0
    token = CancelToken()
    snaps = []
    for snap in SegRISE(ThresholdNet(2)).iter_explain(vol, cancel=token, **RUN):
        snaps.append(snap)
        if snap.slices == (0,) and snap.n_done == 40:
            token.cancel()
    assert snaps[-1].cancelled and snaps[-1].slices == (0,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert snaps[-1].map[1:].max() == 0.0


def test_cancel_while_pixelrise_max_finishes_its_slabs() -> None:
    img = np.zeros((64, 64), np.float32)
    img[10:50, 12:52] = 1.0
    # 128 masks: their kept scores fill most of the budget, so the final pass takes many slabs
    kw = {"merge": "max", "max_memory_mb": 1, "n_masks": 128, "grid": 4, "yield_every": 0.0}
    full = PixelRISE(ThresholdNet(2)).explain(img, **kw)
    token = CancelToken()
    snaps = []
    for snap in PixelRISE(ThresholdNet(2)).iter_explain(img, cancel=token, **kw):
        snaps.append(snap)
        if snap.n_done == 128 and not token.cancelled:
            token.cancel()  # the model pass is over: the slabs are being finished
    last = snaps[-1]
    assert last.cancelled and not last.done and last.n_done == 128
    # the two runs' batch sizes are tuned by time, so their float32 sums may round apart
    slack = 1e-5 * np.abs(full.map).max()
    assert np.all(last.map <= full.map + slack)
    assert (full.map - last.map).max() > 100 * slack  # the unfinished slabs are the live maxima
