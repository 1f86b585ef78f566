"""The PNG figure: voxels drawn with their physical aspect, colours from what was explained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from maskscope import Explanation
from maskscope.figure import _enlarged_shape, figure_rgb

HEAD, MARGIN, BAR = 56, 10, 22


def _panel_shape(rgb: np.ndarray) -> tuple[int, int]:
    """The enlarged slice's size, from the canvas (title above, colour bar beside)."""
    return rgb.shape[0] - HEAD - MARGIN, rgb.shape[1] - 2 * MARGIN - BAR - 70


def _expl(shape, spacing=(), slices=None, seed=0) -> Explanation:
    rng = np.random.default_rng(seed)
    return Explanation(
        method="SegRISE",
        map=rng.random(shape),
        image=rng.random((1, *shape)).astype(np.float32),
        voxel_spacing=spacing,
        slices=slices,
    )


@pytest.mark.parametrize(
    ("shape", "spacing", "want"),
    [
        ((16, 20), (), (512, 640)),
        ((16, 20), (1.0, 1.0), (512, 640)),
        ((4, 10, 20), (3.0, 2.0, 1.0), (512, 512)),  # 10 rows of 2 mm = 20 columns of 1 mm
        ((10, 40), (0.5, 2.0), (512, 8192)),
        ((600, 700), (1.0, 1.0), (600, 700)),  # large enough already
    ],
)
def test_the_slice_keeps_its_physical_aspect(shape, spacing, want):
    assert _enlarged_shape(shape[-2:], spacing, 512) == want
    rgb = figure_rgb(_expl(shape, spacing), min_size=512)
    assert _panel_shape(rgb) == want


def test_slices_not_explained_do_not_widen_the_colour_range():
    """A 2D model's run on slice 1 of 3: the other slices hold 0, which is no value."""
    only = _expl((3, 12, 14), slices=(1,))
    only.map[[0, 2]] = 0.0
    only.map[1] = 0.4 + 0.2 * only.map[1]
    alone = Explanation(method="SegRISE", map=only.map[1].copy(), image=only.image[:, 1].copy())
    got, want = figure_rgb(only, slice_index=1), figure_rgb(alone)
    h, w = _panel_shape(got)
    panel = (slice(HEAD, HEAD + h), slice(MARGIN, MARGIN + w + 2 * MARGIN + BAR + 70))
    np.testing.assert_array_equal(got[panel], want[panel])  # the slice and its colour bar


@pytest.mark.parametrize(
    ("shape", "spacing", "axis"),
    [
        ((12, 10, 4), (2.0, 2.0, 2.2), 2),  # a NIfTI scan in its own (i, j, k) order
        ((4, 10, 12), (2.2, 2.0, 2.0), 0),  # the same scan in SimpleITK's (k, j, i) order
        ((9, 10, 6), (1.0, 1.0, 1.0), 2),  # isotropic: the fewest voxels
        ((8, 8, 8), (), 0),  # nothing to choose by: the first axis
    ],
)
def test_a_volume_is_shown_across_its_slice_direction(shape, spacing, axis):
    expl = _expl(shape, spacing)
    assert expl.default_axis() == axis
    z = shape[axis] // 2
    order = [axis, *(a for a in range(3) if a != axis)]  # the same volume, sliced first
    moved = Explanation(
        method="SegRISE",
        map=np.transpose(expl.map, order),
        image=np.transpose(expl.image, [0, *(a + 1 for a in order)]),
        voxel_spacing=tuple(spacing[a] for a in order) if spacing else (),
    )
    got, want = figure_rgb(expl), figure_rgb(moved, axis=0, slice_index=z)
    h, w = _panel_shape(got)
    panel = (slice(HEAD, HEAD + h), slice(MARGIN, MARGIN + w + 2 * MARGIN + BAR + 70))
    assert _panel_shape(want) == (h, w)
    np.testing.assert_array_equal(got[panel], want[panel])
    # the same slice asked for explicitly
    np.testing.assert_array_equal(figure_rgb(expl, axis=axis, slice_index=z), got)


def test_the_default_slice_is_the_references_centre_along_the_axis():
    ref = np.zeros((12, 10, 6), np.uint8)
    ref[2:5, 3:6, 3:6] = 1  # centre 3 along the first axis, 4 along the third
    expl = dataclasses.replace(_expl((12, 10, 6), (1.0, 1.0, 3.0)), reference=ref)
    assert expl.view_slice() == (2, 4)
    assert expl.view_slice(slice_index=3) == (0, 3)  # a slice alone: along the first axis
    a2d = _expl((12, 10, 6), (1.0, 1.0, 3.0), slices=(1, 5))  # a 2D model's slices: first axis
    assert a2d.view_slice() == (0, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axis": 3}, "axis must be 0, 1 or 2 for a 3D map, got 3"),
        ({"axis": 1, "slice_index": 10}, "slice_index must be in 0 … 9 along axis 1 of the map"),
    ],
)
def test_a_bad_axis_or_slice_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        figure_rgb(_expl((4, 10, 12)), **kwargs)


def test_a_colour_picture_is_drawn_in_its_colours():
    """Under a transparent map a red square stays red and a blue one blue; a volume of three
    channels (modalities) is drawn from its first channel in gray."""
    img = np.zeros((3, 12, 16), np.float32)
    img[0, 2:6, 2:6] = 200.0  # red
    img[2, 6:10, 9:14] = 200.0  # blue
    expl = Explanation(method="RISE", map=np.zeros((12, 16)), image=img)
    rgb = figure_rgb(expl, min_size=12)
    panel = rgb[HEAD : HEAD + 12, MARGIN : MARGIN + 16].astype(int)
    red, blue = panel[3, 3], panel[8, 11]
    assert red[0] > 200 and red[1] < 30 and red[2] < 30, red
    assert blue[2] > 200 and blue[0] < 30 and blue[1] < 30, blue
    vol = Explanation(method="RISE", map=np.zeros((4, 12, 16)), image=np.repeat(img[:, None], 4, 1))
    grey = figure_rgb(vol, axis=0, slice_index=1, min_size=12)[
        HEAD : HEAD + 12, MARGIN : MARGIN + 16
    ]
    assert np.all(grey[..., 0] == grey[..., 2])  # gray
    assert grey[3, 3, 0] > 200 and grey[8, 11, 0] < 30  # the first channel: the red square
