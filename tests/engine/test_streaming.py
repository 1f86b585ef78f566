"""The streaming loop: snapshots, cancel, early stop, errors mid-run, slices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from maskscope import RISE, PixelRISE, RunOptions, SegRISE
from maskscope._engine.checks import next_check
from tests.conftest import Spy, ThresholdNet


def test_snapshots_arrive_in_order_and_last_equals_explain(net2d, square2d):
    seg = SegRISE(net2d)
    snaps = list(seg.iter_explain(square2d, n_masks=50, grid=4, batch_size=8, seed=3))
    assert [s.n_done for s in snaps] == [8, 16, 24, 32, 40, 48, 50]
    assert [s.done for s in snaps] == [False] * 6 + [True]
    assert all(a.elapsed <= b.elapsed for a, b in itertools.pairwise(snaps))
    final = seg.explain(square2d, n_masks=50, grid=4, batch_size=8, seed=3)
    np.testing.assert_array_equal(snaps[-1].map, final.map)
    assert snaps[-1].progress == 1.0 and snaps[0].progress == pytest.approx(8 / 50)


def test_each_snapshot_is_the_unbiased_map_so_far(net2d, square2d):
    seg = SegRISE(net2d)
    snaps = list(seg.iter_explain(square2d, n_masks=30, grid=4, batch_size=10, seed=1))
    for snap in snaps:
        partial = seg.explain(square2d, n_masks=snap.n_done, grid=4, batch_size=10, seed=1)
        # the same masks and chunks; the model's float32 convolution may round differently
        # between runs (its thread count, the CPU's kernel), far below the maps' differences
        np.testing.assert_allclose(snap.map, partial.map, rtol=1e-6, atol=1e-9)
    assert not np.allclose(snaps[0].map, snaps[-1].map, rtol=1e-3)


def test_snapshots_own_their_arrays(net2d, square2d):
    gen = SegRISE(net2d).iter_explain(square2d, n_masks=30, grid=4, batch_size=10)
    first = next(gen)
    kept = first.map.copy()
    rest = list(gen)
    np.testing.assert_array_equal(first.map, kept)
    assert not np.allclose(rest[-1].map, kept)


@pytest.mark.parametrize(("pipeline", "in_flight"), [("off", 0), ("on", 10)])
def test_closing_the_generator_stops_model_calls(net2d, square2d, pipeline, in_flight):
    spy = Spy(net2d)
    kw = {"n_masks": 1000, "grid": 4, "batch_size": 10, "pipeline": pipeline}
    gen = SegRISE(spy).iter_explain(square2d, **kw)
    snap = next(gen)
    next(gen)
    gen.close()
    # pipelined, the third chunk's model call was running when the second snapshot came:
    # closing waits for it, and starts nothing more
    assert spy.images == 1 + 20 + in_flight
    assert snap.n_done == 10 and not snap.done


def test_yield_every_throttles_but_first_and_last_always_come(net2d, square2d):
    snaps = list(
        SegRISE(net2d).iter_explain(square2d, n_masks=60, grid=4, batch_size=5, yield_every=3600.0)
    )
    assert [s.n_done for s in snaps] == [5, 60]


def test_progress_callback_sees_every_snapshot(net2d, square2d):
    seen = []
    SegRISE(net2d).explain(square2d, n_masks=20, grid=4, batch_size=5, progress=seen.append)
    assert [s.n_done for s in seen] == [5, 10, 15, 20]


def test_tqdm_progress_bar_runs(net2d, square2d, capsys):
    SegRISE(net2d).explain(square2d, n_masks=20, grid=4, batch_size=5, progress=True)
    assert "20/20" in capsys.readouterr().err


@pytest.mark.parametrize("pipeline", ["off", "on"])
def test_early_stop_reaches_tolerance(net2d, pipeline):
    img = np.zeros((24, 24), np.float32)
    img[6:14, 6:14] = 1.0
    spy = Spy(net2d)
    expl = SegRISE(spy).explain(
        img, n_masks=4000, grid=4, batch_size=20, tol=0.1, min_masks=40, pipeline=pipeline
    )
    assert expl.stopped_early and expl.done
    assert 40 <= expl.n_done < 4000 and expl.n_total == expl.n_done
    assert expl.reliability >= 0.9
    # pipelined, the next chunk's model call was running when the run stopped: it is not
    # in the map, nor in n_forward; that chunk ends at the next check of tol
    in_flight = 0 if pipeline == "off" else min(20, next_check(expl.n_done, 40) - expl.n_done)
    assert spy.images == expl.n_done + 1 + in_flight
    assert expl.n_forward == expl.n_done + 1
    # the promise holds: a map of reliability ρ correlates about √ρ with the converged map
    long = SegRISE(net2d).explain(img, n_masks=4000, grid=4, batch_size=200, seed=7)
    r = np.corrcoef(expl.map.ravel(), long.map.ravel())[0, 1]
    assert r >= np.sqrt(0.9) - 0.05


def test_model_error_mid_run_surfaces_and_snapshots_stay(net2d, square2d):
    class Flaky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net2d
            self.calls = 0
            self.eval()

        def forward(self, x):
            self.calls += 1
            if self.calls == 4:
                raise RuntimeError("GPU fell off the bus")
            return self.net(x)

    gen = SegRISE(Flaky()).iter_explain(square2d, n_masks=50, grid=4, batch_size=5)
    got = [next(gen), next(gen)]
    saved = [s.map.copy() for s in got]
    with pytest.raises(RuntimeError, match="fell off the bus"):
        next(gen)
    for s, m in zip(got, saved, strict=True):
        np.testing.assert_array_equal(s.map, m)
        assert np.isfinite(s.map).all()


def test_2d_model_on_volume_goes_slice_by_slice(net2d):
    vol = np.zeros((5, 16, 16), np.float32)
    vol[1:4, 4:10, 5:12] = 1.0
    seg = SegRISE(net2d)
    spy = Spy(net2d)
    expl = SegRISE(spy).explain(vol, n_masks=20, grid=4, seed=2, slices="all")
    assert expl.map.shape == (5, 16, 16)
    assert expl.slices == (1, 2, 3)
    assert expl.params["skipped_slices"] == [0, 4]
    assert spy.images == 5 + 3 * 20  # one reference pass per slice, masks on non-empty ones
    for z in (1, 2, 3):
        single = seg.explain(vol[z], n_masks=20, grid=4, seed=2)
        # each run measures its own batch size: equal up to float32 rounding
        scale = np.abs(single.map).max()
        np.testing.assert_allclose(expl.map[z], single.map, rtol=1e-6, atol=1e-6 * scale)
    assert not expl.map[0].any() and not expl.map[4].any()
    one = seg.explain(vol, n_masks=20, grid=4, seed=2, slices=2)
    assert one.slices == (2,) and one.n_total == 20
    np.testing.assert_allclose(one.map[2], expl.map[2], rtol=1e-6, atol=1e-6 * scale)
    assert not one.map[1].any()


def test_volume_snapshots_show_finished_slices(net2d):
    vol = np.zeros((3, 16, 16), np.float32)
    vol[:, 4:10, 5:12] = 1.0
    snaps = list(SegRISE(net2d).iter_explain(vol, n_masks=10, grid=4, batch_size=5))
    assert [s.slices for s in snaps] == [(0,), (0,), (0, 1), (0, 1), (0, 1, 2), (0, 1, 2)]
    assert snaps[2].map[0].any() and snaps[2].map[1].any() and not snaps[2].map[2].any()


def test_3d_model_on_volume_and_spacing_kept(net3d, cube3d):
    expl = SegRISE(net3d).explain(cube3d, n_masks=10, grid=2, voxel_spacing=(2.0, 1.0, 0.5))
    assert expl.map.shape == (8, 8, 8) and expl.slices is None
    assert expl.voxel_spacing == (2.0, 1.0, 0.5)


def test_run_options_object_and_params_object(net2d, square2d):
    from maskscope import SegRISEParams

    a = SegRISE(net2d).explain(
        square2d, params=SegRISEParams(n_masks=12, grid=4), options=RunOptions(seed=5)
    )
    b = SegRISE(net2d).explain(square2d, n_masks=12, grid=4, seed=5)
    np.testing.assert_array_equal(a.map, b.map)
    assert a.params["n_masks"] == 12 and a.params["seed"] == 5


def test_max_merge_reports_the_mean_merge_and_a_reliability(net2d, square2d):
    kw = {"n_masks": 40, "grid": 4, "seed": 3}
    mx = PixelRISE(net2d).explain(square2d, merge="max", **kw)
    # the max merge is centred throughout, its mean-merge too
    mean = PixelRISE(net2d).explain(square2d, merge="mean", estimator="centred", **kw)
    np.testing.assert_allclose(mx.extras["mean"], mean.map, rtol=1e-6, atol=1e-6)
    assert mx.reliability is not None and mx.stderr is None


def test_mask_chunks_bounded_by_batch_size(net2d, monkeypatch):
    """Memory does not grow with N: no step ever holds more than batch_size masks."""
    import maskscope._engine.masks as masks_mod

    largest = []
    render = masks_mod.RiseMasks._render

    def spy_render(self, grids, shifts, rows=None):
        largest.append(grids.shape[0])
        return render(self, grids, shifts, rows)

    monkeypatch.setattr(masks_mod.RiseMasks, "_render", spy_render)
    img = np.zeros((32, 32), np.float32)
    img[8:20, 8:20] = 1
    for n in (50, 1500):
        largest.clear()
        RISE(net2d).explain(img, n_masks=n, grid=4, batch_size=16)
        assert max(largest) == 16
    # large inputs go in smaller batches: at most max_batch_voxels per model call
    largest.clear()
    spy = Spy(net2d)
    capped = RISE(spy).explain(img, n_masks=50, grid=4, batch_size=16, max_batch_voxels=5 * 32 * 32)
    assert max(largest) == 5 and max(spy.batch_sizes) == 5
    full = RISE(net2d).explain(img, n_masks=50, grid=4, batch_size=16, max_batch_voxels=None)
    np.testing.assert_allclose(capped.map, full.map, rtol=1e-6)


def test_classifier_gets_rejected_by_segmentation_methods():
    from tests.conftest import TinyClassifier

    img = np.zeros((12, 12), np.float32)
    with pytest.raises(ValueError, match="classifier output; use RISE"):
        SegRISE(TinyClassifier()).explain(img, n_masks=4, grid=3)


def test_training_mode_warns(square2d):
    net = ThresholdNet(2).train()
    with pytest.warns(UserWarning, match="training mode"):
        SegRISE(net).explain(square2d, n_masks=4, grid=4)


def test_out_of_memory_halves_the_batch_and_keeps_the_map(net2d, square2d):
    """A fake OOM above 4 images per call: the run backs off and the map is unchanged."""

    class Fussy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net2d
            self.sizes = []
            self.eval()

        def forward(self, x):
            if x.shape[0] > 4:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            self.sizes.append(x.shape[0])
            return self.net(x)

    fussy = Fussy()
    with pytest.warns(RuntimeWarning, match="out of memory with a batch of") as record:
        expl = SegRISE(fussy).explain(square2d, n_masks=30, grid=4, batch_size=16, seed=3)
    assert ["batches of 8" in str(w.message) for w in record] == [True, False]
    assert max(fussy.sizes) == 4 and sum(fussy.sizes) == 31
    want = SegRISE(net2d).explain(square2d, n_masks=30, grid=4, batch_size=16, seed=3)
    np.testing.assert_allclose(expl.map, want.map, rtol=1e-6)
    assert expl.n_done == 30 and expl.n_forward == 31


def test_other_errors_and_oom_at_batch_one_are_not_swallowed(net2d, square2d):
    from maskscope._engine.loop import is_out_of_memory

    calls = []

    def oom_after_reference(x):
        calls.append(x.shape[0])
        if len(calls) > 1:
            raise RuntimeError("MPS backend out of memory")
        return net2d(x)

    assert is_out_of_memory(RuntimeError("CUDA out of memory"))
    assert not is_out_of_memory(ValueError("out of memory"))
    seg = SegRISE(oom_after_reference, spatial_dims=2)
    with pytest.raises(RuntimeError, match="MPS backend"), pytest.warns(RuntimeWarning):
        seg.explain(square2d, n_masks=8, batch_size=8)
    assert calls == [1, 8, 4, 2, 1]  # halved down to single images, then the error surfaces


@pytest.mark.parametrize("method", [RISE, SegRISE])
def test_snapshot_timing_never_changes_the_sums(method, net2d, square2d):
    # more masks than the running sums stage before they flush: a snapshot after every
    # chunk and none at all must give the same bits
    kw = {"n_masks": 150, "grid": 4, "batch_size": 8, "seed": 2}
    snaps = list(method(net2d).iter_explain(square2d, **kw))
    assert len(snaps) == 19
    final = method(net2d).explain(square2d, **kw)
    np.testing.assert_array_equal(snaps[-1].map, final.map)
    np.testing.assert_array_equal(snaps[-1].stderr, final.stderr)


def test_automatic_batch_limit_on_large_images():
    from maskscope._engine.loop import AUTO_BATCH_VOXELS, batch_limit

    img = np.zeros((1024, 1024), np.float32)  # twice the CPU's automatic limit
    img[300:700, 300:700] = 1
    spy = Spy(ThresholdNet())
    expl = RISE(spy).explain(img, n_masks=7, grid=4, batch_size=16)
    assert spy.batch_sizes[1:] == [2, 2, 2, 1] and expl.params["batch_size_used"] == 2
    small = torch.zeros(1, 1, 64, 64)
    assert batch_limit(RunOptions(), small) == AUTO_BATCH_VOXELS["cpu"] // 4096
    assert batch_limit(RunOptions(max_batch_voxels=5000), small) == 1


def test_costly_snapshots_come_at_most_a_tenth_of_the_time(monkeypatch, net2d, square2d):
    """A snapshot that takes 20 ms to make is followed by at least 9 × 20 ms without one,
    whatever ``yield_every`` asks; ``yield_every=0`` still gives every chunk."""
    import time

    import maskscope._engine.weighted_sum as weighted_sum

    partial = weighted_sum.WeightedSum.partial

    def slow(self, *args, **kwargs):
        time.sleep(0.02)
        return partial(self, *args, **kwargs)

    monkeypatch.setattr(weighted_sum.WeightedSum, "partial", slow)
    kw = {"n_masks": 200, "grid": 4, "batch_size": 2, "pipeline": "off"}
    every = list(SegRISE(net2d).iter_explain(square2d, yield_every=0.0, **kw))
    assert [s.n_done for s in every] == list(range(2, 201, 2))
    t0 = time.perf_counter()
    paced = list(SegRISE(net2d).iter_explain(square2d, yield_every=0.001, **kw))
    wall = time.perf_counter() - t0
    assert paced[-1].done and paced[-1].n_done == 200
    # the first snapshot, then one per 0.18 s at most, and the last
    assert 2 <= len(paced) <= 2 + wall / 0.18
    gaps = np.diff([s.elapsed for s in paced[:-1]])
    assert (gaps >= 9 * 0.02).all()
