"""Datasets: folders, globs and CSV files become named cases; bad inputs say what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskscope.batch import Case, load_cases


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((4, 4), np.float32)) if path.suffix == ".npy" else path.write_text("")
    return path


def test_a_folder_gives_its_images_sorted_and_named_without_suffix(tmp_path):
    for name in ("b.nii.gz", "a.npy", "c.tif", "notes.txt", ".hidden.npy"):
        _touch(tmp_path / name)
    (tmp_path / "sub").mkdir()
    cases = load_cases(tmp_path)
    assert [c.name for c in cases] == ["a", "b", "c"]
    assert cases[1] == Case("b", tmp_path / "b.nii.gz")


def test_same_file_names_in_different_folders_get_their_folder(tmp_path):
    for sub in ("sub-01", "sub-02"):
        _touch(tmp_path / sub / "t1.nii.gz")
    _touch(tmp_path / "sub-03" / "other.npy")
    cases = load_cases(str(tmp_path / "*" / "*"))
    assert [c.name for c in cases] == ["sub-01_t1", "sub-02_t1", "other"]


def test_a_csv_lists_images_references_rois_and_names(tmp_path):
    _touch(tmp_path / "imgs" / "x.npy")
    _touch(tmp_path / "imgs" / "y.npy")
    (tmp_path / "list.csv").write_text(
        "image,label,roi,name\nimgs/x.npy,imgs/x_lab.npy,,first\nimgs/y.npy,,imgs/y_roi.npy,\n"
    )
    first, second = load_cases(tmp_path / "list.csv")
    assert first == Case("first", tmp_path / "imgs/x.npy", tmp_path / "imgs/x_lab.npy")
    assert second == Case("y", tmp_path / "imgs/y.npy", None, tmp_path / "imgs/y_roi.npy")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label\na.npy,b.npy\n", "list.csv needs an 'image' column"),
        ("image,mask\na.npy,b.npy\n", "list.csv has unknown column(s) mask"),
        ("image,reference,label\na.npy,b.npy,c.npy\n", "both 'reference' and 'label'"),
        ("image\na.npy\n\nb.npy\n,\n", "list.csv line 4 has an empty 'image' cell"),
        ("image\n", "list.csv lists no case"),
        ("image,name\na.npy,z\nb.npy,z\n", "two cases are named 'z'"),
    ],
)
def test_bad_csv_files_are_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(ValueError) as err:
        load_cases(tmp_path / "list.csv")
    assert message in str(err.value)


def test_inputs_that_hold_no_image_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"the folder .*empty holds no image files"):
        load_cases(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"pattern .*\*\.nii' matched nothing"):
        load_cases(str(tmp_path / "*.nii"))
    with pytest.raises(ValueError, match=r"missing does not exist \(expected a folder"):
        load_cases(tmp_path / "missing")
    _touch(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match=r"notes.txt is neither a folder, a .csv nor an image"):
        load_cases(tmp_path / "notes.txt")
    _touch(tmp_path / "a.npy")
    with pytest.raises(ValueError, match=r"the image .*a\.npy is listed twice"):
        load_cases([tmp_path / "a.npy", tmp_path / "a.npy"])
    with pytest.raises(ValueError, match="give at least one"):
        load_cases([])
