"""Crop windows, windowed masks and the receptive-field probe."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from maskscope._engine.crop import ReceptiveFieldError, WindowMasks, crop_window, receptive_field
from maskscope._engine.masks import RiseMasks


@pytest.mark.parametrize("sampling", ["iid", "stratified"])
@pytest.mark.parametrize(
    ("spatial", "window"),
    [
        ((20, 30, 25), (slice(3, 15), slice(10, 30), slice(0, 9))),
        ((33, 41), (slice(0, 33), slice(7, 20))),
    ],
)
def test_window_masks_are_full_masks_cropped(spatial, window, sampling):
    full = RiseMasks(spatial, 4, 0.5, 3, sampling=sampling)(250, 262)
    crop = WindowMasks(spatial, window, 4, 0.5, 3, sampling=sampling)
    got = crop(250, 262)
    assert got.shape == (12, 1, *(s.stop - s.start for s in window))
    torch.testing.assert_close(got, full[(slice(None), slice(None), *window)], rtol=0, atol=3e-7)
    batch = crop.batch(250, 262)
    lhs, y = batch.factors
    torch.testing.assert_close(torch.bmm(lhs, y).reshape(got.shape), batch.masks)
    slab = crop(250, 262, rows=(2, 5))
    torch.testing.assert_close(slab, got.clone()[:, :, 2:5], rtol=0, atol=3e-7)


def test_crop_window_grows_clips_and_aligns():
    region = np.zeros((64, 50), dtype=bool)
    region[20:24, 3:9] = True
    assert crop_window(region, 5) == (slice(15, 29), slice(0, 14))
    # start rounded down to a multiple of 8, size up to one
    assert crop_window(region, 5, align=8) == (slice(8, 32), slice(0, 16))
    # at the end of the image the start moves down so the size stays a multiple
    region[:] = False
    region[60:63, 45:48] = True
    # (64 is a multiple of 8, so the start stays aligned; 50 is not: the size wins)
    assert crop_window(region, 3, align=8) == (slice(56, 64), slice(34, 50))
    assert crop_window(region, (0, 100)) == (slice(60, 63), slice(0, 50))
    with pytest.raises(ValueError, match="margin and align need one value or 2"):
        crop_window(region, (1, 2, 3))


def _conv_net(kernels: tuple[int, ...], dims: int = 3) -> nn.Module:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    layers: list[nn.Module] = []
    ch = 1
    for i, k in enumerate(kernels):
        out = 2 if i == len(kernels) - 1 else 3
        layers += [conv(ch, out, k, padding=k // 2), nn.Tanh()]
        ch = out
    torch.manual_seed(0)
    return nn.Sequential(*layers[:-1]).eval()


@pytest.mark.parametrize(("kernels", "radius"), [((3,), 1), ((3, 5), 3), ((3, 3, 7), 5)])
def test_receptive_field_of_plain_convolutions(kernels, radius):
    assert receptive_field(_conv_net(kernels), 1, 3, probe=24) == (radius,) * 3
    assert receptive_field(_conv_net(kernels, 2), 1, 2, probe=(24, 30)) == (radius,) * 2


def test_receptive_field_of_a_strided_net_covers_every_phase():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 3, 3, padding=1),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(3, 2, 1),
    ).eval()
    r = receptive_field(net, 1, 2, probe=32)
    # brute force: an impulse at every position of the probe's central 4x4 block
    x0 = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y0 = net(x0)
        far = 0
        for i in range(14, 18):
            for j in range(14, 18):
                x1 = x0.clone()
                x1[..., i, j] += 10
                changed = torch.nonzero((net(x1) - y0).abs().amax((0, 1)) > 0)
                far = max(far, int((changed - torch.tensor([i, j])).abs().max()))
    assert max(r) == far


def test_receptive_field_of_a_global_layer_is_refused():
    net = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.InstanceNorm3d(2)).eval()
    with pytest.raises(ReceptiveFieldError, match=re.escape("up to the probe's edge along axis")):
        receptive_field(net, 1, 3, probe=16)
