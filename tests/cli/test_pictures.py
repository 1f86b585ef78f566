"""PNG and JPEG pictures: read rows first, colour as channels; masks; maps never written back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from maskscope import SegRISE
from maskscope.cli import main
from maskscope.io import read_companion, read_image, write_map
from tests.conftest import ThresholdNet

FLAGS = ["--n-masks", "16", "--grid", "4", "--seed", "1", "--quiet"]


def _grey(h=20, w=26) -> np.ndarray:
    img = np.full((h, w), 30, np.uint8)
    img[5:13, 6:18] = 220
    return img


def test_grey_pictures_come_rows_first_in_their_own_type(tmp_path):
    a = _grey()
    Image.fromarray(a).save(tmp_path / "g.png")
    got = read_image(tmp_path / "g.png")
    assert got.format == ".png" and got.voxel_spacing is None and got.meta == {}
    np.testing.assert_array_equal(got.data, a)
    wide = (np.arange(20 * 26, dtype=np.uint16).reshape(20, 26) * 97).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "g16.png")
    got16 = read_image(tmp_path / "g16.png").data
    assert got16.dtype == np.uint16
    np.testing.assert_array_equal(got16, wide)


def test_colour_is_channels_first_and_alpha_is_dropped(tmp_path):
    a = _grey()
    rgba = np.stack([a, a // 2, 255 - a, np.full_like(a, 7)], -1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "c.png")
    got = read_image(tmp_path / "c.png")
    assert got.meta == {"channels": "rgb"}
    np.testing.assert_array_equal(got.data, np.moveaxis(rgba[..., :3], -1, 0))
    Image.fromarray(rgba[..., :3]).save(tmp_path / "c.jpg", quality=98, subsampling=0)
    jpg = read_image(tmp_path / "c.jpg").data
    assert jpg.shape == (3, 20, 26)
    assert np.abs(jpg.astype(int) - np.moveaxis(rgba[..., :3], -1, 0)).mean() < 4  # lossy
    la = Image.fromarray(np.stack([a, np.full_like(a, 9)], -1), mode="LA")
    la.save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png").data, a)


def test_a_palette_mask_gives_its_indices(tmp_path):
    labels = np.zeros((20, 26), np.uint8)
    labels[2:6, 3:9], labels[10:15, 12:20] = 1, 2
    pic = Image.fromarray(labels, mode="P")
    pic.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    pic.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png").data, labels)


def test_an_animated_picture_and_a_map_written_as_a_picture_are_refused(tmp_path):
    frames = [Image.fromarray(_grey()), Image.fromarray(255 - _grey())]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"a\.png: 2 frames; expected one picture per file"):
        read_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"m\.png: a map holds floats, which a \.png picture"):
        write_map(tmp_path / "m.png", np.zeros((4, 4)))


def test_a_black_and_white_mask_of_0_and_255_is_read_as_0_and_1(tmp_path):
    Image.fromarray(_grey()).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    Image.fromarray(np.where(_grey() > 100, 255, 0).astype(np.uint8)).save(tmp_path / "m.png")
    mask = read_companion(tmp_path / "m.png", image, "--reference").data
    np.testing.assert_array_equal(mask, (_grey() > 100).astype(np.uint8))
    np.save(tmp_path / "m.npy", np.where(_grey() > 100, 255, 0).astype(np.uint8))
    kept = read_companion(tmp_path / "m.npy", image, "--reference").data  # an array: as it is
    assert kept.max() == 255


def test_the_cli_explains_a_picture_with_its_mask_and_writes_a_tiff(tmp_path, capsys):
    img = (_grey() > 100).astype(np.float32) * 0.8 + 0.1
    Image.fromarray((img * 255).round().astype(np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.where(img > 0.5, 255, 0).astype(np.uint8)).save(tmp_path / "m.png")
    out = tmp_path / "map.tif"
    argv = ["explain", "--model", "tests.cli.threshold_factory:make", "--image"]
    argv += [str(tmp_path / "g.png"), "--reference", str(tmp_path / "m.png"), "--out", str(out)]
    assert main([*argv, "--normalize", "minmax", *FLAGS]) == 0, capsys.readouterr().err
    assert "against the reference (96 voxels)" in capsys.readouterr().out  # 8 × 12 at 255
    pixels = np.asarray(Image.open(tmp_path / "g.png"), np.float32)
    scaled = (pixels - pixels.min()) / (pixels.max() - pixels.min())
    want = SegRISE(ThresholdNet(2)).explain(scaled, reference=img > 0.5, n_masks=16, grid=4, seed=1)
    np.testing.assert_allclose(read_image(out).data, want.map, rtol=1e-5, atol=1e-7)
    assert main([*argv[:-1], str(tmp_path / "map.png"), *FLAGS]) == 2
    assert "a .png --image gives a map of floats" in capsys.readouterr().err


def test_a_colour_picture_needs_a_colour_model(tmp_path, capsys):
    rgb = np.stack([_grey(), _grey(), _grey()], -1)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    argv = ["--image", str(tmp_path / "c.png"), *FLAGS]
    grey = ["--model", "tests.cli.threshold_factory:make"]
    assert main(["explain", *grey, *argv, "--out", str(tmp_path / "m.npy")]) == 2
    message = "--image c.png is a colour image (3 channels, RGB) and the model takes fewer"
    assert message in capsys.readouterr().err
    assert main(["evaluate", *grey, *argv, "--method", "segrise"]) == 2
    assert message in capsys.readouterr().err
    colour = ["--model", "tests.cli.threshold_factory:make_rgb"]
    assert main(["explain", *colour, *argv, "--out", str(tmp_path / "m.npy")]) == 0
    assert np.load(tmp_path / "m.npy").shape == (20, 26)
    capsys.readouterr()


def test_a_nifti_mask_of_0_and_255_and_one_with_a_4th_axis_of_one(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    affine = np.diag([2.0, 1.0, 1.5, 1.0])
    vol = np.zeros((6, 7, 5), np.float32)
    vol[1:4, 2:6, 1:4] = 1.0
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "img.nii.gz")
    image = read_image(tmp_path / "img.nii.gz")
    white = np.where(vol > 0, 255, 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(white, affine), tmp_path / "m255.nii.gz")
    mask = read_companion(tmp_path / "m255.nii.gz", image, "--reference").data
    np.testing.assert_array_equal(mask, (vol > 0).astype(np.uint8))
    nib.save(nib.Nifti1Image((vol > 0)[..., None].astype(np.uint8), affine), tmp_path / "m4.nii")
    four = read_companion(tmp_path / "m4.nii", image, "--reference").data
    assert four.shape == (1, 6, 7, 5)  # the engine takes a channel axis of one
    from maskscope._engine.inputs import prepare_reference

    np.testing.assert_array_equal(prepare_reference(four, (6, 7, 5), 2).numpy(), vol > 0)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 7), np.uint8), affine), tmp_path / "small.nii.gz")
    with pytest.raises(
        ValueError, match=r"has the spatial shape \(4, 5, 7\), the image \(6, 7, 5\)"
    ):
        read_companion(tmp_path / "small.nii.gz", image, "--reference small.nii.gz")


def test_a_2d_nifti_mask_saved_with_a_third_axis_of_one(tmp_path):
    nib = pytest.importorskip("nibabel")
    img = np.zeros((9, 7), np.float32)
    img[2:6, 1:5] = 1.0
    nib.save(nib.Nifti1Image(img, np.eye(4)), tmp_path / "slice.nii.gz")
    image = read_image(tmp_path / "slice.nii.gz")
    nib.save(nib.Nifti1Image((img > 0)[..., None].astype(np.uint8), np.eye(4)), tmp_path / "m.nii")
    mask = read_companion(tmp_path / "m.nii", image, "--reference").data
    np.testing.assert_array_equal(mask, img > 0)
