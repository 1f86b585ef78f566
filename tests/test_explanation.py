"""Explanation: save/load round trip, PNG rendering, torch access."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from maskscope import Explanation, PixelRISE, SegRISE


def test_save_load_round_trip(tmp_path, net2d, square2d):
    expl = PixelRISE(net2d).explain(square2d, n_masks=12, grid=4, merge="max", seed=4)
    path = expl.save(tmp_path / "result")
    assert path.name == "result.npz"
    back = Explanation.load(path)
    for name in ("map", "reference", "prediction", "image"):
        np.testing.assert_array_equal(getattr(back, name), getattr(expl, name))
    np.testing.assert_array_equal(back.extras["mean"], expl.extras["mean"])
    assert back.params == expl.params and back.params["merge"] == "max"
    assert (back.method, back.n_done, back.target, back.done) == ("PixelRISE", 12, 1, True)
    assert back.voxel_spacing == (1.0, 1.0)


def test_load_rejects_other_npz(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a maskscope explanation"):
        Explanation.load(tmp_path / "x.npz")


def test_png_renders_overlay_with_saliency_colours(tmp_path, net2d, square2d):
    expl = SegRISE(net2d).explain(square2d, n_masks=30, grid=4)
    data = expl.to_png(tmp_path / "o.png", cmap="inferno", alpha=1.0, contour=False)
    assert (tmp_path / "o.png").read_bytes() == data
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert rgb.shape == (16, 16, 3)
    hi = np.unravel_index(expl.map.argmax(), expl.map.shape)
    lo = np.unravel_index(expl.map.argmin(), expl.map.shape)
    assert rgb[hi].sum() > rgb[lo].sum() + 200  # inferno: bright yellow vs near black
    assert expl._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_of_volume_uses_a_slice(net3d, cube3d):
    expl = SegRISE(net3d).explain(cube3d, n_masks=8, grid=2)
    assert expl.default_slice() == round(np.nonzero(expl.reference)[0].mean())
    img = Image.open(io.BytesIO(expl.to_png(slice_index=0)))
    assert img.size == (8, 8)
    expl = dataclasses.replace(expl, voxel_spacing=(3.0, 0.5, 1.0))  # (z, y, x)
    across_z = Image.open(io.BytesIO(expl.to_png(slice_index=0, axis=0)))
    assert across_z.size == (16, 8)  # (y, x) at (0.5, 1.0): each x voxel two pixels wide
    across_y = Image.open(io.BytesIO(expl.to_png(slice_index=3, axis=1, contour=False)))
    plain = np.asarray(across_y)
    assert plain.shape[:2] == (24, 8)  # (z, x) at (3.0, 1.0): each z voxel three pixels high
    np.testing.assert_array_equal(plain[::3], plain[2::3])  # nearest neighbour
    odd = dataclasses.replace(expl, voxel_spacing=(2000.0, 1.0, 1.0))  # a header's odd spacing
    capped = Image.open(io.BytesIO(odd.to_png(slice_index=3, axis=1)))
    assert capped.size == (8, 8 * 16)  # stretched 16 times at most
    with pytest.raises(ValueError, match="view must be one of"):
        expl.to_png(view="nope")


def test_to_torch(net2d, square2d):
    expl = SegRISE(net2d).explain(square2d, n_masks=8, grid=4)
    t = expl.to_torch()
    assert isinstance(t, torch.Tensor) and t.shape == (16, 16)
    np.testing.assert_array_equal(t.numpy(), expl.map)
