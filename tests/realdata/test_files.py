"""Files as users have them: big-endian NIfTI, both array orders, 4D, RGB TIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskscope import SegRISE
from maskscope.io import read_image, reorder, write_map
from tests.conftest import ThresholdNet

nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


def test_big_endian_sample_reads_in_native_order_and_explains():
    raw = np.asarray(nib.load(str(ANATOMICAL)).dataobj)
    assert raw.dtype.byteorder == ">" and raw.shape == (33, 41, 25)  # the real test file
    vol = read_image(ANATOMICAL)
    assert vol.data.dtype.isnative and vol.data.dtype.kind == "i"
    np.testing.assert_array_equal(vol.data, raw)  # same values, file's own (i, j, k) order
    assert vol.axes == "ijk"
    assert vol.voxel_spacing == pytest.approx(nib.load(str(ANATOMICAL)).header.get_zooms())
    # the engine takes it (torch refuses non-native byte order)
    image = vol.data[12:20, 16:24, 10:16].astype(np.float32) / 15000.0
    expl = SegRISE(ThresholdNet(3), spatial_dims=3).explain(image, n_masks=4, grid=2, seed=0)
    assert expl.map.shape == (8, 8, 6)


@pytest.mark.parametrize("axes", ["ijk", "kji"])
def test_nifti_round_trip_in_both_orders(tmp_path, axes):
    src = nib.load(str(ANATOMICAL))
    vol = read_image(ANATOMICAL, axes=axes)
    want_shape = (33, 41, 25) if axes == "ijk" else (25, 41, 33)
    assert vol.data.shape == want_shape
    zooms = tuple(src.header.get_zooms())
    assert vol.voxel_spacing == pytest.approx(zooms if axes == "ijk" else zooms[::-1])
    fake_map = vol.data.astype(np.float32) * 0.5
    write_map(tmp_path / "map.nii.gz", fake_map, like=vol)
    out = nib.load(str(tmp_path / "map.nii.gz"))
    np.testing.assert_allclose(out.affine, src.affine)  # lines up with the input
    assert out.shape == src.shape
    np.testing.assert_allclose(np.asarray(out.dataobj), src.get_fdata() * 0.5)
    back = read_image(tmp_path / "map.nii.gz", axes=axes)
    np.testing.assert_allclose(back.data, fake_map)


def test_fourth_axis_becomes_the_channel_axis(tmp_path):
    data = np.arange(4 * 5 * 6 * 2, dtype=np.float32).reshape(4, 5, 6, 2)  # (i, j, k, c)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0])), str(tmp_path / "c.nii"))
    ijk = read_image(tmp_path / "c.nii")
    np.testing.assert_array_equal(ijk.data, np.moveaxis(data, 3, 0))
    assert ijk.voxel_spacing == pytest.approx((2.0, 3.0, 4.0))
    kji = read_image(tmp_path / "c.nii", axes="kji")
    np.testing.assert_array_equal(kji.data, np.moveaxis(data, 3, 0).transpose(0, 3, 2, 1))
    np.testing.assert_array_equal(reorder(kji.data, "kji", "ijk"), ijk.data)
    write_map(tmp_path / "m.nii", kji.data, like=kji)
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "m.nii")).dataobj), data)


def test_byte_order_of_npy_is_made_native(tmp_path):
    arr = np.arange(12, dtype=">f4").reshape(3, 4)
    np.save(tmp_path / "be.npy", arr)
    got = read_image(tmp_path / "be.npy").data
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_rgb_tiff_is_channels_not_slices(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    vol = read_image(tmp_path / "rgb.tif")
    assert vol.data.shape == (3, 32, 40) and vol.meta["channels"] == "rgb"
    np.testing.assert_array_equal(vol.data, np.moveaxis(rgb, -1, 0))
    rgba = np.concatenate([rgb, np.full((32, 40, 1), 255, np.uint8)], axis=-1)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert read_image(tmp_path / "rgba.tif").data.shape == (3, 32, 40)  # alpha dropped
    # a grayscale stack whose last axis happens to be 3 stays a stack
    stack = np.zeros((5, 8, 3), np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    assert read_image(tmp_path / "stack.tif").data.shape == (5, 8, 3)


def test_bad_axes_name_the_choices():
    with pytest.raises(ValueError, match=r"axes must be one of 'ijk', 'kji' .* got 'xyz'"):
        read_image(ANATOMICAL, axes="xyz")


def test_the_api_takes_big_endian_arrays():
    image = np.zeros((16, 16), ">f4")
    image[4:12, 4:12] = 1.0
    got = SegRISE(ThresholdNet(2)).explain(image, n_masks=6, grid=4, seed=0).map
    want = SegRISE(ThresholdNet(2)).explain(image.astype("<f4"), n_masks=6, grid=4, seed=0).map
    np.testing.assert_array_equal(got, want)
