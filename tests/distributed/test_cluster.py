"""A real LocalCluster of two worker processes explains datasets like one process does."""

from __future__ import annotations

import json
import time

import nibabel as nib
import numpy as np
import pytest
import torch

import distributed
from maskscope import SegRISE
from maskscope.batch import explain_dataset
from maskscope.explanation import Explanation
from maskscope.io import read_image
from tests.conftest import ThresholdNet
from tests.distributed.cases import AFFINE, write_2d, write_3d, write_broken
from tests.distributed.models import loads

SETTINGS = {"n_masks": 24, "grid": 4, "seed": 3, "batch_size": 8}


def _reference(path, spatial_dims: int) -> Explanation:
    """The same case explained by explain() in this process (one torch thread, as workers)."""
    image = read_image(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return SegRISE(ThresholdNet(spatial_dims)).explain(
            image.data, voxel_spacing=image.voxel_spacing, **SETTINGS
        )
    finally:
        torch.set_num_threads(threads)


def test_six_cases_2d_and_3d_equal_single_process_explain(tmp_path, address, load_log):
    images = write_2d(tmp_path / "d2", 3)
    volumes = write_3d(tmp_path / "d3", 3)
    before = len(loads(load_log))
    runs = [
        (tmp_path / "d2", "tests.distributed.models:counted2d", 2, images),
        (tmp_path / "d3", "tests.distributed.models:counted3d", 3, volumes),
    ]
    for folder, spec, dims, paths in runs:
        out = tmp_path / f"out{dims}"
        result = explain_dataset(
            folder, model=spec, out=out, scheduler=address, progress=False, **SETTINGS
        )
        assert sorted(result.computed) == sorted(p.name.split(".")[0] for p in paths)
        assert not result.failed and not result.skipped
        workers = set()
        for path in paths:
            name = path.name.split(".")[0]
            want = _reference(path, dims)
            saved = Explanation.load(out / "explanations" / f"{name}.npz")
            assert np.array_equal(saved.map, want.map), name
            assert np.array_equal(saved.stderr, want.stderr), name
            assert saved.reliability == want.reliability
            fmt = ".nii.gz" if dims == 3 else path.suffix
            written = read_image(out / "maps" / f"{name}{fmt}")
            assert np.array_equal(written.data, want.map.astype(np.float32)), name
            if dims == 3:
                assert np.array_equal(nib.load(out / "maps" / f"{name}.nii.gz").affine, AFFINE)
            record = json.loads((out / "cases" / f"{name}.json").read_text())
            assert record["prediction_voxels"] == int((want.prediction > 0).sum())
            assert record["reliability"] == pytest.approx(want.reliability)
            workers.add(record["worker"])
        assert workers <= {"0", "1"}
    # the model is loaded once per worker and batch, never per case
    new = loads(load_log)[before:]
    assert sorted(k for _, k in new) == ["2d", "2d", "3d", "3d"]
    assert len({p for p, k in new if k == "2d"}) == 2


def test_broken_file_is_reported_and_the_others_go_on(tmp_path, address):
    write_2d(tmp_path / "data", 3)
    write_broken(tmp_path / "data")
    out = tmp_path / "out"
    result = explain_dataset(
        tmp_path / "data",
        model="tests.distributed.models:counted2d",
        out=out,
        scheduler=address,
        retries=1,
        progress=False,
        **SETTINGS,
    )
    assert sorted(result.computed) == ["img00", "img01", "img02"]
    assert list(result.failed) == ["broken"]
    assert result.failed["broken"].startswith("broken.npy: cannot read it as .npy")
    record = json.loads((out / "cases" / "broken.json").read_text())
    # a file that cannot be read fails again on a retry: recorded at once, not retried
    assert record["status"] == "failed" and record["attempts"] == 1
    assert not (out / "maps" / "broken.npy").exists()
    rows = {r["name"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert rows["broken"]["status"] == "failed"
    assert [rows[n]["status"] for n in ("img00", "img01", "img02")] == ["ok"] * 3
    assert "broken,failed," in (out / "summary.csv").read_text()
    again = explain_dataset(
        tmp_path / "data",
        model="tests.distributed.models:counted2d",
        out=out,
        scheduler=address,
        retries=0,
        progress=False,
        **SETTINGS,
    )  # a failed case is not finished: a restart tries it again, alone
    assert again.skipped == ["img00", "img01", "img02"] and not again.computed
    assert list(again.failed) == ["broken"]
    assert json.loads((out / "cases" / "broken.json").read_text())["attempts"] == 1


def test_interrupted_run_restarts_with_the_unfinished_cases_only(tmp_path, address):
    """Stop the run (KeyboardInterrupt) once 3 cases have finished, then start it again.

    Cases on the other worker at that moment may still finish and write a whole result; the
    restart must compute exactly the cases without one, and leave the others untouched.
    """
    write_2d(tmp_path / "data", 6)
    out = tmp_path / "out"
    kwargs = dict(model="tests.distributed.models:slow2d", out=out, scheduler=address)
    finished: list[str] = []

    def stop_after_three(row):
        finished.append(row["name"])
        if len(finished) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explain_dataset(
            tmp_path / "data", progress=False, on_case=stop_after_three, **kwargs, **SETTINGS
        )
    with distributed.Client(address) as client:  # let the cancelled run settle
        while any(client.processing().values()):
            time.sleep(0.05)
    records = sorted(p.stem for p in (out / "cases").glob("*.json"))
    assert 3 <= len(records) <= 5 and set(finished) <= set(records)
    stamps = {n: (out / "cases" / f"{n}.json").stat().st_mtime_ns for n in records}
    again = explain_dataset(tmp_path / "data", progress=False, **kwargs, **SETTINGS)
    names = [f"img{i:02d}" for i in range(6)]
    assert not again.failed
    assert sorted(again.computed) == sorted(set(names) - set(records))
    assert sorted(again.skipped) == records
    assert {n: (out / "cases" / f"{n}.json").stat().st_mtime_ns for n in records} == stamps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"ok": 6, "failed": 0, "pending": 0}


@pytest.mark.slow
def test_the_default_engine_runs_its_own_local_cluster_and_closes_it(tmp_path, capsys):
    import multiprocessing

    write_2d(tmp_path / "data", 2)
    before = set(multiprocessing.active_children())
    result = explain_dataset(
        tmp_path / "data",
        model="tests.cli.threshold_factory:make",
        out=tmp_path / "out",
        n_workers=1,
        **SETTINGS,
    )
    assert sorted(result.computed) == ["img00", "img01"]
    err = capsys.readouterr().err
    assert "maskscope: 1 Dask worker(s); dashboard: http://" in err
    assert "cases: 100%" in err and "2/2" in err
    assert {r["worker"] for r in result.rows} == {"0"}
    assert set(multiprocessing.active_children()) <= before  # the workers are gone


def test_a_model_object_travels_once_and_gives_the_same_maps(tmp_path, address):
    (path,) = write_2d(tmp_path / "data", 1)
    result = explain_dataset(
        tmp_path / "data",
        model=ThresholdNet(2),
        out=tmp_path / "out",
        scheduler=address,
        progress=False,
        **SETTINGS,
    )
    assert result.computed == ["img00"]
    saved = Explanation.load(tmp_path / "out" / "explanations" / "img00.npz")
    assert np.array_equal(saved.map, _reference(path, 2).map)


def test_workers_with_a_gpu_resource_run_one_case_at_a_time(tmp_path):
    """Workers owning GPU=1 with 2 threads each: the cases ask for GPU=1, so never overlap."""
    from tests.distributed import models

    write_2d(tmp_path / "data", 6)
    models.CONCURRENCY.clear()
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=False,
            resources={"GPU": 1},
            dashboard_address=":0",
        ) as lc,
        distributed.Client(lc) as client,
    ):
        result = explain_dataset(
            tmp_path / "data",
            model="tests.distributed.models:concurrent2d",
            out=tmp_path / "out",
            scheduler=client,
            progress=False,
            **SETTINGS,
        )
    assert len(result.computed) == 6
    assert len(models.CONCURRENCY) == 2  # one model per worker
    assert set(models.CONCURRENCY.values()) == {1}
