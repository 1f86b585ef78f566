"""benchmarks/gpu_detail.py: its quick CPU mode prints every run at N and about 4 N, the
fixed cost and cost per evaluation fitted from them, and a profile of each model."""

from __future__ import annotations

import contextlib
import io

import gpu_detail
import pytest
import torch

from tests.benchmarks.test_gpu import parse_tables


@pytest.fixture(scope="module")
def quick_output() -> str:
    torch.set_num_threads(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gpu_detail.main(["--device", "cpu", "--quick", "--profile-rows", "3"])
    return out.getvalue()


def test_every_method_runs_at_two_sizes_with_the_measured_and_a_fixed_batch(quick_output):
    rows = parse_tables(quick_output)["Runs"]
    assert list(rows[0]) == gpu_detail.HEADER
    for model in ("unet2d", "unet3d"):
        for label in gpu_detail.LABELS:
            for batch in ("measured", "2"):
                mine = [
                    r
                    for r in rows
                    if (r["model"], r["method"], r["batch"]) == (model, label, batch)
                ]
                n = [int(r["evaluations"]) for r in mine]
                assert len(n) == 2 and n[1] > 2 * n[0]  # about 4x the evaluations
                if batch == "2":
                    assert {r["batch kept"] for r in mine} == {"2"}


def test_the_fit_divides_the_cost_per_evaluation_by_the_floor(quick_output):
    fits = parse_tables(quick_output)[
        "Fixed cost and cost per evaluation (from the runs at N and about 4 N)"
    ]
    assert len(fits) == 2 * len(gpu_detail.LABELS) * 2
    for r in fits:
        slope, floor = float(r["ms / evaluation"]), float(r["floor ms / evaluation"])
        if slope >= 0.5 and floor >= 0.5:  # cells keep 2 decimals
            assert float(r["ratio"]) == pytest.approx(slope / floor, abs=0.05 * slope / floor)
    assert quick_output.count("## Profile: ") == 2
    assert "The same map on the GPU" not in quick_output  # only with a GPU
