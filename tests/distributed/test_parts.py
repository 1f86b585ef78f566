"""``num_parts`` / ``part_id``: every K-th case in this process, resumable, without Dask."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskscope import SegRISE
from maskscope.batch import explain_dataset, load_cases
from maskscope.explanation import Explanation
from maskscope.io import read_image
from tests.conftest import ThresholdNet
from tests.distributed.cases import write_2d, write_broken

SETTINGS = {"n_masks": 16, "grid": 4, "seed": 1, "batch_size": 8}
MODEL = "tests.cli.threshold_factory:make"


def _run(data, out, **kw):
    kw = {"model": MODEL, "out": out, "num_parts": 1, "part_id": 0, "progress": False, **kw}
    return explain_dataset(data, **{**SETTINGS, **kw})


def test_two_parts_share_the_cases_and_give_explains_maps(tmp_path):
    paths = write_2d(tmp_path / "data", 5)
    out = tmp_path / "out"
    names = [p.stem for p in paths]
    first = _run(tmp_path / "data", out, num_parts=2, part_id=0)
    assert first.computed == names[0::2]
    mid = json.loads((out / "summary.json").read_text())["counts"]
    assert mid == {"ok": 3, "failed": 0, "pending": 2}
    second = _run(tmp_path / "data", out, num_parts=2, part_id=1)
    assert second.computed == names[1::2]
    assert second.summary["counts"] == {"ok": 5, "failed": 0, "pending": 0}
    for path in paths:
        record = json.loads((out / "cases" / f"{path.stem}.json").read_text())
        assert record["worker"] == f"part {names.index(path.stem) % 2}/2"
        want = SegRISE(ThresholdNet(2)).explain(read_image(path).data, **SETTINGS)
        got = Explanation.load(out / "explanations" / f"{path.stem}.npz")
        assert np.array_equal(got.map, want.map)


def test_interrupted_after_three_cases_the_restart_computes_the_other_three(tmp_path):
    write_2d(tmp_path / "data", 6)
    out = tmp_path / "out"
    seen: list[str] = []

    def stop_after_three(row):
        seen.append(row["name"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "data", out, on_case=stop_after_three)
    assert sorted(p.stem for p in (out / "cases").glob("*.json")) == seen
    assert json.loads((out / "summary.json").read_text())["counts"]["pending"] == 3
    again = _run(tmp_path / "data", out)
    assert again.skipped == seen
    assert again.computed == ["img03", "img04", "img05"]
    assert not list(out.rglob(".tmp-*"))


def test_the_summary_is_written_while_the_batch_runs(tmp_path, monkeypatch):
    """A run killed outright (no ``finally``) leaves a summary of what it had finished."""
    from maskscope.batch import api

    write_2d(tmp_path / "data", 4)
    counts = []

    def run(out):
        def read_summary(row):
            counts.append(json.loads((out / "summary.json").read_text())["counts"])

        counts.clear()
        _run(tmp_path / "data", out, on_case=read_summary)
        return [c["ok"] for c in counts]

    monkeypatch.setattr(api, "SUMMARY_EVERY_S", 1e9)
    assert run(tmp_path / "a") == [1, 1, 1, 1]  # after the first case, then not so soon
    assert counts[0] == {"ok": 1, "failed": 0, "pending": 3}
    monkeypatch.setattr(api, "SUMMARY_EVERY_S", -1.0)
    assert run(tmp_path / "b") == [1, 2, 3, 4]


def test_a_restart_with_other_settings_is_refused_unless_overwrite(tmp_path):
    write_2d(tmp_path / "data", 2)
    out = tmp_path / "out"
    _run(tmp_path / "data", out)
    with pytest.raises(ValueError, match=r"holds results made with other settings \(n_masks "):
        _run(tmp_path / "data", out, n_masks=8)
    again = _run(tmp_path / "data", out, n_masks=8, overwrite=True)
    assert again.computed == ["img00", "img01"] and not again.skipped
    assert Explanation.load(out / "explanations" / "img00.npz").n_done == 8


def test_a_failing_model_is_retried_then_recorded_and_every_case_reported(tmp_path):
    write_2d(tmp_path / "data", 2)
    write_broken(tmp_path / "data")
    out = tmp_path / "out"
    result = _run(tmp_path / "data", out, model="tests.cli.model_factories:raising", retries=2)
    assert not result.computed
    assert sorted(result.failed) == ["broken", "img00", "img01"]
    assert "the weights are corrupt" in result.failed["img00"]
    record = json.loads((out / "cases" / "img00.json").read_text())
    assert record["status"] == "failed" and record["attempts"] == 3
    broken = json.loads((out / "cases" / "broken.json").read_text())
    assert broken["attempts"] == 1  # an unreadable file fails again: no retries
    assert not list((out / "maps").iterdir())


def test_an_roi_column_is_passed_to_explain(tmp_path):
    (path,) = write_2d(tmp_path / "data", 1)
    roi = np.zeros((16, 16), bool)
    roi[3:7, 4:11] = True  # the upper part of img00's rectangle
    np.save(tmp_path / "roi.npy", roi)
    (tmp_path / "list.csv").write_text(f"image,roi\n{path},{tmp_path / 'roi.npy'}\n")
    result = _run(tmp_path / "list.csv", tmp_path / "out")
    assert not result.failed
    want = SegRISE(ThresholdNet(2)).explain(np.load(path), roi=roi, **SETTINGS)
    whole = SegRISE(ThresholdNet(2)).explain(np.load(path), **SETTINGS)
    got = Explanation.load(tmp_path / "out" / "explanations" / "img00.npz")
    assert np.array_equal(got.map, want.map) and not np.array_equal(got.map, whole.map)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"method": "gradcam"}, ValueError, "method must be one of RISE, PixelRISE, SegRISE"),
        ({"n_mask": 3}, TypeError, "unknown field(s) n_mask for SegRISE"),
        ({"num_parts": 2, "part_id": None}, ValueError, "--num-parts and --part-id go together"),
        ({"num_parts": 2, "part_id": 2}, ValueError, "--part-id must be in [0, 1]"),
        ({"retries": -1}, ValueError, "retries must be an integer >= 0, got -1"),
        ({"map_format": ".png"}, ValueError, "map_format must be one of .npy"),
    ],
)
def test_bad_settings_are_refused_before_any_case(tmp_path, kwargs, error, message):
    write_2d(tmp_path / "data", 1)
    with pytest.raises(error) as err:
        _run(tmp_path / "data", tmp_path / "out", **kwargs)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_record_placed_in_the_output_folder_does_not_finish_a_case(tmp_path):
    """Only a record as the store writes it (its name, image and files) skips a case; text
    cells that a spreadsheet would run as formulas are quoted in summary.csv."""
    write_2d(tmp_path / "data", 2)
    out = tmp_path / "out"
    (out / "cases").mkdir(parents=True)
    (out / "maps").mkdir()
    (out / "explanations").mkdir()
    outside = tmp_path / "elsewhere.npy"
    np.save(outside, np.zeros(3))
    planted = {
        "img00": {"map": str(outside), "explanation": str(outside)},  # files from elsewhere
        "img01": {  # the right files, another image
            "map": "maps/img01.tif",
            "explanation": "explanations/img01.npz",
            "image": "/somewhere/else.tif",
        },
    }
    (out / "maps" / "img01.tif").write_bytes(b"x")
    (out / "explanations" / "img01.npz").write_bytes(b"x")
    for name, files in planted.items():
        record = {"name": name, "status": "ok", "reliability": 0.99, **files}
        (out / "cases" / f"{name}.json").write_text(json.dumps(record))
    result = _run(tmp_path / "data", out, on_case=lambda row: None)
    assert result.computed == ["img00", "img01"] and result.skipped == []
    assert json.loads((out / "cases" / "img00.json").read_text())["map"] == "maps/img00.npy"
    again = _run(tmp_path / "data", out)
    assert again.skipped == ["img00", "img01"]  # the records it wrote itself
    # another case's files do not finish a case whose name they start with
    from maskscope.batch.store import BatchStore

    store = BatchStore(out)
    record = json.loads((out / "cases" / "img00.json").read_text())
    (out / "cases" / "img0.json").write_text(json.dumps({**record, "name": "img0"}))
    assert store.is_finished("img00") and not store.is_finished("img0")


def test_summary_csv_quotes_text_a_spreadsheet_would_run(tmp_path):
    import csv

    from maskscope.batch.store import BatchStore

    (tmp_path / "data").mkdir()
    write_broken(tmp_path / "data")
    out = tmp_path / "out"
    store = BatchStore(out)
    (case,) = load_cases(tmp_path / "data")
    store.failure(case, '=HYPERLINK("http://x")', attempts=1)
    store.write_summary([case], {})
    (row,) = csv.DictReader((out / "summary.csv").open())
    assert row["error"] == '\'=HYPERLINK("http://x")'
    assert json.loads((out / "summary.json").read_text())["cases"][0]["error"].startswith("=")
