"""Shared test models: small, deterministic, and easy to reason about."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


class TieError(AssertionError):
    """A test model was evaluated at (or within rounding of) its decision threshold."""


class ThresholdNet(nn.Module):
    """Segments voxels whose local mean exceeds 0.4837: logits (B, 2, *spatial).

    A fixed box filter, so its output depends smoothly on what the masks hide.

    Batched and single-image convolutions round differently on different CPUs (last bits of
    float32), so a voxel whose local mean is within rounding of the threshold may be labelled either
    way. The model refuses such inputs (:class:`TieError`, ``margin`` = 5e-7, a few times the
    largest difference seen between kernels): a test that passes never depends on which kernel
    rounds last.
    """

    #: Decision threshold on the local mean: not a short binary fraction, so that images
    #: of 0s and 1s under RISE masks (multiples of small powers of two) never hit it.
    threshold = 0.4837
    margin = 5e-7

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, width: int = 3) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.conv = conv(in_channels, 1, width, padding=width // 2, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / (in_channels * width**spatial_dims))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.conv(x) - self.threshold
        near = m.abs() < self.margin
        if bool(near.any()):
            raise TieError(
                f"ThresholdNet: {int(near.sum())} voxel(s) within {self.margin:g} of the "
                "threshold; the labels would depend on the CPU's rounding"
            )
        return torch.cat([-m, m], dim=1) * 8.0


class TinyClassifier(nn.Module):
    """Two classes from the mean of the left and right halves of a 2D image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        w = y.shape[-1] // 2
        return torch.stack([y[..., :w].mean((1, 2, 3)), y[..., w:].mean((1, 2, 3))], 1) * 4


class OneChannel(nn.Module):
    """Segments by the local mean of input channel ``signal`` only (of 4)."""

    def __init__(self, signal: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, signal] = 1 / 9
        self.eval()

    def forward(self, x):
        m = self.conv(x) - 0.4837
        return torch.cat([-m, m], 1) * 8


class _Ticks:
    """A clock that moves by one at every reading: every timed chunk takes the same time."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture(autouse=True)
def steady_batch_clock(request, monkeypatch):
    """The measured batch size decided by a steady clock, not by this machine's timing.

    Maps of one seed are equal for any batch size up to float rounding only (the sums of
    other chunks round differently), and which size the tuner keeps follows the timings of
    a shared machine: two runs compared bit for bit could differ by 1e-16 from one run of
    the suite to the next. With every chunk taking one tick, the per-input time falls with
    the size and the tuner keeps the largest it tries, the same in every run. A test that
    needs the real clock is marked ``real_clock``.
    """
    if request.node.get_closest_marker("real_clock") is None:
        monkeypatch.setattr("maskscope._engine.loop.device_clock", lambda device: _Ticks())


class Spy(nn.Module):
    """Wraps a model and counts forward calls and images."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0
        self.images = 0
        self.batch_sizes: list[int] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        self.batch_sizes.append(x.shape[0])
        return self.model(x)


@pytest.fixture
def square2d() -> np.ndarray:
    """16×16 image with a bright 6×7 rectangle off-centre."""
    img = np.zeros((16, 16), np.float32)
    img[4:10, 5:12] = 1.0
    return img


@pytest.fixture
def cube3d() -> np.ndarray:
    """8×8×8 volume with a bright 4×4×3 block."""
    vol = np.zeros((8, 8, 8), np.float32)
    vol[2:6, 2:6, 3:6] = 1.0
    return vol


@pytest.fixture
def net2d() -> ThresholdNet:
    return ThresholdNet(2)


@pytest.fixture
def net3d() -> ThresholdNet:
    return ThresholdNet(3)
