"""Early stopping checks the reliability at fixed mask counts (``_engine.checks``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import maskscope._engine.weighted_sum as weighted_sum
from maskscope import PixelRISE, SegRISE
from maskscope._engine.checks import is_check, next_check
from tests.conftest import Spy


def test_the_checks_grow_by_an_eighth():
    checks = [100]
    while checks[-1] < 2000:
        checks.append(next_check(checks[-1], 100))
    assert checks[:6] == [100, 113, 128, 144, 162, 183]
    assert all(b - a == -(-a // 8) for a, b in itertools.pairwise(checks))
    assert 20 <= len(checks) <= 30  # about 25 checks from 100 to 2000 masks
    assert [n for n in range(1, checks[-1] + 1) if is_check(n, 100)] == checks
    assert next_check(0, 100) == 100 and next_check(99, 100) == 100
    assert next_check(100, 100) == 113 and next_check(5, 1) == 6  # small counts: +1


def counting_partials(monkeypatch) -> list[int]:
    """The mask counts at which a RISE accumulator's snapshot is computed."""
    seen: list[int] = []
    partial = weighted_sum.WeightedSum.partial

    def recording(self, *args, **kwargs):
        seen.append(int(self.n))
        return partial(self, *args, **kwargs)

    monkeypatch.setattr(weighted_sum.WeightedSum, "partial", recording)
    return seen


def square() -> np.ndarray:
    img = np.zeros((24, 24), np.float32)
    img[6:14, 6:14] = 1.0
    return img


@pytest.mark.parametrize("pipeline", ["off", "on"])
def test_a_run_stops_at_the_same_check_for_any_batch_size(monkeypatch, net2d, pipeline):
    """The reliability is computed at the checks only, and chunks end there: batches of 3,
    20 and 64 stop at the same mask count with the same map."""
    seen = counting_partials(monkeypatch)
    runs = {}
    for batch in (3, 20, 64):
        seen.clear()
        kw = {"n_masks": 4000, "grid": 4, "tol": 0.005, "min_masks": 20, "pipeline": pipeline}
        expl = SegRISE(Spy(net2d)).explain(square(), batch_size=batch, **kw)
        assert expl.stopped_early
        assert seen[:-1] == [n for n in range(20, expl.n_done + 1) if is_check(n, 20)]
        assert len(seen) > 5  # several checks before it stopped
        assert seen[-1] == expl.n_done  # the final snapshot
        runs[batch] = expl
    assert len({e.n_done for e in runs.values()}) == 1
    for expl in runs.values():
        np.testing.assert_allclose(expl.map, runs[3].map, rtol=0, atol=1e-6)


def test_pixelrise_max_checks_as_few_times(net2d):
    """The max merge's checks (a max over the segment's pixels each) come at the same counts."""
    kw = {"n_masks": 3000, "grid": 4, "tol": 0.05, "min_masks": 40, "merge": "max"}
    a = PixelRISE(net2d).explain(square(), batch_size=4, **kw)
    b = PixelRISE(net2d).explain(square(), batch_size=32, **kw)
    assert a.stopped_early and a.n_done == b.n_done and is_check(a.n_done, 40)
    np.testing.assert_allclose(a.map, b.map, rtol=0, atol=1e-6)
