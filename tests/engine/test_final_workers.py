"""PixelRISE max's final pass in threads (``_engine.workers``): the same map, within budget."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from maskscope import PixelRISE
from maskscope._engine import pipeline, pixel_factored, pixel_slabs, workers
from maskscope._engine.mask_batch import MaskBatch
from maskscope._engine.masks import RiseMasks
from maskscope._engine.pixel_max import PixelMax
from maskscope._engine.workers import THREAD_NAME, Workers, final_workers
from tests.conftest import ThresholdNet

from .test_pixel_max import brute_force

CPU = torch.device("cpu")


def test_workers_give_the_results_in_order_from_their_threads():
    with Workers(3) as pool:
        got = pool.map(lambda x: (x * x, threading.current_thread().name), range(20))
    assert [v for v, _ in got] == [x * x for x in range(20)]
    assert all(name.startswith(THREAD_NAME) for _, name in got)
    with Workers(1) as pool:  # one worker: the calling thread
        names = pool.map(lambda _: threading.current_thread().name, range(3))
    assert names == [threading.current_thread().name] * 3


def test_workers_run_parts_at_once_up_to_their_limit():
    """Two parts that wait for each other finish only if two run at once; a limit of one
    never has two at once."""
    meet = threading.Barrier(2, timeout=10)
    with Workers(2) as pool:
        assert pool.map(lambda x: meet.wait() is not None and x, [1, 2]) == [1, 2]
        running, most, lock = [0], [0], threading.Lock()

        def part(x):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            threading.Event().wait(0.002)
            with lock:
                running[0] -= 1
            return x

        assert pool.limited(1).map(part, range(12)) == list(range(12))
        assert most[0] == 1
        assert pool.limited(0).n == 1 and pool.limited(5).n == 2


def test_a_failing_part_raises_and_leaves_no_thread():
    started = []

    def part(x):
        started.append(x)
        if x == 3:
            raise ValueError("part 3 failed")
        return x

    with pytest.raises(ValueError, match="part 3"):
        with Workers(2) as pool:
            pool.map(part, range(200))
    assert 3 in started
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


def test_the_number_of_workers_follows_the_free_cores(monkeypatch):
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 4)
    threads = torch.get_num_threads()
    try:
        for torch_threads, want in ((1, 4), (2, 2), (3, 1), (4, 1)):
            torch.set_num_threads(torch_threads)
            assert final_workers("auto", CPU) == want
            assert final_workers("on", CPU) == want
        torch.set_num_threads(1)
        assert final_workers("off", CPU) == 1
        assert final_workers("auto", torch.device("meta")) == 1  # not a CPU: one
    finally:
        torch.set_num_threads(threads)


def named_threads(monkeypatch, *where) -> list[str]:
    """The names of the threads that run each ``(module, name)`` in ``where``."""
    seen: list[str] = []
    for module, name in where:
        _record(monkeypatch, module, name, seen)
    return seen


def _record(monkeypatch, module, name, seen: list[str]) -> None:
    original = getattr(module, name)

    def recording(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles small enough that a small budget holds several beside a slab (a real run's
    512 MiB holds tens of the default ones)."""
    monkeypatch.setattr(pixel_factored, "TILE_ELEMENTS", 4096)
    monkeypatch.setattr(pixel_slabs, "TILE_ELEMENTS", 2**14)
    monkeypatch.setattr(PixelMax, "REDUCE_VOXELS", 64)  # several tiles of the live pixels


def finished(spatial, n, n_pix, n_workers, factored, gain, max_bytes=2**21):
    gen = RiseMasks(spatial, 3, 0.5, seed=11)
    scores = torch.rand(n, n_pix, generator=torch.Generator().manual_seed(2))
    acc = PixelMax(
        spatial, n_pix, 0.5, n, gen, CPU, max_bytes=max_bytes, factored=factored, gain=gain
    )
    for start in range(0, n, 7):
        stop = min(start + 7, n)
        acc.update(MaskBatch(start, gen(start, stop)), scores[start:stop])
    slabs = list(acc.finish(workers=n_workers))
    want = brute_force(gen(0, n)[:, 0].double().numpy(), scores.double().numpy(), 0.5, gain=gain)
    return acc, slabs, acc.partial(), want


@pytest.mark.parametrize("gain", [False, True])
@pytest.mark.parametrize("factored", [True, False])
@pytest.mark.parametrize("spatial", [(40, 36), (12, 14, 10)])
def test_the_final_pass_in_threads_gives_the_same_maps_bit_for_bit(
    monkeypatch, small_tiles, spatial, factored, gain
):
    """Every part (the live pixels' tiles, the factored blocks or the gathered tiles) runs in
    the workers, and the maps, halves included, equal the one-thread pass exactly."""
    seen = named_threads(
        monkeypatch, (pixel_factored.FactoredPass, "_maxima"), (pixel_slabs, "_reduce")
    )
    one, slabs, want, brute = finished(spatial, 60, 200, 1, factored, gain)
    assert one.tiled and one.final_pass == ("factored" if factored else "gathered")
    assert seen and not any(name.startswith(THREAD_NAME) for name in seen)
    seen.clear()
    three, slabs3, got, _ = finished(spatial, 60, 200, 3, factored, gain)
    assert len(slabs3) == len(slabs) and three.rows_per_slab == one.rows_per_slab
    assert {name.startswith(THREAD_NAME) for name in seen} == {True}
    for a, b in zip((got.map, *three.best), (want.map, *one.best), strict=True):
        assert torch.equal(a, b)
    assert got.reliability == want.reliability
    np.testing.assert_allclose(got.map.numpy(), brute, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factored", [True, False])
def test_the_parts_at_once_fit_the_budget(monkeypatch, small_tiles, factored):
    """A budget that holds one slab and one part's buffers beside it runs one part at a time;
    one that holds more runs them at once."""
    limits: list[int] = []
    original = Workers.limited

    def recording(self, at_most):
        limits.append(int(at_most))
        return original(self, at_most)

    monkeypatch.setattr(Workers, "limited", recording)
    spatial, n, n_pix = (40, 36), 60, 200
    acc, *_ = finished(spatial, n, n_pix, 4, factored, False, max_bytes=2**18)
    assert factored or acc.rows_per_slab < spatial[0]  # the budget sets the slabs
    tight = limits[-1]
    finished(spatial, n, n_pix, 4, factored, False)
    assert tight <= 1 < limits[-1]


def test_pixelrise_max_takes_the_free_cores_for_its_final_pass_unless_the_pipeline_is_off(
    monkeypatch, small_tiles
):
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 3)
    seen = named_threads(
        monkeypatch, (pixel_factored.FactoredPass, "_maxima"), (pixel_slabs, "_reduce")
    )
    img = np.zeros((1, 20, 24, 18), np.float32)
    img[0, 5:15, 6:16, 5:13] = 1.0  # 800 pixels: the sums do not fit 8 MB, a final pass
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    maps = {}
    try:
        for mode in ("off", "auto"):
            seen.clear()
            kw = {"merge": "max", "n_masks": 60, "grid": 4, "batch_size": 8, "pipeline": mode}
            expl = PixelRISE(ThresholdNet(3)).explain(img, max_memory_mb=8, **kw)
            maps[mode] = expl.map
            assert seen and {n.startswith(THREAD_NAME) for n in seen} == {mode == "auto"}
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(maps["off"], maps["auto"])
    assert workers.final_workers("off", CPU) == 1
