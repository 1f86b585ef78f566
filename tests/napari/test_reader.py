"""The NIfTI reader keeps voxel spacing as scale and axis flips and origin as affine."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from maskscope.napari._reader import get_reader, read_nifti


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.mark.parametrize("axes", ["ijk", "kji"])
def test_reader_round_trips_spacing_and_orientation(tmp_path, axes):
    rng = np.random.default_rng(0)
    data = rng.random((10, 12, 8)).astype(np.float32)  # (x, y, z)
    affine = np.diag([-0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = (40.0, -20.0, 7.5)
    path = _save(tmp_path / "scan.nii.gz", data, affine)

    assert get_reader(str(path)) is read_nifti
    assert get_reader(str(tmp_path / "scan.tif")) is None
    ((array, kwargs, kind),) = read_nifti(str(path), axes=axes)
    assert kind == "image" and kwargs["name"] == "scan"
    flip = (lambda v: tuple(v)[::-1]) if axes == "kji" else tuple
    np.testing.assert_array_equal(array, data if axes == "ijk" else data.transpose(2, 1, 0))
    np.testing.assert_allclose(kwargs["scale"], flip((0.8, 0.9, 2.5)))
    # world position of a voxel = the file's affine (world axes in the array's order)
    ijk = (7, 5, 3)
    world = kwargs["affine"] @ np.r_[np.multiply(flip(ijk), kwargs["scale"]), 1.0]
    np.testing.assert_allclose(flip(world[:3]), (affine @ [*ijk, 1.0])[:3])
    assert kwargs["metadata"]["nifti_axes"] == axes
    np.testing.assert_allclose(kwargs["metadata"]["nifti_affine"], affine)


def test_reader_opens_labels_and_oblique_volumes_in_a_viewer(make_napari_viewer, plugin, tmp_path):
    labels = np.zeros((6, 7, 5), np.uint8)
    labels[2:4, 3:5, 1:3] = 1
    oblique = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    oblique[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag(
        [1.5, 1.5, 3.0]
    )
    _save(tmp_path / "lesion.nii", labels, oblique)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "lesion.nii"), plugin="maskscope")
    assert type(layer).__name__ == "Labels"
    np.testing.assert_array_equal(layer.data, labels)
    np.testing.assert_allclose(layer.scale, (1.5, 1.5, 3.0))
    np.testing.assert_allclose(layer.affine.affine_matrix, np.eye(4))  # oblique: grid kept


@pytest.mark.parametrize("axes", ["ijk", "kji"])
def test_a_4d_file_reads_as_the_command_line_reads_it_and_a_map_writes_back_alike(tmp_path, axes):
    from maskscope.io import read_image
    from maskscope.napari._reader import write_nifti

    rng = np.random.default_rng(1)
    data = rng.random((6, 7, 5, 2)).astype(np.float32)  # (x, y, z, channel)
    affine = np.diag([1.5, 0.5, 2.0, 1.0])
    path = _save(tmp_path / "two.nii.gz", data, affine)
    ((array, kwargs, _),) = read_nifti(str(path), axes=axes)
    vol = read_image(path, axes=axes)
    np.testing.assert_array_equal(array, vol.data)  # one reader: the channel axis first
    assert array.shape[0] == 2 and kwargs["scale"][0] == 1.0
    np.testing.assert_allclose(kwargs["scale"][1:], vol.voxel_spacing)

    written = write_nifti(str(tmp_path / "map"), array[0], kwargs)  # a map on the layer
    assert written == [str(tmp_path / "map.nii.gz")]
    back = nib.load(written[0])
    np.testing.assert_allclose(back.affine, affine)
    np.testing.assert_allclose(back.get_fdata(), data[..., 0], rtol=1e-6)
