"""One explanation split by ranges of masks equals the single-process map exactly."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from maskscope import HDM, RISE, PixelRISE, SegRISE
from maskscope.batch import explain_split, iter_explain_split
from maskscope.methods._ranges import iter_merged, plan_ranges, run_range
from tests.conftest import ThresholdNet
from tests.distributed.cases import image2d, volume3d

MODEL2D = "tests.cli.threshold_factory:make"
MODEL3D = "tests.cli.threshold_factory:make3d"


@contextlib.contextmanager
def _one_thread():
    """Torch on one thread, as the workers run: the same sums, rounded the same way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _single(cls, dims, image, **kw):
    with _one_thread():
        return cls(ThresholdNet(dims)).explain(image, **kw)


def _assert_same(got, want):
    assert np.array_equal(got.map, want.map)
    if want.stderr is not None:
        assert np.array_equal(got.stderr, want.stderr)
    assert got.reliability == want.reliability and got.rel_error == want.rel_error
    assert sorted(got.extras) == sorted(want.extras)
    for k in want.extras:
        assert np.array_equal(got.extras[k], want.extras[k], equal_nan=True), k
    assert np.array_equal(got.prediction, want.prediction)
    assert (got.n_done, got.n_total, got.done, got.target) == (
        want.n_done,
        want.n_total,
        True,
        want.target,
    )


def _image():
    img = np.zeros((20, 24), np.float32)
    img[4:12, 5:15] = 1.0
    return img


@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        (SegRISE, {"n_masks": 700, "grid": 4, "seed": 3, "batch_size": 48}),
        (RISE, {"n_masks": 600, "grid": 5, "seed": 1, "batch_size": 100}),
        (PixelRISE, {"n_masks": 520, "grid": 4, "seed": 2, "batch_size": 30}),
        (HDM, {"diameter": 5, "stride": 1, "batch_size": 7}),
    ],
)
def test_ranges_merged_in_any_order_equal_one_run(cls, kw):
    image = _image()
    full = {"sweep": "full"} if cls is HDM else {}  # what a split HDM run sweeps by default
    want = _single(cls, 2, image, **kw, **full)
    method = cls(ThresholdNet(2))
    ranges = plan_ranges(want.n_total, range_size=256)
    assert len(ranges) >= 2
    with _one_thread():  # bit for bit needs the same thread count as the single run
        results = [run_range(method, image, r, **kw) for r in ranges]
        _assert_same(list(iter_merged(method, image, reversed(results), **kw))[-1], want)


def test_split_on_the_cluster_equals_one_run_2d_and_streams(address):
    image = image2d(2)
    kw = {"n_masks": 900, "grid": 4, "seed": 5, "batch_size": 40}
    want = _single(SegRISE, 2, image, **kw)
    snaps = list(
        iter_explain_split(
            MODEL2D, image, method="SegRISE", scheduler=address, range_size=256, **kw
        )
    )
    assert [s.done for s in snaps] == [False] * (len(snaps) - 1) + [True]
    done = [s.n_done for s in snaps]
    assert done == sorted(done) and done[-1] == 900 and len(snaps) >= 2
    assert all(n % 256 == 0 for n in done[:-1])
    _assert_same(snaps[-1], want)


def test_split_on_the_cluster_equals_one_run_3d_and_hdm(address):
    volume = volume3d(1)
    kw = {"n_masks": 600, "grid": 3, "seed": 7, "batch_size": 16, "voxel_spacing": (2, 1, 1)}
    got = explain_split(MODEL3D, volume, method="SegRISE", scheduler=address, n_ranges=3, **kw)
    _assert_same(got, _single(SegRISE, 3, volume, **kw))
    hdm = {"diameter": 3, "stride": 1, "batch_size": 32}
    got = explain_split(MODEL3D, volume, method="HDM", scheduler=address, range_size=128, **hdm)
    want = _single(HDM, 3, volume, sweep="full", **hdm)
    assert want.n_total > 256  # several ranges of centres
    _assert_same(got, want)


@pytest.mark.parametrize(
    ("cls", "dims", "kw", "message"),
    [
        (SegRISE, 2, {"n_masks": 300, "tol": 0.1}, "runs every mask: set tol=None"),
        (PixelRISE, 2, {"n_masks": 300, "merge": "max"}, "cannot be split by masks"),
        (SegRISE, 2, {"n_masks": 300, "slices": "all"}, "explains this volume slice by slice"),
        (HDM, 2, {"diameter": 4, "stride": 1, "sweep": "adaptive"}, "use sweep='full'"),
    ],
)
def test_what_cannot_be_split_says_why(cls, dims, kw, message):
    image = volume3d(0) if "slices" in kw else _image()
    with pytest.raises(ValueError) as err:
        run_range(cls(ThresholdNet(dims)), image, (0, 256), **kw)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="must start at a multiple of 256"):
        run_range(SegRISE(ThresholdNet(2)), _image(), (100, 300), n_masks=300)


def test_a_split_run_without_a_batch_size_uses_the_fixed_split_batch():
    from maskscope.methods._ranges import SPLIT_BATCH

    image, kw = _image(), {"n_masks": 300, "grid": 4, "seed": 4}
    want = _single(SegRISE, 2, image, batch_size=SPLIT_BATCH, **kw)
    assert "batch_size_measured" in _single(SegRISE, 2, image, **kw).params  # measured
    method = SegRISE(ThresholdNet(2))
    with _one_thread():
        results = [run_range(method, image, r, **kw) for r in plan_ranges(300, range_size=256)]
        got = list(iter_merged(method, image, results, **kw))[-1]
    assert [r.batch_size for r in results] == [SPLIT_BATCH, SPLIT_BATCH]
    _assert_same(got, want)
    assert got.params["batch_size_used"] == SPLIT_BATCH


def test_no_model_call_straddles_a_block_of_256_masks():
    from tests.conftest import Spy

    spy = Spy(ThresholdNet(2))
    SegRISE(spy).explain(_image(), n_masks=600, grid=4, batch_size=100)
    assert spy.batch_sizes == [1, 100, 100, 56, 100, 100, 56, 88]  # 1: the unperturbed pass
