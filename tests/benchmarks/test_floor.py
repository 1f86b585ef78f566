"""benchmarks/floor.py: which runs it starts, and how the ratios and bounds come out of them."""

from __future__ import annotations

from types import SimpleNamespace

import floor
import numpy as np
import pytest
import torch
from settings import settings

IMAGE = np.zeros((1, 8, 8), dtype=np.float32)


class FakeRunner:
    """Answers ``child`` with canned results and records what was asked."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.args = SimpleNamespace(device="cpu", threads=1)
        self.asked: list[tuple[str, dict]] = []
        self.fail = fail

    def child(self, kind, cfg, *, python=None, stubs=False, timeout=None):
        self.asked.append((kind, {**cfg, "python": python, "stubs": stubs}))
        if kind == "forwards":
            times = {1: 0.030, 2: 0.020, 4: 0.025, 8: 0.026, 16: 0.027}
            rows = [{"batch": b, "s_per_image": times.get(b, 0.05)} for b in cfg["batches"]]
            return {"model": cfg["model"], "rows": rows}
        if kind == "default":
            n = 201
            return {"model": cfg["model"], "method": cfg["method"], "forwards": n, "wall": 4.2}
        tool = cfg["tool"]
        if tool in self.fail:
            return None
        wall = {"muppet:SegRISE": 9.0, "maskscope:SegRISE": 3.0}.get(tool, 6.0)
        out = {"tool": tool, "wall": wall, "evaluations": 201}
        return out | ({"floor": 4.0} if cfg.get("floor_batch") else {})


def test_forward_sweep_finds_the_best_batch_and_methods_run_at_it():
    r = FakeRunner()
    res = floor.collect(r, settings(True)["floor"], "/peers/python")
    assert res["forwards"]["unet2d"]["best"] == {"batch": 2, "s_per_image": 0.020}
    defaults = [cfg for kind, cfg in r.asked if kind == "default"]
    assert {(c["model"], c["method"]) for c in defaults} == {
        (m, label) for m in ("unet2d", "unet3d") for label in floor.LABELS
    }
    assert {c["best_batch"] for c in defaults} == {2}
    assert all(m["sweep_floor_s"] == 0.020 for m in res["methods"])


def test_pixelrise_max_rows_can_run_at_their_own_n():
    from report_floor import _max_rows

    r = FakeRunner()
    c = {**settings(True)["floor"], "n_max": 2000, "max_repeats": 1}
    res = floor.collect(r, c, None)
    defaults = {(cfg["model"], cfg["method"]): cfg for kind, cfg in r.asked if kind == "default"}
    for model in ("unet2d", "unet3d"):
        assert (
            defaults[model, "PixelRISE-max"]["n"],
            defaults[model, "PixelRISE-max"]["repeats"],
        ) == (2000, 1)
        assert defaults[model, "RISE"]["n"] == c["n"][model]
        assert defaults[model, "RISE"]["repeats"] == c["repeats"]
    assert res["settings"]["n_max"] == 2000
    assert _max_rows(c) == ", PixelRISE max at N = 2000 (medians of 1)"
    assert _max_rows(settings(True)["floor"]) == ""


def test_peers_bound_is_095_of_the_peer_wall_over_its_own_floor():
    r = FakeRunner()
    res = floor.collect(r, settings(True)["floor"], "/peers/python")
    muppet = next(x for x in res["peers"] if x["peer"] == "muppet:SegRISE")
    assert muppet["speed_up"] == pytest.approx(9.0 / 3.0)
    assert muppet["bound"] == pytest.approx(0.95 * 9.0 / 4.0)
    assert muppet["peer_over_floor"] == pytest.approx(9.0 / 4.0)
    sides = [cfg for kind, cfg in r.asked if kind == "side"]
    # peers at batch 1 with the floor measured at the best batch; maskscope at its default
    for cfg in sides:
        if cfg["tool"].startswith("maskscope:"):
            assert cfg["batch_size"] is None and "floor_batch" not in cfg
        else:
            assert cfg["batch_size"] == 1 and cfg["floor_batch"] == 2
        assert cfg["python"] == "/peers/python"
        assert cfg["stubs"] == (cfg["tool"] in floor.NEEDS_STUBS)
    # three repeats each, peer and maskscope taking turns
    order = [cfg["tool"] for cfg in sides[:4]]
    assert order == ["muppet:SegRISE", "maskscope:SegRISE"] * 2
    assert sum(cfg["tool"] == "interpret-segmentation:RISE" for cfg in sides) == 3


def test_a_peer_that_does_not_run_leaves_its_rows_without_figures():
    r = FakeRunner(fail={"captum-rise"})
    rows = floor.collect(r, settings(True)["floor"], "/peers/python")["peers"]
    captum = [x for x in rows if x["peer"] == "captum-rise"]
    assert captum == [
        {
            "peer": "captum-rise",
            "method": "RISE",
            "speed_up": None,
            "bound": None,
            "note": "did not run",
        }
    ]


def test_without_the_peers_venv_no_peer_runs():
    r = FakeRunner()
    rows = floor.collect(r, settings(True)["floor"], None)["peers"]
    assert not [cfg for kind, cfg in r.asked if kind == "side"]
    assert {x["note"] for x in rows} == {"peers not run"}
    assert len(rows) == sum(len(v) for v in floor.FLOOR_PEERS.values())


def test_the_forward_table_shows_both_malloc_settings_and_the_best_of_either():
    from report_floor import _forwards_table

    rows = [
        {"batch": 1, "host_memory": "system", "s_per_image": 0.030},
        {"batch": 2, "host_memory": "system", "s_per_image": 0.020},
        {"batch": 1, "host_memory": "keep", "s_per_image": 0.012},
        {"batch": 2, "host_memory": "keep", "s_per_image": 0.016},
    ]
    best = min(rows, key=lambda x: x["s_per_image"])
    text = "\n".join(_forwards_table({"forwards": {"unet2d": {"rows": rows, "best": best}}}))
    assert "| 2D U-Net, 240² | 1 | 30.00 | 12.00 **best** |" in text
    assert "| 2D U-Net, 240² | 2 | 20.00 | 16.00 |" in text


def test_the_forward_child_times_each_size_as_is_then_with_memory_kept(monkeypatch):
    from maskscope._engine import host_memory

    calls = []

    class Counter:
        def hold(self):
            calls.append("hold")
            return True

    monkeypatch.setattr(floor, "HOST_MEMORY", Counter())
    monkeypatch.setattr(floor, "model_and_image", lambda *a: (torch.nn.Identity(), IMAGE, None))
    cfg = {"model": "tiny", "device": "cpu", "batches": [1, 2], "images": 4, "repeats": 2}
    res = floor.run_forwards(cfg)
    modes = [(x["batch"], x["host_memory"]) for x in res["rows"]]
    assert modes == [(1, "system"), (2, "system"), (1, "keep"), (2, "keep")]
    assert calls == ["hold"] and host_memory.HOST_MEMORY_MODES == ("keep", "system")
    assert all(len(x["runs"]) == 2 and x["s_per_image"] > 0 for x in res["rows"])
