"""The measured batch size: which sizes are tried, what is kept, no mask evaluated twice."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

import maskscope.methods._record as record
from maskscope import HDM, RISE, SegRISE
from maskscope._engine.batch_tuner import BatchTuner, candidate_sizes
from tests.conftest import ThresholdNet


class FakeTime:
    """A clock that only moves when the model runs: ``cost(b)`` seconds per call of ``b``."""

    def __init__(self, per_input: dict[int, float]) -> None:
        self.per_input = per_input
        self.t = 0.0

    def cost(self, b: int) -> float:
        known = [k for k in self.per_input if k <= b]
        return b * self.per_input[max(known)]

    def now(self) -> float:
        return self.t


class TimedNet(nn.Module):
    """ThresholdNet that advances a fake clock and records its batch sizes."""

    def __init__(self, clock: FakeTime, dims: int = 2) -> None:
        super().__init__()
        self.net = ThresholdNet(dims)
        self.clock = clock
        self.sizes: list[int] = []
        self.fail_above: int | None = None
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.fail_above is not None and b > self.fail_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.sizes.append(b)
        self.clock.t += self.clock.cost(b)
        return self.net(x)


def drive(tuner: BatchTuner, clock: FakeTime, n: int) -> list[int]:
    """Run ``n`` inputs through the tuner as the loop does; the chunk sizes used."""
    sizes, done = [], 0
    while done < n:
        b = min(tuner.size(), n - done)
        tuner.start()
        clock.t += clock.cost(b)
        tuner.done(b)
        sizes.append(b)
        done += b
    return sizes


def test_candidates_are_powers_of_two_and_the_limit():
    assert candidate_sizes(1) == [1]
    assert candidate_sizes(8) == [1, 2, 4, 8]
    assert candidate_sizes(145) == [1, 2, 4, 8, 16, 32, 64, 128, 145]


def test_sizes_are_tried_upwards_until_one_is_slower_and_the_fastest_is_kept():
    clock = FakeTime({1: 10.0, 2: 6.0, 4: 4.0, 8: 4.2, 16: 7.0, 32: 9.0})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 8, 8), 32)
    sizes = drive(tuner, clock, 100)
    # each size once untimed, once timed; 16 is more than 1.15x the best: stop there;
    # then one more chunk of each size within 1.5x the best, in the same order
    assert sizes[:10] == [1, 1, 2, 2, 4, 4, 8, 8, 16, 16]
    assert sizes[10:13] == [2, 4, 8]
    assert set(sizes[13:-1]) == {4} and sum(sizes) == 100
    assert tuner.chosen == 4
    assert tuner.timings == pytest.approx({1: 10.0, 2: 6.0, 4: 4.0, 8: 4.2, 16: 7.0})
    rec = tuner.record()
    assert rec["batch_size_measured"] == 4 and rec["batch_sizes_timed"] == [1, 2, 4, 8, 16]
    assert rec["batch_ms_per_input"] == [10000.0, 6000.0, 4000.0, 4200.0, 7000.0]


def test_on_a_gpu_sizes_are_tried_downwards_from_the_largest():
    # a GPU: the larger the batch, the faster per input, up to a plateau
    clock = FakeTime({1: 50.0, 2: 25.0, 4: 12.0, 8: 6.0, 16: 3.1, 32: 3.0, 64: 2.9})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 8, 8), 64, descending=True)
    sizes = drive(tuner, clock, 500)
    # 64, 32 and 16 are within 1.15x of the best; 8 is twice as slow: the sweep stops there,
    # and the small sizes (a few inputs per call, slow) are never run
    assert sizes[:8] == [64, 64, 32, 32, 16, 16, 8, 8]
    assert sizes[8:11] == [16, 32, 64]  # one more chunk of each contender
    assert min(sizes[:-1]) == 8 and tuner.chosen == 64
    assert tuner.record()["batch_sizes_timed"] == [8, 16, 32, 64]


def test_on_a_gpu_out_of_memory_measures_again_downwards_from_half_the_failed_size():
    clock = FakeTime({1: 9.0, 8: 2.0, 16: 1.0, 32: 1.05})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 4, 4), 64, descending=True)
    assert tuner.size() == 64
    assert tuner.out_of_memory(64) == 32
    assert drive(tuner, clock, 200)[:8] == [32, 32, 16, 16, 8, 8, 16, 32]
    assert tuner.chosen == 16 and 64 not in tuner.timings


def test_the_free_memory_of_a_cuda_device_bounds_its_batches_the_same_every_run(monkeypatch):
    from maskscope._engine import loop

    monkeypatch.setattr(loop, "_DEVICE_VOXELS", {})
    free = [3 * 2**30]  # 3 GiB free, 0.5 GiB held unused by the allocator
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free[0], 2**34))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2**29)
    voxels = loop.device_batch_voxels(torch.device("cuda", 0))
    # (3.5 GiB / 1024 bytes per voxel) rounded down to a power of two
    assert voxels == 2**21 == 1 << ((7 * 2**29 // loop.CUDA_BYTES_PER_VOXEL).bit_length() - 1)
    free[0] = 2**31  # a later run: less is free, the bound (and a memo's key) is kept
    assert loop.device_batch_voxels(torch.device("cuda", 0)) == voxels
    assert loop.device_batch_voxels(torch.device("cuda", 1)) == 2**21  # read per device
    assert loop.device_batch_voxels(torch.device("cpu")) is None


def test_batch_one_is_kept_when_it_is_fastest():
    clock = FakeTime({1: 2.0, 2: 2.6})
    tuner = BatchTuner(clock.now, warmup=0)
    tuner.begin((1, 1, 8, 8), 64)
    assert drive(tuner, clock, 7) == [1, 2, 1, 2, 1]
    assert tuner.chosen == 1


def test_a_size_the_model_has_run_at_this_shape_is_timed_without_a_warm_up():
    clock = FakeTime({1: 10.0, 2: 6.0, 4: 4.0, 8: 7.0})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 8, 8), 8, warm={1, 4})
    sizes = drive(tuner, clock, 40)
    assert sizes[:6] == [1, 2, 2, 4, 8, 8]  # 1 and 4 once, the others twice
    assert tuner.chosen == 4 and tuner.timings == {1: 10.0, 2: 6.0, 4: 4.0, 8: 7.0}
    cold = BatchTuner(clock.now)
    cold.begin((1, 1, 8, 8), 8)
    assert drive(cold, clock, 40)[:7] == [1, 1, 2, 2, 4, 4, 8]


def test_a_replay_runs_the_chunks_of_the_measurement_whatever_is_warm_now():
    clock = FakeTime({1: 10.0, 2: 6.0, 4: 4.0})
    memo: dict = {}
    first = BatchTuner(clock.now, memo=memo)
    first.begin((1, 1, 8, 8), 4, warm={1})
    sizes = drive(first, clock, 30)
    again = BatchTuner(clock.now, memo=memo)
    again.begin((1, 1, 8, 8), 4, warm=())  # nothing warm this time: the same chunks anyway
    assert again.reused and drive(again, clock, 30) == sizes
    assert again.chosen == first.chosen == 4


def test_a_short_last_chunk_is_not_timed():
    clock = FakeTime({1: 1.0, 2: 0.1, 4: 0.2})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 4, 4), 4)
    assert drive(tuner, clock, 5) == [1, 1, 2, 1]
    assert tuner.measuring and tuner.timings == {1: 1.0}


def test_out_of_memory_measures_again_below_the_failed_size():
    clock = FakeTime({1: 3.0, 2: 2.0, 4: 1.5, 8: 1.0})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 4, 4), 8)
    drive(tuner, clock, 1 + 1 + 2 + 2)  # 1 and 2 measured; 4 is next
    assert tuner.size() == 4
    assert tuner.out_of_memory(4) == 1
    assert tuner.n_measures == 2 and tuner.timings == {}
    assert drive(tuner, clock, 9) == [1, 1, 2, 2, 1, 2]
    assert tuner.chosen == 2  # only 1 and 2 remain below the failed 4


def test_the_same_shape_keeps_its_measurement_and_a_new_one_starts_again():
    clock = FakeTime({1: 2.0, 2: 1.0})
    tuner = BatchTuner(clock.now, warmup=0)
    tuner.begin((1, 1, 4, 4), 2)
    assert drive(tuner, clock, 3) == [1, 2]  # 1 is twice as slow: nothing to confirm
    assert tuner.chosen == 2
    tuner.begin((1, 1, 4, 4), 2)
    assert (tuner.chosen, tuner.n_measures) == (2, 1)
    tuner.begin((1, 1, 6, 6), 2)
    assert tuner.chosen is None and tuner.n_measures == 2


def _patched_tuner(monkeypatch, clock: FakeTime, budget_share: float = math.inf) -> None:
    """Runs measure on ``clock``; without a budget unless one is given."""
    tuner = functools.partial(BatchTuner, clock.now, budget_share=budget_share)
    monkeypatch.setattr(record, "BatchTuner", tuner)


def test_a_budget_keeps_the_sizes_whose_two_chunks_fit_and_always_1_and_2():
    assert candidate_sizes(64, budget=30) == [1, 2, 4, 8]  # 2 + 4 + 8 + 16 inputs
    assert candidate_sizes(64, budget=29.9) == [1, 2, 4]
    assert candidate_sizes(64, budget=1) == [1, 2]
    assert candidate_sizes(1, budget=0) == [1]
    assert candidate_sizes(145, budget=None) == candidate_sizes(145)


def test_a_short_run_measures_only_the_sizes_a_quarter_of_its_inputs_pays_for(
    monkeypatch, square2d
):
    clock = FakeTime({1: 5.0, 2: 3.0, 4: 2.0, 8: 1.0, 16: 0.5})
    _patched_tuner(monkeypatch, clock, budget_share=0.25)
    model = TimedNet(clock)
    short = SegRISE(model).explain(square2d, n_masks=60, grid=4, seed=2, batch_size=None)
    assert short.params["batch_sizes_timed"] == [1, 2, 4]  # 14 of 60 inputs; 8 would be 30
    assert 8 not in model.sizes and short.params["batch_size_measured"] == 4
    again = SegRISE(model).explain(square2d, n_masks=60, grid=4, seed=2, batch_size=None)
    assert again.params["batch_measurement_reused"] and np.array_equal(again.map, short.map)
    longer = SegRISE(model).explain(square2d, n_masks=256, grid=4, seed=2, batch_size=None)
    assert not longer.params["batch_measurement_reused"]  # it affords more: measured afresh
    assert longer.params["batch_sizes_timed"] == [1, 2, 4, 8, 16]  # 62 of 256 inputs
    assert longer.params["batch_size_measured"] == 16


def test_a_run_measures_on_its_own_masks_and_records_the_choice(monkeypatch, square2d):
    clock = FakeTime({1: 5.0, 2: 3.0, 4: 2.0, 8: 2.5})
    _patched_tuner(monkeypatch, clock)
    model = TimedNet(clock)
    expl = SegRISE(model).explain(square2d, n_masks=60, grid=4, seed=2, batch_size=None)
    assert model.sizes[0] == 1  # the unperturbed pass: batch 1 needs no warm-up chunk
    assert model.sizes[1:8] == [1, 2, 2, 4, 4, 8, 8]
    assert model.sizes[8:11] == [2, 4, 8]  # one more chunk of each within 1.5x the best
    assert set(model.sizes[11:-1]) == {4}
    assert sum(model.sizes) == 61 == expl.n_forward  # every mask once, none twice
    assert expl.params["batch_size"] is None
    assert expl.params["batch_size_measured"] == 4 and expl.params["batch_size_used"] == 4
    assert expl.params["batch_sizes_timed"] == [1, 2, 4, 8]
    fixed = SegRISE(ThresholdNet(2)).explain(square2d, n_masks=60, grid=4, seed=2, batch_size=7)
    np.testing.assert_allclose(expl.map, fixed.map, rtol=1e-6, atol=1e-9)
    assert "batch_size_measured" not in fixed.params


def test_slices_of_a_volume_share_one_measurement(monkeypatch, cube3d):
    clock = FakeTime({1: 5.0, 2: 1.0, 4: 3.0})
    _patched_tuner(monkeypatch, clock)
    model = TimedNet(clock)
    expl = RISE(model).explain(
        cube3d, n_masks=12, grid=3, slices=[2, 3, 4], target=1, batch_size=None
    )
    # slice 2: 1, 1, 2, 2, 4 (untimed) and a short 2; slice 3 goes on where slice 2
    # stopped: 4 timed (slower than 2: no other size is within 1.5x of 2), then 2s;
    # slice 4 uses 2 from its first chunk
    assert model.sizes.count(4) == 2 and expl.params["batch_size_measured"] == 2
    assert model.sizes[-7:] == [1, 2, 2, 2, 2, 2, 2]
    assert sum(model.sizes) == expl.n_forward == 3 * 13


def test_out_of_memory_in_a_measured_run_measures_again(monkeypatch, square2d):
    clock = FakeTime({1: 4.0, 2: 3.0, 4: 2.0, 8: 1.0})
    _patched_tuner(monkeypatch, clock)
    model = TimedNet(clock)
    model.fail_above = 4
    with pytest.warns(RuntimeWarning, match="out of memory with a batch of 8"):
        expl = HDM(model).explain(square2d, diameter=4, stride=1, sweep="full")
    assert max(model.sizes) == 4 and expl.params["batch_size_measured"] == 4
    assert sum(model.sizes) == expl.n_forward == 16 * 16 + 1
    fixed = HDM(ThresholdNet(2)).explain(square2d, diameter=4, stride=1, batch_size=5, sweep="full")
    np.testing.assert_array_equal(expl.map, fixed.map)


def test_a_later_run_of_the_model_replays_the_measurement(monkeypatch, square2d):
    clock = FakeTime({1: 5.0, 2: 3.0, 4: 2.0, 8: 2.5})
    _patched_tuner(monkeypatch, clock)
    model = TimedNet(clock)
    kw = {"n_masks": 60, "grid": 4, "seed": 2}  # no batch_size: measured by default
    first = SegRISE(model).explain(square2d, **kw)
    sizes = list(model.sizes)
    clock.per_input = {1: 1.0, 2: 9.0}  # the clock is not read again: the choice stays
    model.sizes.clear()
    again = SegRISE(model).explain(square2d, **kw)
    assert model.sizes == sizes  # the same chunks in the same order
    np.testing.assert_array_equal(again.map, first.map)
    assert first.params["batch_measurement_reused"] is False
    assert again.params["batch_measurement_reused"] is True
    assert again.params["batch_size_measured"] == first.params["batch_size_measured"] == 4
    assert again.params["batch_ms_per_input"] == first.params["batch_ms_per_input"]
    other = TimedNet(clock)  # another model measures afresh, with the clock as it is now
    SegRISE(other).explain(square2d, **kw)
    assert other.sizes[1:5] == [1, 2, 2, 1]
    hdm = HDM(model).explain(square2d, diameter=4, stride=2)  # another method, too
    assert hdm.params["batch_measurement_reused"] is False


def test_a_model_that_cannot_be_weakly_referenced_is_measured_every_run(square2d):
    from maskscope._engine.batch_tuner import measurement_memo

    assert measurement_memo([1, 2], "SegRISE") is None  # a list: no weak reference
    net = ThresholdNet(2)
    assert measurement_memo(net, "SegRISE") is measurement_memo(net, "SegRISE")
    assert measurement_memo(net, "SegRISE") is not measurement_memo(net, "HDM")


def test_a_compiled_model_runs_at_a_fixed_batch_instead_of_measuring(monkeypatch, square2d):
    from maskscope.methods._record import COMPILED_BATCH

    sizes = []

    def fake_compile(model, dynamic):  # stands in for the compiler: records its batches
        def run(x):
            sizes.append(x.shape[0])
            return model(x)

        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    expl = RISE(ThresholdNet(2), compile=True).explain(square2d, n_masks=40, grid=4)
    assert expl.params["batch_size_used"] == COMPILED_BATCH == 16
    assert "batch_size_measured" not in expl.params
    assert set(sizes) == {1, 16}  # the unperturbed input, then full (or padded) batches


def test_a_compiled_model_on_a_gpu_runs_at_a_larger_fixed_batch():
    from types import SimpleNamespace

    from maskscope._engine.loop import RunOptions

    def method(device: str, compile_: bool) -> SimpleNamespace:
        call = SimpleNamespace(compile=compile_, model=None)
        return SimpleNamespace(device=torch.device(device), model_call=call)

    assert record.batch_plan(method("cuda", True), RunOptions()) == (128, None)
    assert record.batch_plan(method("cpu", True), RunOptions()) == (16, None)
    assert record.batch_plan(method("cuda", True), RunOptions(batch_size=5)) == (5, None)


def test_a_size_keeps_the_faster_of_its_two_chunks():
    clock = FakeTime({1: 10.0, 2: 6.0, 4: 8.0})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 8, 8), 4)
    chunks = 0
    while tuner.measuring:
        b = tuner.size()
        tuner.start()
        clock.t += clock.cost(b)
        chunks += 1
        if chunks == 4:  # another job takes the processor during size 2's second chunk
            clock.t += 100.0
        tuner.done(b)
    assert tuner.timings == pytest.approx({1: 10.0, 2: 6.0, 4: 8.0})
    assert tuner.chosen == 2


def test_one_more_chunk_of_each_contender_recovers_from_a_burst_of_other_work():
    clock = FakeTime({1: 10.0, 2: 6.0, 4: 8.0})
    tuner = BatchTuner(clock.now)
    tuner.begin((1, 1, 8, 8), 4)
    sizes = []
    while tuner.measuring:
        b = tuner.size()
        tuner.start()
        clock.t += clock.cost(b)
        sizes.append(b)
        if len(sizes) in (3, 4):  # another job takes the processor during both chunks of 2
            clock.t += 5.0
        tuner.done(b)
    # 2 looked slower than 4 (8.5 per input); every size is within 1.5x of the best, so
    # each runs once more, and the third chunk of 2 shows its speed
    assert sizes == [1, 1, 2, 2, 4, 4, 1, 2, 4]
    assert tuner.timings == pytest.approx({1: 10.0, 2: 6.0, 4: 8.0})
    assert tuner.chosen == 2


def test_a_replay_runs_the_same_contenders_again():
    memo: dict = {}
    chosen, runs = [], []
    for per_input in ({1: 10.0, 2: 6.0, 4: 6.5, 8: 30.0}, {1: 1.0, 2: 9.0}):
        clock = FakeTime(per_input)  # the second run's clock would choose otherwise
        tuner = BatchTuner(clock.now, memo=memo)
        tuner.begin((1, 1, 8, 8), 8)
        runs.append(drive(tuner, clock, 40))
        chosen.append(tuner.chosen)
    # 1 and 8 are more than 1.5x slower than 2: only 2 and 4 run again
    assert runs[0][:10] == [1, 1, 2, 2, 4, 4, 8, 8, 2, 4]
    assert runs[1] == runs[0] and chosen == [2, 2]
