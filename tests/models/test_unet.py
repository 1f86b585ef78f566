"""The U-Net: output shapes for any input size, in 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from maskscope.models import UNet
from maskscope.models.unet import depth_to_space, space_to_depth


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (5, 9)])
@pytest.mark.parametrize("stem", [1, 2, 4])
def test_2d_any_size(size: tuple[int, int], stem: int) -> None:
    net = UNet(2, in_channels=2, out_channels=3, features=(4, 8, 8), stem=stem).eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 2, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("size", [(9, 20, 23), (16, 16, 16)])
def test_3d_any_size(size: tuple[int, int, int]) -> None:
    net = UNet(3, in_channels=1, out_channels=2, features=(4, 8), stem=(1, 2, 2)).eval()
    with torch.inference_mode():
        out = net(torch.rand(1, 1, *size))
    assert out.shape == (1, 2, *size)


def test_single_level_and_no_global_context() -> None:
    net = UNet(2, 1, 2, features=(4,), stem=2, global_context=False).eval()
    with torch.inference_mode():
        assert net(torch.rand(1, 1, 11, 12)).shape == (1, 2, 11, 12)


@pytest.mark.parametrize("factors", [(2, 2), (1, 4), (2, 2, 2), (1, 2, 4)])
def test_space_to_depth_round_trip(factors: tuple[int, ...]) -> None:
    x = torch.rand(2, 3, *(4 * f for f in factors))
    folded = space_to_depth(x, factors)
    n_fold = 1
    for f in factors:
        n_fold *= f
    assert folded.shape == (2, 3 * n_fold, *(4,) * len(factors))
    torch.testing.assert_close(depth_to_space(folded, factors), x)


def test_batch_items_are_independent_in_eval_mode() -> None:
    torch.manual_seed(0)
    net = UNet(2, 1, 2, features=(4, 8), stem=2).eval()
    x = torch.rand(3, 1, 20, 20)
    with torch.inference_mode():
        torch.testing.assert_close(net(x)[1:2], net(x[1:2]))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="spatial_dims"):
        UNet(4)
    with pytest.raises(ValueError, match="stem"):
        UNet(3, stem=(2, 2))
    with pytest.raises(ValueError, match=r"expected input \(B, 1"):
        UNet(2, 1, 2, features=(4,))(torch.rand(1, 3, 8, 8))
