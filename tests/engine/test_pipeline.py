"""The model of the next chunk runs while the loop sums this one (``RunOptions.pipeline``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from maskscope import HDM, RISE, PixelRISE, RunOptions, SegRISE
from maskscope._engine import pipeline
from maskscope._engine.accumulate import WeightedSum
from maskscope._engine.cancel import CancelToken
from maskscope._engine.loop import ModelRunner, Task, run_task
from maskscope._engine.masks import RiseMasks
from maskscope._engine.perturb import blend_into
from tests.conftest import ThresholdNet

WORKER = "maskscope-model"


class Recorder(torch.nn.Module):
    """ThresholdNet that records which thread calls it, and refuses to be called twice at once."""

    def __init__(self, spatial_dims: int = 2) -> None:
        super().__init__()
        self.net = ThresholdNet(spatial_dims)
        self.spatial_dims, self.in_channels = spatial_dims, 1
        self.threads: list[str] = []
        self.busy = threading.Lock()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.busy.acquire(blocking=False):
            raise AssertionError("the model was called while a call was in progress")
        try:
            self.threads.append(threading.current_thread().name)
            seen = x.clone()
            out = self.net(x)
            # the loop must not rewrite this chunk's inputs while the model reads them
            assert torch.equal(seen, x), "the chunk's inputs changed during the model call"
            return out
        finally:
            self.busy.release()


def image2d() -> np.ndarray:
    img = np.zeros((1, 24, 20), np.float32)
    img[0, 6:15, 5:13] = 1.0
    return img


def image3d() -> np.ndarray:
    img = np.zeros((1, 10, 12, 9), np.float32)
    img[0, 3:7, 4:9, 2:6] = 1.0
    return img


CASES = [
    (RISE, {}),
    (SegRISE, {}),
    (PixelRISE, {"merge": "mean"}),
    (PixelRISE, {"merge": "max"}),
    (HDM, {"sweep": "full", "diameter": 5, "stride": 3}),
]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(("cls", "kw"), CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_pipelined_chunks_give_the_same_snapshots_bit_for_bit(cls, kw, dims):
    img = image2d() if dims == 2 else image3d()
    n = {} if cls is HDM else {"n_masks": 70}  # chunks of 6: a shorter last chunk
    runs = {}
    for mode in ("off", "on"):
        model = Recorder(dims)
        snaps = list(
            cls(model).iter_explain(
                img, batch_size=6, pipeline=mode, yield_every=0.0, grid=4, **kw, **n
            )
            if cls is not HDM
            else cls(model).iter_explain(img, batch_size=6, pipeline=mode, yield_every=0.0, **kw)
        )
        runs[mode] = (snaps, model.threads)
    (off, off_threads), (on, on_threads) = runs["off"], runs["on"]
    assert [s.n_done for s in on] == [s.n_done for s in off]
    assert [s.n_forward for s in on] == [s.n_forward for s in off]
    for a, b in zip(off, on, strict=True):
        np.testing.assert_array_equal(a.map, b.map)
    assert WORKER not in " ".join(off_threads)
    # the unperturbed pass runs in the calling thread, every chunk in the worker
    assert sum(WORKER in t for t in on_threads) == len(on_threads) - 1


def _task(n: int, spatial=(16, 12), on_update=None) -> Task:
    x = torch.rand(1, 1, *spatial, generator=torch.Generator().manual_seed(0))
    masks = RiseMasks(spatial, 3, 0.5, seed=1, reuse_output=True)
    acc = WeightedSum(spatial, 0.5, torch.device("cpu"), "centred")
    perturb = blend_into(x, 0.0)
    if on_update is not None:
        update = acc.update

        def acc_update(batch, scores):
            on_update(batch)
            update(batch, scores)

        acc.update = acc_update
    return Task(
        x=x,
        n_total=n,
        masks=masks.batch,
        perturb=perturb,
        score=lambda out: out.flatten(1).mean(1),
        accumulator=acc,
        reused=(perturb.output, masks.output),
    )


def test_the_next_chunks_model_runs_while_this_chunk_is_summed():
    """Summing chunk k waits for chunk k + 1's model call to start: only a pipelined loop
    gets there (a plain loop calls the model after the sums)."""
    for mode, expect in (("on", True), ("off", False)):
        started = [threading.Event() for _ in range(4)]
        calls = []

        def model(b, calls=calls, started=started):
            started[len(calls)].set()
            calls.append(b.shape[0])
            return b

        seen = []

        def on_update(batch, started=started, seen=seen, timeout=5.0 if expect else 0.3):
            k = batch.start // 4
            if k + 1 < 3:  # a following chunk exists
                seen.append(started[k + 1].wait(timeout))

        task = _task(12, on_update=on_update)
        runner = ModelRunner(model, (16, 12))
        steps = list(run_task(task, runner, RunOptions(pipeline=mode), batch_size=4))
        assert steps[-1].final and steps[-1].n_done == 12
        assert seen == [expect, expect]
        assert runner.n_forward == 12


def _last_call_sees(task, spatial, mode, timeout):
    """Run ``task`` in chunks of 4 (or fewer where memory says so); during the last
    chunk's model call, wait up to ``timeout`` for the accumulator's ``settle`` and record
    whether it came, and how many masks were still held then."""
    acc = task.accumulator
    settled = threading.Event()
    settle = acc.settle
    held_at_settle = []

    def record():
        held_at_settle.append(acc._pending_n)
        settle()
        settled.set()

    acc.settle = record
    calls, seen = [], []

    def model(b):
        calls.append(b.shape[0])
        if sum(calls) == task.n_total:  # the last chunk's call
            seen.append((settled.wait(timeout), acc._pending_n))
        return b

    runner = ModelRunner(model, spatial)
    steps = list(run_task(task, runner, RunOptions(pipeline=mode), batch_size=4))
    assert len(calls) >= 3 and steps[-1].n_done == task.n_total
    return seen, held_at_settle, calls, steps[-1].partial.map


def test_large_sums_are_settled_while_the_last_model_call_runs():
    """On a volume of EARLY_SETTLE_VOXELS the held factors are added to the sums before the
    last chunk's: by the pipelined loop during that chunk's model call (the call waits for
    it), by the plain loop after it; the maps are the same bit for bit."""
    from maskscope._engine.weighted_sum import EARLY_SETTLE_VOXELS

    spatial = (64, 64, 64)
    assert np.prod(spatial) == EARLY_SETTLE_VOXELS
    maps = {}
    for mode, expect in (("on", True), ("off", False)):
        task = _task(12, spatial=spatial)
        seen, held, calls, maps[mode] = _last_call_sees(task, spatial, mode, 5.0 if expect else 0.3)
        assert [came for came, _ in seen] == [expect]
        assert held[0] == 12 - calls[-1]  # the chunks before the last were held, then added
        assert task.accumulator._pending_n == 0
    torch.testing.assert_close(maps["on"], maps["off"], rtol=0, atol=0)


def test_small_sums_are_left_for_the_end():
    """Below EARLY_SETTLE_VOXELS nothing is settled during the last model call: the held
    masks are added by the final pass, after every chunk."""
    task = _task(12)
    seen, held, calls, _ = _last_call_sees(task, (16, 12), "on", 0.3)
    assert seen == [(False, 12 - calls[-1])]
    assert held == [12]  # settled once, by finish, with every chunk held
    assert task.accumulator._pending_n == 0


def test_cancel_stops_after_the_chunk_in_flight_and_counts_what_was_summed():
    task = _task(40)
    runner = ModelRunner(lambda b: b, (16, 12))
    token = CancelToken()
    steps = []
    for step in run_task(task, runner, RunOptions(pipeline="on"), batch_size=4, cancel=token):
        steps.append(step)
        if step.n_done == 8:
            token.cancel()
    assert steps[-1].cancelled
    # the chunk whose model call was in flight when the token was set is summed, no more
    assert steps[-1].n_done == 12
    assert runner.n_forward == 12 == task.accumulator.n
    assert not any(t.name.startswith(WORKER) for t in threading.enumerate())


def test_a_model_error_propagates_with_the_chunks_before_it_summed():
    calls = []

    def model(b):
        calls.append(b.shape[0])
        if len(calls) == 3:
            raise ValueError("broken model")
        return b

    task = _task(40)
    runner = ModelRunner(model, (16, 12))
    with pytest.raises(ValueError, match="broken model"):
        list(run_task(task, runner, RunOptions(pipeline="on"), batch_size=4))
    assert task.accumulator.n == 8 == runner.n_forward
    assert not any(t.name.startswith(WORKER) for t in threading.enumerate())


def test_out_of_memory_backs_off_and_gives_the_same_masks():
    def model(b):
        if b.shape[0] > 2:
            raise RuntimeError("CPU out of memory (tried to allocate 1 GiB)")
        return b

    task = _task(24)
    runner = ModelRunner(model, (16, 12))
    with pytest.warns(RuntimeWarning, match="out of memory"):
        steps = list(run_task(task, runner, RunOptions(pipeline="on"), batch_size=8))
    assert steps[-1].final and steps[-1].n_done == 24 and steps[-1].batch_size == 2
    plain = _task(24)
    list(run_task(plain, ModelRunner(lambda b: b, (16, 12)), RunOptions(), batch_size=2))
    got, want = task.accumulator.partial().map, plain.accumulator.partial().map
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)
    assert runner.n_forward == 24


def test_closing_the_run_waits_for_the_model_call_in_flight():
    task = _task(400)
    runner = ModelRunner(lambda b: b, (16, 12))
    steps = run_task(task, runner, RunOptions(pipeline="on"), batch_size=4)
    next(steps)
    next(steps)
    steps.close()
    assert not any(t.name.startswith(WORKER) for t in threading.enumerate())
    assert task.accumulator.n == 8


@pytest.mark.parametrize("dims", [2, 3])
def test_adaptive_sweeps_pipeline_level_by_level_to_the_same_map(dims):
    img = image2d() if dims == 2 else image3d()
    maps, threads = {}, {}
    for mode in ("off", "on"):
        model = Recorder(dims)
        expl = HDM(model).explain(img, diameter=5, stride=2, batch_size=4, pipeline=mode)
        maps[mode], threads[mode] = expl, model.threads
    np.testing.assert_array_equal(maps["on"].map, maps["off"].map)
    assert maps["on"].n_forward == maps["off"].n_forward
    assert WORKER in " ".join(threads["on"]) and WORKER not in " ".join(threads["off"])


def test_early_stopping_pipelined_stops_at_the_same_chunk_with_the_same_map():
    runs = {}
    for mode in ("off", "on"):
        model = Recorder(2)
        runs[mode] = RISE(model).explain(
            image2d(), n_masks=4000, tol=0.3, min_masks=40, batch_size=8, grid=4, pipeline=mode
        )
        assert (WORKER in " ".join(model.threads)) == (mode == "on")
    off, on = runs["off"], runs["on"]
    assert off.stopped_early and on.stopped_early
    assert on.n_done == off.n_done < 4000 and on.n_forward == off.n_forward
    np.testing.assert_array_equal(on.map, off.map)


def test_auto_pipelines_on_a_cpu_with_a_core_to_spare(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert not pipeline.should_pipeline("auto", cpu, 1000)
    assert pipeline.should_pipeline("on", cpu, 1000)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert pipeline.should_pipeline("auto", cpu, 1000)
    assert not pipeline.should_pipeline("auto", cpu, pipeline.PIPELINE_MAX_BYTES + 1)
    assert not pipeline.should_pipeline("auto", torch.device("meta"), 1000)
    assert not pipeline.should_pipeline("off", cpu, 1000)


def test_auto_in_a_run_follows_the_spare_core(monkeypatch):
    monkeypatch.setattr(pipeline, "usable_cores", lambda: torch.get_num_threads() + 1)
    model = Recorder(2)
    RISE(model).explain(image2d(), n_masks=40, batch_size=4, grid=4)  # pipeline="auto"
    assert WORKER in " ".join(model.threads)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: torch.get_num_threads())
    model = Recorder(2)
    RISE(model).explain(image2d(), n_masks=40, batch_size=4, grid=4)
    assert WORKER not in " ".join(model.threads)


def test_a_bad_pipeline_value_names_the_field_and_its_choices():
    with pytest.raises(ValueError, match=r"pipeline.*'auto', 'on', 'off'.*'sometimes'"):
        RunOptions(pipeline="sometimes")


def test_a_worker_given_its_share_of_the_cores_does_not_pipeline(monkeypatch):
    from maskscope.batch.model_source import ModelSource

    monkeypatch.setattr(pipeline, "_CORES", None)  # put back after the test
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the suite's threads stay
    model, _ = ModelSource(Recorder(2), threads=1).load()
    assert pipeline.usable_cores() == 1 and not pipeline.spare_core()
    RISE(model).explain(image2d(), n_masks=40, batch_size=4, grid=4)
    assert WORKER not in " ".join(model.threads)
