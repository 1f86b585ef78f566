"""benchmarks/gpu.py: its quick CPU mode prints both tables in full, and the sweep stops on
out-of-memory and at the time budget."""

from __future__ import annotations

import contextlib
import io
import math

import gpu
import pytest
import torch


def parse_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Markdown tables under each ``## `` heading: a list of {column: cell} rows."""
    tables, heading, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading, header = line[3:].strip(), None
            tables[heading] = []
        elif line.startswith("|") and heading is not None:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(line) <= set("|-: "):
                tables[heading].append(dict(zip(header, cells, strict=True)))
    return tables


@pytest.fixture(scope="module")
def quick_tables() -> dict[str, list[dict[str, str]]]:
    torch.set_num_threads(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gpu.main(["--device", "cpu", "--quick"])
    return parse_tables(out.getvalue())


def test_throughput_table_has_every_model_precision_and_batch(quick_tables):
    rows = quick_tables["Throughput"]
    assert list(rows[0]) == gpu.THROUGHPUT_HEADER
    seen = {(r["model"], r["precision"], r["compiled"], r["batch"]) for r in rows}
    expected = {
        (m, p, "no", str(b))
        for m in ("unet2d", "unet3d")
        for p in ("float32", "tf32", "bf16")
        for b in (1, 2)
    }
    assert seen == expected and len(rows) == len(expected)
    for r in rows:
        rate, ms = float(r["images/s"]), float(r["ms / image"])
        assert rate > 0
        assert ms == pytest.approx(1000 / rate, rel=0.02, abs=0.01)
        assert r["peak memory (MB)"] == "–"  # no GPU memory on a CPU


def test_methods_table_compares_every_method_with_n_over_best_throughput(quick_tables):
    rows = quick_tables["Methods at default settings vs N ÷ best throughput"]
    assert list(rows[0]) == gpu.METHODS_HEADER
    variants = gpu.method_variants(gpu.parse_args(["--device", "cpu", "--quick"]))
    assert variants[0] == ("float32", False) and ("bf16", True) not in variants  # no compile
    assert [(r["model"], r["precision"], r["compiled"], r["method"]) for r in rows] == [
        (m, p, "no", label)
        for p, _ in variants
        for m in ("unet2d", "unet3d")
        for label in gpu.LABELS
    ]
    best: dict[tuple[str, str], float] = {}
    for r in quick_tables["Throughput"]:
        key = (r["model"], r["precision"])
        best[key] = max(best.get(key, 0.0), float(r["images/s"]))
    for r in rows:
        n = int(r["evaluations"])
        # quick sizes: N = 8 (2D) / 4 (3D) masks + the unperturbed pass; HDM: its centres + 1
        if r["method"] != "HDM":
            assert n == (9 if r["model"] == "unet2d" else 5)
        same = best[(r["model"], r["precision"])]
        any_variant = max(v for (m, _), v in best.items() if m == r["model"])
        assert float(r["floor (s)"]) == pytest.approx(n / same, abs=0.006)
        assert float(r["floor, best variant (s)"]) == pytest.approx(n / any_variant, abs=0.006)
        wall, floor = float(r["wall (s)"]), float(r["floor (s)"])
        if floor >= 0.05:  # the ratio comes from unrounded figures; cells keep 2 decimals
            low, high = max(wall - 0.005, 0.0) / (floor + 0.005), (wall + 0.005) / (floor - 0.005)
            assert low - 0.005 <= float(r["ratio"]) <= high + 0.005


def test_sweep_stops_at_the_first_out_of_memory(monkeypatch):
    calls = []

    def fake_rate(model, x, precision, min_s, calls_=3):
        calls.append(x.shape[0])
        if x.shape[0] >= 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return 100.0 * x.shape[0]

    monkeypatch.setattr(gpu, "images_per_s", fake_rate)
    args = gpu.parse_args(["--device", "cpu", "--max-batch", "64"])
    image = torch.zeros(1, 8, 8).numpy()
    points = gpu.sweep("unet2d", None, image, "float32", False, [1, 2, 4, 8, 16], args, math.inf)
    assert calls == [1, 2, 4]
    assert [(p.batch, p.images_s, p.note) for p in points] == [
        (1, 100.0, ""),
        (2, 200.0, ""),
        (4, None, "out of memory"),
    ]


def test_sweep_reraises_errors_that_are_not_out_of_memory(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(gpu, "images_per_s", broken)
    args = gpu.parse_args(["--device", "cpu"])
    with pytest.raises(RuntimeError, match="shape mismatch"):
        gpu.sweep("unet2d", None, torch.zeros(1, 8, 8).numpy(), "bf16", False, [1], args, math.inf)


def test_sweep_skips_what_does_not_fit_in_the_budget(monkeypatch):
    monkeypatch.setattr(gpu, "images_per_s", lambda *a, **k: pytest.fail("ran past the budget"))
    args = gpu.parse_args(["--device", "cpu"])
    points = gpu.sweep(
        "unet3d", None, torch.zeros(1, 8, 8, 8).numpy(), "bf16", True, [1, 4], args, 0.0
    )
    assert [(p.batch, p.compiled, p.images_s, p.note) for p in points] == [
        (1, True, None, "skipped (budget)"),
        (4, True, None, "skipped (budget)"),
    ]


def test_batch_sizes_are_powers_of_two_up_to_the_limit():
    args = gpu.parse_args(["--device", "cpu"])
    assert gpu.batches_of(args) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert gpu.parse_args(["--device", "cpu"]).compile is False
    assert gpu.parse_args(["--device", "cpu", "--compile"]).compile is True


def test_compiled_sweeps_take_the_best_eager_size_and_half_of_it():
    points = [
        gpu.Point("unet2d", "bf16", False, 1, 10.0, None),
        gpu.Point("unet2d", "bf16", False, 2, 30.0, None),
        gpu.Point("unet2d", "bf16", False, 4, 20.0, None),
        gpu.Point("unet2d", "float32", False, 8, 90.0, None),  # another precision
        gpu.Point("unet3d", "bf16", False, 64, 99.0, None),  # another model
        gpu.Point("unet2d", "bf16", True, 16, 500.0, None),  # compiled already
    ]
    assert gpu.compiled_batches(points, "unet2d", "bf16") == [1, 2]
    assert gpu.compiled_batches(points, "unet2d", "float32") == [4, 8]
    points[0] = gpu.Point("unet2d", "bf16", False, 1, 40.0, None)
    assert gpu.compiled_batches(points, "unet2d", "bf16") == [1]
    assert gpu.compiled_batches(points, "unet3d", "float32") == []


def test_method_runs_past_the_budget_are_listed_as_skipped(monkeypatch):
    monkeypatch.setattr(gpu, "_one_run", lambda *a, **k: pytest.fail("ran past the budget"))
    args = gpu.parse_args(["--device", "cpu", "--quick"])
    models = {"unet2d": (None, torch.zeros(1, 8, 8).numpy())}
    rows = gpu.methods(args, models, [], deadline=0.0)
    assert [r[:5] for r in rows] == [
        ["unet2d", label, p, "no", "skipped (budget)"]
        for p, _ in gpu.method_variants(args)
        for label in gpu.LABELS
    ]
    assert all(len(r) == len(gpu.METHODS_HEADER) for r in rows)
