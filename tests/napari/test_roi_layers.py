"""The ROI a napari Shapes or Labels layer selects, and the errors shown for bad layers."""

from __future__ import annotations

import re

import numpy as np
import pytest
from napari.layers import Image, Labels, Shapes

from maskscope.napari._roi import roi_from_layer


def test_a_rectangle_on_a_2d_image_is_its_box():
    layer = Shapes([np.array([[2, 3], [2, 8], [6, 8], [6, 3]])], shape_type="rectangle")
    mask = roi_from_layer(layer, (12, 14)).resolve((12, 14))
    want = np.zeros((12, 14), bool)
    want[2:7, 3:9] = True  # napari rasterises the corners inclusively
    np.testing.assert_array_equal(mask, want)


def test_a_square_on_one_slice_of_a_volume_selects_a_block_around_it():
    corners = np.array([[10, 4, 4], [10, 4, 9], [10, 9, 9], [10, 9, 4]])
    layer = Shapes([corners], shape_type="rectangle")
    mask = roi_from_layer(layer, (20, 16, 16), spacing=(2.0, 1.0, 1.0)).resolve((20, 16, 16))
    # 6 voxels of 1 mm in-plane: 3 mm on each side, 2 mm slices -> 2 slices each side
    assert np.flatnonzero(mask.any(axis=(1, 2))).tolist() == [8, 9, 10, 11, 12]
    np.testing.assert_array_equal(mask[8], mask[10])
    assert mask[10, 4:10, 4:10].all() and mask[10].sum() == 36


def test_the_selected_label_of_a_labels_layer():
    data = np.zeros((6, 7), np.int32)
    data[1:3, 1:3] = 1
    data[4:6, 4:7] = 2
    layer = Labels(data)
    layer.selected_label = 2
    np.testing.assert_array_equal(roi_from_layer(layer, (6, 7)).resolve((6, 7)), data == 2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Shapes(ndim=2, name="boxes"), "the Shapes layer 'boxes' has no shape"),
        (lambda: Labels(np.zeros((3, 3), np.int32), name="p"), "has shape (3, 3), the image's"),
        (lambda: Image(np.zeros((6, 7)), name="img"), "choose a Shapes or Labels layer, got"),
    ],
)
def test_bad_layers(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        roi_from_layer(make(), (6, 7))


def test_background_label_selected():
    layer = Labels(np.ones((6, 7), np.int32), name="prediction")
    layer.selected_label = 0
    with pytest.raises(ValueError, match=re.escape("has the background (0) selected")):
        roi_from_layer(layer, (6, 7))


def test_shapes_are_read_where_they_lie_over_the_image():
    # an image placed as a NIfTI reader places it: anisotropic, shifted, first axis flipped
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    image = Image(np.zeros((20, 16, 16)), scale=(3.0, 1.5, 1.0), translate=(30, -4, 2), affine=flip)
    corners = np.array([[10, 4, 4], [10, 4, 9], [10, 9, 9], [10, 9, 4]])
    world = np.array([image.data_to_world(c) for c in corners])
    drawn = Shapes([world], shape_type="rectangle")  # a Shapes layer with no transforms
    placed = Shapes(
        [corners], shape_type="rectangle", scale=(3.0, 1.5, 1.0), translate=(30, -4, 2), affine=flip
    )
    sp = (3.0, 1.5, 1.0)
    want = np.zeros((20, 16, 16), bool)
    want[8:13, 4:10, 4:10] = True  # 9 mm across in-plane: 4.5 mm, 2 slices of 3 mm each side
    for layer in (drawn, placed):
        got = roi_from_layer(layer, (20, 16, 16), sp, image=image).resolve((20, 16, 16))
        np.testing.assert_array_equal(got, want)
    # read in its own coordinates, the drawn box would be elsewhere (or outside)
    with pytest.raises(ValueError, match="outside the image"):
        roi_from_layer(drawn, (20, 16, 16))


def test_shapes_beside_the_image_are_refused():
    image = Image(np.zeros((6, 7)), translate=(100, 100), name="scan")
    layer = Shapes([np.array([[2, 3], [2, 5], [4, 5], [4, 3]])], shape_type="rectangle", name="b")
    with pytest.raises(ValueError, match=re.escape("'b' lie outside the image 'scan'")):
        roi_from_layer(layer, (6, 7), image=image)


def test_the_slice_a_shape_was_drawn_on_is_the_one_napari_shows():
    image = Image(np.zeros((20, 16, 16)), scale=(2.5, 1.0, 1.0))
    # drawn at world z = 24 (slice 9.6 of the image: napari shows slice 10)
    corners = np.array([[24.0, 4, 4], [24.0, 4, 9], [24.0, 9, 9], [24.0, 9, 4]])
    layer = Shapes([corners], shape_type="rectangle")
    got = roi_from_layer(layer, (20, 16, 16), (2.5, 1.0, 1.0), image=image)
    mask = got.resolve((20, 16, 16))
    # a block centred on slice 10: 6 mm across, 3 mm (one 2.5 mm slice) on each side
    assert np.flatnonzero(mask.any(axis=(1, 2))).tolist() == [9, 10, 11]


def test_shapes_over_a_channel_first_image_are_read_on_its_spatial_axes():
    image = Image(np.zeros((3, 16, 16)), scale=(1.0, 2.0, 2.0))
    box = Shapes([np.array([[4, 4], [4, 12], [12, 12], [12, 4]])], shape_type="rectangle")
    mask = roi_from_layer(box, (16, 16), image=image, spatial_axes=(1, 2)).resolve((16, 16))
    want = np.zeros((16, 16), bool)
    want[2:7, 2:7] = True  # world 4..12 is data 2..6 at 2 per voxel
    np.testing.assert_array_equal(mask, want)
