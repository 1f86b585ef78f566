"""The PNG figure: voxels drawn with their physical aspect, colours from what was explained."""

from __future__ import annotations

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
