"""Files: each format round-trips, spacing is kept, bad files give one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope.io import read_image, write_map


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".tif", ".nii", ".nii.gz"])
def test_map_round_trip(tmp_path, suffix):
    arr = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    path = write_map(tmp_path / f"m{suffix}", arr)
    back = read_image(path, key="map" if suffix == ".npz" else None)
    np.testing.assert_array_equal(back.data, arr)
    assert back.format == suffix


def test_nifti_spacing_and_orientation_kept(tmp_path):
    nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")
    data_xyz = np.zeros((6, 7, 8), np.float32)
    data_xyz[1, 2, 3] = 5.0
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = [10, -4, 7]
    nib.save(nib.Nifti1Image(data_xyz, affine), str(tmp_path / "s.nii.gz"))
    vol = read_image(tmp_path / "s.nii.gz", axes="kji")
    assert vol.data.shape == (8, 7, 6) and vol.data[3, 2, 1] == 5.0
    assert vol.voxel_spacing == pytest.approx((2.5, 0.9, 0.8))
    ijk = read_image(tmp_path / "s.nii.gz")  # the default: the file's own order
    assert ijk.data.shape == (6, 7, 8) and ijk.data[1, 2, 3] == 5.0
    assert ijk.voxel_spacing == pytest.approx((0.8, 0.9, 2.5))
    write_map(tmp_path / "out.nii.gz", vol.data * 2, like=vol)
    out = nib.load(str(tmp_path / "out.nii.gz"))
    np.testing.assert_allclose(out.affine, affine)
    assert np.asarray(out.dataobj)[1, 2, 3] == 10.0


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported file type \.bmp; expected one of"):
        read_image(tmp_path / "a.bmp")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_image(tmp_path / "missing.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"bad\.npy: cannot read it as \.npy"):
        read_image(tmp_path / "bad.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.ones(2))
    with pytest.raises(ValueError, match=r"choose an array among \['a', 'b'\]"):
        read_image(tmp_path / "two.npz")


@pytest.mark.parametrize("name", ["example4d.nii.gz", "example_nifti2.nii.gz"])
def test_nifti_map_written_like_a_real_file_shows_its_own_range(tmp_path, name):
    """A map written like nibabel's bundled files: no display window of the source (a viewer
    would show the map blank), a NIfTI-1 header converted from NIfTI-2, a shape check."""
    nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")
    from pathlib import Path

    src = Path(nib.__file__).parent / "tests" / "data" / name
    vol = read_image(src)
    assert float(nib.load(str(src)).header["cal_max"]) > 1  # the source's window
    spatial = vol.data.shape[-3:]
    m = np.random.default_rng(0).random(spatial).astype(np.float32) * 1e-2 + 0.8
    out = write_map(tmp_path / "m.nii.gz", m, like=vol)
    img = nib.load(str(out))
    assert float(img.header["cal_min"]) == 0 and float(img.header["cal_max"]) == 0
    assert int(img.header["sizeof_hdr"]) == 348
    np.testing.assert_allclose(img.affine, nib.load(str(src)).affine, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(img.dataobj), m)  # the 'ijk' order kept
    with pytest.raises(ValueError, match=rf"spatial shape \({spatial[0]}, .*got a map of shape"):
        write_map(tmp_path / "bad.nii.gz", np.zeros((10, 10, 10), np.float32), like=vol)


@pytest.mark.parametrize("suffix", [".npz", ".tif", ".nii.gz"])
@pytest.mark.parametrize("shape", [(4, 5, 6), (5, 6)], ids=["3d", "2d"])
def test_spacing_is_written_and_read_back(tmp_path, suffix, shape):
    spacing = (2.0, 0.5, 0.25)[-len(shape) :]
    arr = np.random.default_rng(0).random(shape).astype(np.float32)
    vol = read_image(write_map(tmp_path / f"m{suffix}", arr, spacing=spacing))
    np.testing.assert_array_equal(vol.data, arr)
    assert vol.voxel_spacing == pytest.approx(spacing)
    plain = read_image(write_map(tmp_path / f"p{suffix}", arr))
    assert plain.voxel_spacing in (None, (1.0,) * len(shape))
    from_like = read_image(write_map(tmp_path / f"l{suffix}", arr, like=vol))
    assert from_like.voxel_spacing == pytest.approx(spacing)
    with pytest.raises(ValueError, match=r"spacing must be positive numbers, one per spatial"):
        write_map(tmp_path / f"bad{suffix}", arr, spacing=(1.0, -1.0))


@pytest.mark.parametrize("suffix", [".npz", ".tif", ".nii.gz"])
def test_cli_spacing_reaches_the_written_map(tmp_path, suffix, capsys):
    from maskscope.cli import main

    vol = np.zeros((6, 12, 10), np.float32)
    vol[2:5, 3:9, 2:8] = 1.0
    np.save(tmp_path / "v.npy", vol)
    out = tmp_path / f"map{suffix}"
    code = main([
        "explain", "--model", "tests.cli.threshold_factory:make3d", "--image",
        str(tmp_path / "v.npy"), "--spacing", "3,1,0.5", "--n-masks", "8", "--grid", "3",
        "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert read_image(out).voxel_spacing == pytest.approx((3.0, 1.0, 0.5))
    np.savez(tmp_path / "v.npz", image=vol, voxel_spacing=np.array([2.0, 1.5, 1.0]))
    code = main([
        "explain", "--model", "tests.cli.threshold_factory:make3d", "--image",
        str(tmp_path / "v.npz"), "--n-masks", "8", "--grid", "3", "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert read_image(out).voxel_spacing == pytest.approx((2.0, 1.5, 1.0))


def test_a_nifti_image_asks_for_a_nifti_map(tmp_path, capsys):
    nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")
    from maskscope.cli import main

    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), str(tmp_path / "v.nii"))
    code = main([
        "explain", "--model", "tests.cli.threshold_factory:make3d", "--image",
        str(tmp_path / "v.nii"), "--out", str(tmp_path / "map.npy"), "--quiet",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "a NIfTI --image gives a NIfTI map" in err
    assert "--out needs a file name ending in .nii.gz or .nii, got map.npy" in err


def _nifti_case(tmp_path, mask_affine):
    nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")
    vol = np.zeros((10, 12, 6), np.float32)
    vol[3:7, 4:9, 1:5] = 1.0
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), str(tmp_path / "v.nii.gz"))
    mask = (vol > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, mask_affine), str(tmp_path / "m.nii.gz"))
    return tmp_path / "v.nii.gz", tmp_path / "m.nii.gz"


@pytest.mark.parametrize("flag", ["--reference", "--roi"])
@pytest.mark.parametrize("command", ["explain", "evaluate"])
def test_a_nifti_label_file_on_another_grid_is_refused(tmp_path, capsys, flag, command):
    """Same shape, flipped first axis: the mask marks other voxels."""
    from maskscope.cli import main

    flipped = np.diag([-1.0, 1.0, 3.0, 1.0])
    flipped[0, 3] = 9.0
    image, mask = _nifti_case(tmp_path, flipped)
    args = [command, "--model", "tests.cli.threshold_factory:make3d", "--image", str(image)]
    args += [flag, str(mask), "--n-masks", "4", "--grid", "3", "--quiet"]
    args += ["--out", str(tmp_path / "o.nii.gz")] if command == "explain" else ["--method", "rise"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{flag} m.nii.gz is not on the image's voxel grid: its affine differs" in err
    assert "resample it onto the image" in err and err.count("\n") == 1


def test_a_nifti_label_file_on_the_same_grid_is_taken(tmp_path, capsys):
    from maskscope.cli import main

    image, mask = _nifti_case(tmp_path, np.diag([1.0, 1.0, 3.0, 1.0]))
    out = tmp_path / "o.nii.gz"
    code = main([
        "explain", "--model", "tests.cli.threshold_factory:make3d", "--image", str(image),
        "--reference", str(mask), "--roi", str(mask), "--n-masks", "4", "--grid", "3",
        "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert read_image(out).data.shape == (10, 12, 6)
