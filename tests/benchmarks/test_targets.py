"""benchmarks/targets.py: the targets table reads results.json and judges each figure."""

from __future__ import annotations

import targets
from targets import TARGETS, Target, check_rows


def results(**parts) -> dict:
    empty = {"overhead": [], "side": [], "n_scaling": [], "size": [], "batch": []}
    return {**empty, "snapshot": [], "early": [], "errors": [], "meta": {}, **parts}


def overhead(model, method, ratio, ms=0.1, segment=None):
    row = {"model": model, "method": method, "ratio": ratio, "engine_ms_per_mask": ms}
    return row if segment is None else {**row, "segment_px": segment}


def side(tool, model, wall, peak):
    return {"tool": tool, "model": model, "wall": wall, "peak_mb": peak, "growth_mb": 1.0}


def test_every_target_names_a_figure_a_comparison_and_its_issue():
    assert TARGETS
    for t in TARGETS:
        assert t.figure in targets.FIGURES
        assert t.comparison in targets.COMPARE
        assert t.issue in (7, 17)


def test_overhead_targets_use_the_method_bound_and_fail_above_it():
    res = results(
        overhead=[
            overhead("unet2d", "RISE", 1.12),
            overhead("unet2d", "PixelRISE-max", 1.2, segment=1294),
            overhead("unet3d", "HDM", 1.25),
        ]
    )
    assert check_rows(res) == [
        ["RISE wall ≤ 1.10× floor, 240² U-Net", "1.120×", "**FAIL**"],
        ["PixelRISE-max wall ≤ 1.25× floor, 240² U-Net (segment 1294 px)", "1.200×", "**pass**"],
        ["HDM wall ≤ 1.25× floor, 64×96×96 U-Net", "1.250×", "**pass**"],
    ]


def test_engine_cost_targets_read_the_near_free_model_rows():
    res = results(overhead=[overhead("1x1", "SegRISE", 3.0, 0.6), overhead("1x1", "HDM", 9, 1.9)])
    assert check_rows(res) == [
        ["SegRISE engine ≤ 0.5 ms/mask (1×1 model, 240²)", "0.600 ms", "**FAIL**"],
        ["HDM engine ≤ 2.0 ms/mask (1×1 model, 240²)", "1.900 ms", "**pass**"],
    ]


def test_peer_targets_take_medians_and_say_when_the_peer_did_not_run():
    res = results(
        side=[
            side("maskscope:SegRISE", "unet2d", 2.0, 300),
            side("maskscope:SegRISE", "unet2d", 4.0, 320),
            side("maskscope:SegRISE", "unet2d", 3.0, 310),
            side("muppet:SegRISE", "unet2d", 9.3, 900),
            side("maskscope:HDM", "unet2d", 1.0, 400),
        ]
    )
    assert check_rows(res) == [
        ["≥ 3× faster than muppet:SegRISE (SegRISE, unet2d)", "3.10×", "**pass**"],
        ["≥ 2× faster than interpret-segmentation:HDM (unet2d)", "peer did not run", "–"],
        [
            "lower peak RSS than muppet:SegRISE (SegRISE batched, unet2d)",
            "310 vs 900 MB",
            "**pass**",
        ],
    ]


def test_memory_snapshot_and_volume_targets():
    res = results(
        n_scaling=[
            {"method": "SegRISE", "n": 500, "peak_mb": 300.0},
            {"method": "SegRISE", "n": 8000, "peak_mb": 340.0},
        ],
        size=[{"size": 128, "batch_size": 2, "peak_mb": 700.0, "target_check": True}],
        snapshot=[
            {
                "method": "HDM",
                "model": "unet3d",
                "batch_size": 2,
                "first_n_done": 4,
                "first_s": 0.5,
                "one_chunk_floor_s": 0.2,
            }
        ],
    )
    assert check_rows(res) == [
        [
            "SegRISE peak RSS flat in N (8000 / 500 ≤ 1.10, 1×1 model)",
            "340 / 300 MB = 1.133",
            "**FAIL**",
        ],
        ["SegRISE on 128³ with the 3D U-Net < 2 GB (batch 2)", "700 MB peak RSS", "**pass**"],
        [
            "first snapshot after ≤ 1 chunk: HDM (unet3d, batch 2)",
            "4 masks, 0.50 s (1 chunk: 0.20 s)",
            "**FAIL**",
        ],
    ]


def test_floor_targets_of_issue_17():
    floor = {
        "methods": [
            {"model": "unet2d", "method": "RISE", "ratio": 1.04},
            {"model": "unet3d", "method": "HDM", "ratio": 1.30},
        ],
        "peers": [
            {"peer": "captum-rise", "method": "RISE", "speed_up": 1.2, "bound": 1.5},
            {"peer": "muppet:SegRISE", "method": "SegRISE", "speed_up": None, "bound": None},
        ],
    }
    rows = check_rows(results(floor=[floor]))
    assert rows == [
        [
            "RISE at default settings ≤ 1.05× the best batch's forward, 240² U-Net",
            "1.040×",
            "**pass**",
        ],
        [
            "HDM at default settings ≤ 1.05× the best batch's forward, 64×96×96 U-Net",
            "1.300×",
            "**FAIL**",
        ],
        [
            "RISE vs captum-rise: speed-up ≥ 0.95 × (peer wall ÷ best-batch floor)",
            "1.20× (bound 1.50×)",
            "**FAIL**",
        ],
        [
            "SegRISE vs muppet:SegRISE: speed-up ≥ 0.95 × (peer wall ÷ best-batch floor)",
            "did not run",
            "–",
        ],
    ]


def test_a_custom_table_row_is_checked_with_its_own_comparison():
    row = Target(
        "{method} engine under {bound} ms", "engine ms per mask", "<", 0.2, 7, {"method": "RISE"}
    )
    res = results(overhead=[overhead("1x1", "RISE", 2.0, 0.2)])
    assert check_rows(res, [row]) == [["RISE engine under 0.2 ms", "0.200 ms", "**FAIL**"]]
