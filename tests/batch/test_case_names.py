"""Case names: one image may be several named cases; files alike in name are told apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskscope import SegRISE, faithfulness
from maskscope.batch import Case, explain_dataset, load_cases
from maskscope.batch.store import BatchStore
from maskscope.explanation import Explanation
from tests.conftest import ThresholdNet
from tests.distributed.cases import image2d

SETTINGS = {"n_masks": 16, "grid": 4, "seed": 1, "batch_size": 8}
MODEL = "tests.cli.threshold_factory:make"


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def _refusal(inputs) -> str:
    with pytest.raises(ValueError) as err:
        load_cases(inputs)
    return str(err.value)


def test_one_image_with_two_csv_names_is_two_cases(tmp_path):
    _touch(tmp_path / "anatomical.nii", tmp_path / "anat_label.nii.gz")
    (tmp_path / "list.csv").write_text(
        "image,roi,name\nanatomical.nii,,whole\nanatomical.nii,anat_label.nii.gz,lesion\n"
    )
    image = tmp_path / "anatomical.nii"
    assert load_cases(tmp_path / "list.csv") == [
        Case("whole", image),
        Case("lesion", image, None, tmp_path / "anat_label.nii.gz"),
    ]


def test_one_image_twice_with_one_csv_name_keeps_its_own_name_for_the_other(tmp_path):
    _touch(tmp_path / "anatomical.nii", tmp_path / "roi.nii")
    (tmp_path / "list.csv").write_text(
        "image,roi,name\nanatomical.nii,,\nanatomical.nii,roi.nii,lesion\n"
    )
    assert [c.name for c in load_cases(tmp_path / "list.csv")] == ["anatomical", "lesion"]


@pytest.mark.parametrize(
    ("rows", "name"),
    [
        ("anatomical.nii,,\nanatomical.nii,roi.nii,\n", "anatomical"),
        ("anatomical.nii,,same\nanatomical.nii,roi.nii,same\n", "same"),
    ],
)
def test_one_image_twice_without_distinct_names_is_refused_as_a_name_clash(tmp_path, rows, name):
    _touch(tmp_path / "anatomical.nii", tmp_path / "roi.nii")
    (tmp_path / "list.csv").write_text(f"image,roi,name\n{rows}")
    message = _refusal(tmp_path / "list.csv")
    assert "the case names clash" in message
    assert f"anatomical.nii is listed twice, both times as {name!r}" in message
    assert "a CSV 'name' column" in message


def test_one_stem_twice_in_a_folder_keeps_the_suffixes_in_two_folders_the_folders(tmp_path):
    _touch(tmp_path / "coins.png", tmp_path / "coins.jpg", tmp_path / "other.npy")
    cases = load_cases(tmp_path)
    assert [c.name for c in cases] == ["coins_jpg", "coins_png", "other"]
    assert cases[1].image == tmp_path / "coins.png"
    _touch(tmp_path / "sub-01" / "coins.png", tmp_path / "sub-02" / "coins.jpg")
    names = [c.name for c in load_cases(str(tmp_path / "sub-*" / "coins.*"))]
    assert names == ["sub-01_coins", "sub-02_coins"]


def test_files_whose_names_stay_alike_are_refused_naming_both(tmp_path):
    _touch(tmp_path / "coins.png", tmp_path / "coins.jpg", tmp_path / "coins_png.npy")
    message = _refusal(tmp_path)
    assert "listed twice" not in message
    assert f"the case names of {tmp_path / 'coins.png'} and {tmp_path / 'coins_png.npy'}" in message
    assert "clash (both 'coins_png'); rename one of the files" in message
    assert "a CSV with a 'name' column" in message


def test_the_cases_of_one_image_have_their_own_output_files(tmp_path):
    _touch(tmp_path / "anatomical.nii", tmp_path / "roi.nii")
    (tmp_path / "list.csv").write_text(
        "image,roi,name\nanatomical.nii,,whole\nanatomical.nii,roi.nii,lesion\n"
    )
    store = BatchStore(tmp_path / "out")
    paths = [
        (store.map_path(c.name, ".nii"), store.explanation_path(c.name), store.record_path(c.name))
        for c in load_cases(tmp_path / "list.csv")
    ]
    assert len({p for triple in paths for p in triple}) == 6


def test_a_batch_explains_one_image_whole_and_in_its_roi_side_by_side(tmp_path):
    image = np.pad(image2d(0), ((0, 32), (0, 32)))  # room for a crop window
    np.save(tmp_path / "img.npy", image)
    roi = np.zeros(image.shape, bool)
    roi[3:7, 4:11] = True  # the upper part of the image's rectangle
    np.save(tmp_path / "roi.npy", roi)
    (tmp_path / "list.csv").write_text("image,roi,name\nimg.npy,,whole\nimg.npy,roi.npy,lesion\n")
    out = tmp_path / "out"
    result = explain_dataset(
        tmp_path / "list.csv",
        model=MODEL,
        out=out,
        num_parts=1,
        part_id=0,
        progress=False,
        evaluate=True,
        eval_steps=5,
        **SETTINGS,
    )
    assert result.computed == ["whole", "lesion"] and not result.failed
    whole = SegRISE(ThresholdNet(2)).explain(image, **SETTINGS)
    lesion = SegRISE(ThresholdNet(2)).explain(image, roi=roi, **SETTINGS)
    assert not np.array_equal(whole.map, lesion.map)
    for name, want in (("whole", whole), ("lesion", lesion)):
        assert np.array_equal(Explanation.load(out / "explanations" / f"{name}.npz").map, want.map)
        assert np.array_equal(np.load(out / "maps" / f"{name}.npy"), want.map.astype("f4"))
    rows = {r["name"]: r for r in result.summary["cases"]}
    assert rows["whole"]["roi"] is None and rows["lesion"]["roi"] == str(tmp_path / "roi.npy")
    # the lesion's curves order the voxels of its crop window, and the summary says which
    window = ",".join(f"{a}:{b}" for a, b in lesion.params["crop_window"])
    assert rows["whole"]["evaluation_window"] is None
    assert rows["lesion"]["evaluation_window"] == window
    want = faithfulness(lesion, model=ThresholdNet(2), steps=5, n_random=1, batch_size=8)
    assert rows["lesion"]["deletion_auc"] == pytest.approx(want.auc("deletion"), abs=1e-12)


def test_a_csv_roi_cell_may_be_a_box(tmp_path):
    image = image2d(0)
    np.save(tmp_path / "img.npy", image)
    (tmp_path / "list.csv").write_text('image,roi,name\nimg.npy,"3:7,4:11",box\n')
    (case,) = load_cases(tmp_path / "list.csv")
    assert case.roi == "3:7,4:11"
    out = tmp_path / "out"
    result = explain_dataset(
        tmp_path / "list.csv", model=MODEL, out=out, num_parts=1, part_id=0, progress=False,
        **SETTINGS,
    )  # fmt: skip
    assert result.computed == ["box"] and not result.failed
    want = SegRISE(ThresholdNet(2)).explain(image, roi="3:7,4:11", **SETTINGS)
    got = Explanation.load(out / "explanations" / "box.npz")
    np.testing.assert_array_equal(got.map, want.map)
    assert result.summary["cases"][0]["roi"] == "3:7,4:11"
