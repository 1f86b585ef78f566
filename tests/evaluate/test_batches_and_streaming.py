"""Batch-size invariance, exact model-call counts, streaming and cancellation."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
import torch

from maskscope.evaluate import faithfulness, iter_deletion, iter_faithfulness, random_orders
from tests.conftest import Spy
from tests.evaluate.cases import image2d, image3d, saliency_for
from tests.evaluate.reference import BoxNet, min_margin

STEPS = 9


def run(batch_size, image=None, dims=2, **kw):
    image = image2d() if image is None else image
    spy = Spy(BoxNet(dims))
    kw = {"steps": STEPS, "n_random": 2, "substrate": "blur", **kw}
    sal = saliency_for(image.shape)
    return faithfulness(sal, model=spy, image=image, batch_size=batch_size, **kw), spy


@pytest.mark.parametrize("dims", [2, 3])
def test_curves_do_not_depend_on_the_batch_size(dims):
    image = image2d() if dims == 2 else image3d()
    sal, orders = saliency_for(image.shape), [None, *random_orders(image.size, 2, 0)]
    for kind, order in itertools.product(("deletion", "insertion"), orders):
        assert min_margin(image, sal, kind, STEPS, "blur", order) > 1e-4  # no near-tie
    results = [run(b, image, dims)[0] for b in (1, 3, STEPS + 1, 64)]
    first = results[0]
    for res in results[1:]:
        for name, curve in first.curves().items():
            other = res.curves()[name]
            # hard Dice counts are exact; probabilities may differ in float32's last bits
            # between batched and single-image convolutions
            np.testing.assert_array_equal(other.runs["dice"], curve.runs["dice"])
            np.testing.assert_allclose(other.runs["probability"], curve.runs["probability"], 1e-6)
            np.testing.assert_array_equal(other.fractions, curve.fractions)


@pytest.mark.parametrize("batch_size", [1, 4, 10, 32])
def test_model_calls_are_counted_exactly(batch_size):
    res, spy = run(batch_size, n_random=2)
    per_order = STEPS + 1
    n_orders = 2 * (1 + 2)  # deletion and insertion; the map's order and 2 random ones
    assert spy.images == 1 + n_orders * per_order
    assert res.n_forward == spy.images
    batches = [min(batch_size, per_order - s) for s in range(0, per_order, batch_size)]
    assert spy.batch_sizes == [1] + batches * n_orders
    assert spy.calls == 1 + n_orders * math.ceil(per_order / batch_size)


def test_only_the_asked_curves_run():
    res, spy = run(4, n_random=0, kinds="insertion")
    assert spy.images == 1 + STEPS + 1
    assert res.deletion is None and res.random_insertion is None and res.insertion.done


def test_snapshots_stream_after_every_model_call():
    spy = Spy(BoxNet(2))
    image = image2d()
    gen = iter_faithfulness(
        saliency_for(image.shape), model=spy, image=image, steps=STEPS, n_random=1, batch_size=4
    )
    assert spy.calls == 1  # the unperturbed pass runs when the inputs are checked
    snaps = []
    for snap in gen:
        snaps.append(snap)
        assert snap.n_forward == spy.images
    per_curve = math.ceil((STEPS + 1) / 4)
    assert len(snaps) == 4 * per_curve + 1  # one per model call, then the final one
    assert [s.done for s in snaps].count(True) == 1 and snaps[-1].done
    first = snaps[0].deletion
    assert first.n_done == 4 and not first.done
    assert np.isfinite(first.scores("dice")[:4]).all() and np.isnan(first.scores("dice")[4:]).all()
    assert np.isnan(first.auc("dice"))
    # snapshots own their arrays: later ones never change an earlier one
    assert np.isnan(snaps[0].deletion.runs["dice"][0, 4:]).all()
    done = [sum(c.n_done for c in s.curves().values()) for s in snaps]
    assert done == sorted(done)


def test_closing_the_generator_stops_the_model_calls():
    spy = Spy(BoxNet(2))
    image = image2d()
    gen = iter_deletion(
        saliency_for(image.shape), model=spy, image=image, steps=STEPS, batch_size=3
    )
    curve = next(gen)
    calls = spy.calls
    assert calls == 2 and curve.n_done == 3
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert spy.calls == calls


def test_cancel_event_stops_before_the_next_model_call():
    spy = Spy(BoxNet(2))
    stop = threading.Event()
    image = image2d()
    gen = iter_faithfulness(
        saliency_for(image.shape), model=spy, image=image, steps=STEPS, batch_size=2, cancel=stop
    )
    snaps = [next(gen)]
    stop.set()
    snaps += list(gen)
    assert len(snaps) == 1 and not snaps[-1].done
    assert spy.calls == 2


def test_cancel_callable_and_the_draining_function():
    spy = Spy(BoxNet(2))
    image = image2d()
    calls = []

    def cancel() -> bool:
        calls.append(spy.calls)
        return len(calls) > 3

    res = faithfulness(
        saliency_for(image.shape), model=spy, image=image, steps=STEPS, batch_size=5, cancel=cancel
    )
    assert not res.done and spy.calls == 4  # the unperturbed pass and three batches
    assert res.deletion.done and res.insertion.n_done == 5
    assert np.isnan(res.auc("insertion"))
    nothing = faithfulness(
        saliency_for(image.shape), model=spy, image=image, steps=STEPS, cancel=lambda: True
    )
    assert nothing.deletion.n_done == 0 and nothing.n_forward == 1 and not nothing.done


class OutOfMemoryAbove(torch.nn.Module):
    """Raises a CUDA-style out-of-memory error for batches larger than ``limit``."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit = model, limit
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.model(x)


def test_out_of_memory_halves_the_batch_and_keeps_the_curves():
    want, _ = run(3, n_random=1)
    spy = Spy(OutOfMemoryAbove(BoxNet(2), limit=3))
    image = image2d()
    with pytest.warns(RuntimeWarning, match="out of memory with a batch of 8; continuing with "
                      "batches of 4"):  # fmt: skip
        with pytest.warns(RuntimeWarning, match="batch of 4; continuing with batches of 2"):
            got = faithfulness(
                saliency_for(image.shape), model=spy, image=image, batch_size=8, steps=STEPS,
                n_random=1, substrate="blur",
            )  # fmt: skip
    for name, curve in want.curves().items():
        np.testing.assert_array_equal(got.curves()[name].runs["dice"], curve.runs["dice"])
    # the two failed tries, then every curve (4 × 10 steps) in batches of 2
    assert spy.batch_sizes == [1, 8, 4] + [2] * 20
    assert got.n_forward == 1 + 4 * (STEPS + 1)  # the runner counts what came back
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        faithfulness(
            saliency_for(image.shape), model=OutOfMemoryAbove(BoxNet(2), limit=0), image=image
        )
