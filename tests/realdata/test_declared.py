"""Files that declare more than they hold, or more than a machine can read, are refused
before their arrays are allocated."""

from __future__ import annotations

import gzip
import io
import zipfile

import nibabel as nib
import numpy as np
import pytest

from maskscope import Explanation
from maskscope.io import read_image

BIG = (1024, 1024, 1024)  # 4 GiB of float32: never allocated here


def _header_only_npy(path, shape):
    # a header declaring ``shape``, then the data of one value
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    path.write_bytes(head.getvalue() + b"\0" * 4)  # the header holds the magic
    return path


def _nifti_header(shape) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + b"\0" * 4


def test_a_truncated_npy_is_refused_before_reading(tmp_path):
    path = _header_only_npy(tmp_path / "trunc.npy", BIG)
    with pytest.raises(
        ValueError,
        match=r"trunc\.npy declares an array of shape \(1024, 1024, 1024\) \(float32, 4\.29 GB\) "
        r"but holds only 4 bytes of data: the file is truncated",
    ):
        read_image(path)


def test_a_nifti_header_without_its_data_is_refused(tmp_path):
    (tmp_path / "trunc.nii").write_bytes(_nifti_header(BIG))
    with pytest.raises(ValueError, match=r"trunc\.nii declares an array .* but holds only 0 bytes"):
        read_image(tmp_path / "trunc.nii")
    (tmp_path / "trunc.nii.gz").write_bytes(gzip.compress(_nifti_header(BIG)))
    with pytest.raises(
        ValueError,
        match=r"trunc\.nii\.gz declares .* from \d+ compressed bytes, more than compression",
    ):
        read_image(tmp_path / "trunc.nii.gz")


def test_an_npz_member_is_checked_before_any_array_is_read(tmp_path):
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": BIG}
    )
    member = head.getvalue()
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("image.npy", member)
    with pytest.raises(ValueError, match=r"bomb\.npz \(array 'image'\) declares an array"):
        read_image(tmp_path / "bomb.npz")
    with pytest.raises(ValueError, match=r"bomb\.npz: bomb\.npz \(array 'image'\) declares"):
        Explanation.load(tmp_path / "bomb.npz")


def test_the_limit_is_half_the_memory_or_the_variable(tmp_path, monkeypatch):
    np.save(tmp_path / "ok.npy", np.zeros((100, 100), np.float32))  # 40 kB
    assert read_image(tmp_path / "ok.npy").data.shape == (100, 100)
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", "0.00001")  # 10 kB
    with pytest.raises(
        ValueError,
        match=r"ok\.npy declares .* at once here \(1e-05 GB, MASKSCOPE_MAX_READ_GB=0\.00001\)",
    ):
        read_image(tmp_path / "ok.npy")
    nib.save(nib.Nifti1Image(np.zeros((30, 30, 30), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    with pytest.raises(ValueError, match=r"set MASKSCOPE_MAX_READ_GB to raise the limit"):
        read_image(tmp_path / "v.nii.gz")
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", "1")
    assert read_image(tmp_path / "v.nii.gz").data.shape == (30, 30, 30)


def test_an_npz_member_named_without_npy_is_checked_too(tmp_path, monkeypatch):
    """numpy reads a member named ``image`` as an array when it holds one."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((200, 200), np.float32))  # 160 kB
    with zipfile.ZipFile(tmp_path / "odd.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("image", buf.getvalue())
        zf.writestr("meta", b"x" * 200_000)  # bytes, not an array
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", "0.0001")  # 100 kB
    with pytest.raises(
        ValueError, match=r"odd\.npz \(array 'image'\) declares an array of shape \(200, 200\)"
    ):
        read_image(tmp_path / "odd.npz")
    with pytest.raises(ValueError, match=r"odd\.npz \(array 'image'\) declares"):
        Explanation.load(tmp_path / "odd.npz")
    with zipfile.ZipFile(tmp_path / "bytes.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta", b"x" * 200_000)
    with pytest.raises(
        ValueError, match=r"bytes\.npz \(array 'meta'\) declares an array of shape \(200000,\)"
    ):
        Explanation.load(tmp_path / "bytes.npz")


def test_a_scaled_nifti_is_checked_as_the_float64_it_becomes(tmp_path, monkeypatch):
    img = nib.Nifti1Image(np.zeros((50, 50, 50), np.uint8), np.eye(4))  # 125 kB on disk
    img.header.set_slope_inter(2.0, 1.0)
    nib.save(img, tmp_path / "scaled.nii")
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", "0.0005")  # 500 kB: 1 MB of float64 is not
    with pytest.raises(
        ValueError, match=r"scaled\.nii declares an array of shape \(50, 50, 50\) \(float64"
    ):
        read_image(tmp_path / "scaled.nii")
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", "0.01")
    assert read_image(tmp_path / "scaled.nii").data.max() == 1.0


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan"])
def test_a_bad_limit_is_named_as_such_not_as_the_files_fault(tmp_path, monkeypatch, value):
    np.save(tmp_path / "a.npy", np.zeros(4, np.float32))
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", value)
    with pytest.raises(
        ValueError, match=r"^MASKSCOPE_MAX_READ_GB must be a positive number of GB \(or inf\)"
    ):
        read_image(tmp_path / "a.npy")
    monkeypatch.setenv("MASKSCOPE_MAX_READ_GB", "inf")
    assert read_image(tmp_path / "a.npy").data.shape == (4,)
