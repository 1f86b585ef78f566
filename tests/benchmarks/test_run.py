"""benchmarks/run.py's command line, its report and where the report goes."""

from __future__ import annotations

import json

import publish
import pytest
import run
from report import report
from settings import settings


def synthetic_results() -> dict:
    meta = {"date": "2026-12-01 10:00", "mode": "quick", "torch": "2.13.0", "threads": 1}
    meta |= {
        "device": "cpu",
        "cpu": "AMD EPYC, 2 cores",
        "git": "abc1234",
        "settings": settings(True),
    }
    row = {"model": "unet2d", "method": "RISE", "forwards": 201, "wall": 2.2, "floor": 2.0}
    row |= {"ratio": 1.1, "engine_ms_per_mask": 1.0}
    floor = {
        "date": "2026-12-01 10:05 UTC",
        "machine": "AMD EPYC, 2 cores · torch 2.13.0 · 1 torch thread(s) · device cpu",
        "minutes": 1.5,
        "settings": settings(True)["floor"],
        "forwards": {
            "unet2d": {
                "rows": [{"batch": 1, "s_per_image": 0.02}, {"batch": 2, "s_per_image": 0.025}],
                "best": {"batch": 1, "s_per_image": 0.02},
            }
        },
        "methods": [
            {"model": "unet2d", "method": "SegRISE", "forwards": 201, "wall": 4.221}
            | {"s_per_evaluation": 0.021, "floor_s": 0.02, "sweep_floor_s": 0.019, "ratio": 1.05}
            | {"batch_params": {"batch_size_used": 1}},
        ],
        "peers": [
            {"peer": "muppet:SegRISE", "method": "SegRISE", "peer_wall": 6.0}
            | {"peer_evaluations": 201, "peer_over_floor": 6.0 / (201 * 0.02), "wall": 4.221}
            | {"evaluations": 201, "speed_up": 6.0 / 4.221, "bound": 0.95 * 6.0 / (201 * 0.02)}
        ],
    }
    empty = {"side": [], "n_scaling": [], "size": [], "batch": [], "snapshot": [], "early": []}
    err = {"kind": "side", "cfg": {"tool": "captum-rise"}, "error": "ImportError: no rise"}
    return {"meta": meta, "overhead": [row], **empty, "floor": [floor], "errors": [err]}


def test_report_only_rebuilds_the_report_from_results(tmp_path, monkeypatch):
    (tmp_path / "results.json").write_text(json.dumps(synthetic_results()))
    drawn = []
    monkeypatch.setattr(run, "plots", lambda out, peers: drawn.append(out))
    run.main(["--report-only", "--out", str(tmp_path), "--no-docs"])
    md = (tmp_path / "report.md").read_text()
    assert drawn == [tmp_path]
    assert md.startswith("# maskscope benchmarks\n\n2026-12-01 10:00 · quick run")
    assert "| RISE wall ≤ 1.10× floor, 240² U-Net | 1.100× | **pass** |" in md
    assert "| unet2d | RISE | 201 | 2.20 | 2.00 | 1.100 | 1.000 |" in md
    assert "## 6. Default batch and the floor" in md
    assert "| 2D U-Net, 240² | 1 | 20.00 **best** | – |" in md  # results from before host_memory
    method_row = (
        "| 2D U-Net, 240² | SegRISE | 201 | 4.22 | 21.00 | 20.00 | 19.00 | 1.050 | **pass** |"
    )
    assert f"{method_row} batch_size_used 1 |" in md
    # bound 0.95 × 6.0 / (201 × 0.02) = 1.418, speed-up 6.0 / 4.221 = 1.421: passes
    peer_row = "| muppet:SegRISE | SegRISE | 6.00 (201) | 1.49× | 4.22 (201) | 1.42× | 1.42× |"
    assert f"{peer_row} **pass** |" in md
    assert '- `side` {"tool": "captum-rise"}: ImportError: no rise' in md


def test_an_unknown_part_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match=r"--parts: unknown \['sidebyside'\]; parts are \["):
        run.main(["--parts", "overhead,sidebyside", "--out", str(tmp_path), "--max-wait", "0"])


def test_the_report_goes_between_the_docs_markers_one_level_down(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\nintro\n\n{publish.DOCS_START}\nold\n{publish.DOCS_END}\n\n## After\n"
    )
    (tmp_path / "bench-overhead.png").write_bytes(b"png")
    md = report(synthetic_results(), settings(True))
    publish.write_docs(md, tmp_path, docs=docs)
    text = docs.read_text()
    assert "old" not in text and text.endswith(f"{publish.DOCS_END}\n\n## After\n")
    assert "\n### Targets\n" in text and "\n## Targets\n" not in text
    assert "# maskscope benchmarks" not in text
    assert (tmp_path / "images" / "bench-overhead.png").read_bytes() == b"png"


def test_a_section_is_replaced_up_to_the_next_heading_of_its_level(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# T\n\n## A\n\nold a\n\n### A.1\n\nold\n\n## B\n\nb\n")
    publish.write_section(page, "## A", "new a")
    assert page.read_text() == "# T\n\n## A\n\nnew a\n\n## B\n\nb\n"
    publish.write_section(page, "## C", "c")
    assert page.read_text() == "# T\n\n## A\n\nnew a\n\n## B\n\nb\n\n## C\n\nc\n"
