"""A MONAI ``MetaTensor`` (``LoadImage``'s output) brings its voxel spacing with it.

HDM measures in physical units and a figure keeps the voxels' aspect, so a MetaTensor's
``pixdim`` is the spacing when none is given: in the array's own axis order, after an
``Orientation`` transform as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from maskscope import HDM
from tests.conftest import ThresholdNet

monai = pytest.importorskip("monai", reason="MONAI is in the 'monai' and 'dev' extras")
nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")

ZOOMS = (1.0, 2.0, 3.0)


@pytest.fixture
def nifti(tmp_path):
    vol = np.zeros((14, 10, 8), np.float32)
    vol[4:10, 3:7, 2:6] = 1.0
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([*ZOOMS, 1.0])), str(path))
    return path, vol


def _loaded(path, orientation: str | None = None):
    from monai.transforms import EnsureChannelFirst, LoadImage, Orientation

    x = EnsureChannelFirst()(LoadImage(image_only=True)(str(path)))
    return x if orientation is None else Orientation(axcodes=orientation)(x)


HDM_KW = dict(diameter=4.0, stride=3.0, sweep="full")


def test_the_metatensor_spacing_is_used_when_none_is_given(nifti):
    path, vol = nifti
    x = _loaded(path)
    assert type(x).__name__ == "MetaTensor"
    got = HDM(ThresholdNet(3)).explain(x, **HDM_KW)
    assert got.voxel_spacing == ZOOMS
    want = HDM(ThresholdNet(3)).explain(vol[None], voxel_spacing=ZOOMS, **HDM_KW)
    np.testing.assert_array_equal(got.map, want.map)
    unit = HDM(ThresholdNet(3)).explain(vol[None], **HDM_KW)  # what was used before: 1 mm
    assert unit.voxel_spacing == (1.0, 1.0, 1.0)
    assert unit.n_forward != got.n_forward  # other centres, in millimetres


def test_a_given_spacing_wins_and_a_reoriented_tensor_brings_its_own_order(nifti):
    path, vol = nifti
    given = HDM(ThresholdNet(3)).explain(_loaded(path), voxel_spacing=(1, 1, 1), **HDM_KW)
    assert given.voxel_spacing == (1.0, 1.0, 1.0)
    flipped = _loaded(path, orientation="SAR")  # the axes in reverse: k, j, i
    assert tuple(flipped.shape[1:]) == vol.shape[::-1]
    got = HDM(ThresholdNet(3)).explain(flipped, **HDM_KW)
    assert got.voxel_spacing == ZOOMS[::-1]


def test_the_notebook_widget_takes_the_spacing_too(nifti):
    pytest.importorskip("ipywidgets")
    from maskscope.notebook import ExplainWidget

    path, _ = nifti
    w = ExplainWidget(ThresholdNet(3), _loaded(path), method="SegRISE", n_masks=4)
    assert tuple(w.voxel_spacing) == ZOOMS
    assert tuple(w.view.spacing) == ZOOMS


def test_the_metatensor_spacing_is_kept_by_a_cropped_roi_run(tmp_path):
    from maskscope import SegRISE

    vol = np.zeros((40, 30, 24), np.float32)
    vol[4:10, 3:7, 2:6] = 1.0
    path = tmp_path / "big.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([*ZOOMS, 1.0])), str(path))
    x = _loaded(path)
    box = "2:12,1:9,0:8"  # far from the far corner: the window is smaller than the image
    kw = dict(n_masks=16, grid=3, seed=2, roi=box)
    for crop in ("auto", True):
        got = SegRISE(ThresholdNet(3)).explain(x, crop=crop, **kw)
        assert "crop_skipped" not in got.params and got.voxel_spacing == ZOOMS
        want = SegRISE(ThresholdNet(3)).explain(vol[None], crop=crop, voxel_spacing=ZOOMS, **kw)
        np.testing.assert_array_equal(got.map, want.map)
    hdm = HDM(ThresholdNet(3)).explain(x, crop=True, roi=box, **HDM_KW)
    assert hdm.voxel_spacing == ZOOMS


def test_a_map_written_like_the_metatensor_lies_where_the_image_does(tmp_path):
    from monai.transforms import SaveImage

    from maskscope.io import write_map

    vol = np.zeros((14, 10, 8), np.float32)
    vol[4:10, 3:7, 2:6] = 1.0
    vol[1, 1, 1] = 5.0  # a landmark
    affine = np.array([[-2.0, 0, 0, 30], [0, 1.5, 0, -40], [0, 0, 3.0, -20], [0, 0, 0, 1]])
    path = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), str(path))
    x = _loaded(path, "RAS")  # reoriented: the array is flipped along its first axis
    landmark = np.unravel_index(int(np.argmax(np.asarray(x[0]))), x.shape[1:])
    out = write_map(tmp_path / "map.nii.gz", np.asarray(x[0]), like=x)
    written = nib.load(str(out))
    at = written.affine @ [*landmark, 1]
    np.testing.assert_allclose(at[:3], (affine @ [1, 1, 1, 1])[:3])  # the landmark's place
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(x[0]))
    SaveImage(output_dir=str(tmp_path / "monai"), output_postfix="m", separate_folder=False)(x)
    (monai_file,) = (tmp_path / "monai").glob("*.nii.gz")
    np.testing.assert_allclose(written.affine, nib.load(str(monai_file)).affine, atol=1e-5)
    with pytest.raises(ValueError, match="must have its spatial shape"):
        write_map(tmp_path / "bad.nii.gz", np.zeros((3, 3, 3)), like=x)
