"""benchmarks/pipeline.py: its child runs both settings to one map, and its table's ratios."""

from __future__ import annotations

import pipeline as bench
import pytest
import torch


@pytest.mark.parametrize("method", ["SegRISE", "HDM"])
def test_the_child_gives_one_map_with_the_pipeline_off_and_on(method, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the suite's threads stay
    cfg = {"model": "1x1", "method": method, "n": 24, "stride": 60.0, "batch": 4, "threads": 1}
    off = bench.child({**cfg, "pipeline": "off"})
    on = bench.child({**cfg, "pipeline": "on"})
    assert off["digest"] == on["digest"]
    assert off["n"] == on["n"] > 1
    assert min(off["wall"], on["wall"], off["floor"], on["floor"]) > 0


def run(wall: float, digest: str = "a") -> dict:
    return {"wall": wall, "floor": 1.0, "n": 100, "digest": digest}


def test_the_table_gives_the_ratios_and_flags_a_map_that_differs():
    same = {"off": [run(2.0), run(2.2), run(1.8)], "on": [run(1.5), run(1.1), run(1.8)]}
    differs = {"off": [run(2.0)], "on": [run(2.0, "b")]}
    failed = {"off": [run(2.0)], "on": [{"error": "RuntimeError: boom"}]}
    rows = [("unet2d", "RISE", same), ("unet2d", "HDM", differs), ("unet3d", "RISE", failed)]
    lines = bench.table(rows)
    rise, hdm, broken = lines[2], lines[3], lines[4]
    # medians per evaluation: off 20 ms, on 15 ms, floor 10 ms; paired on/off: 0.5, 0.75, 1
    assert "| 20.00 | 15.00 | 10.00 | 2.000 | 1.500 | 0.750 | yes |" in rise
    assert hdm.endswith("| **NO** |")
    assert "error: RuntimeError: boom" in broken
