"""A real case: nibabel's sample MRI, a label made from it, a MONAI 3D U-Net trained on it.

Everything is reproducible (fixed seeds, one torch thread) and lives in the caller's
temporary folder. The U-Net needs sizes divisible by 4; the training pads the volume and
:class:`PadToFour` (saved inside the TorchScript file) pads inputs and crops outputs.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
MULTIPLE = 4


def zscore(data: np.ndarray) -> np.ndarray:
    """MONAI ``NormalizeIntensity()``: (x − mean) / std over the whole volume."""
    from monai.transforms import NormalizeIntensity

    return np.asarray(NormalizeIntensity()(np.asarray(data, np.float32)), np.float32)


def make_label(data: np.ndarray) -> np.ndarray:
    """The largest bright structure: z-scored, smoothed (σ = 1 voxel), above 0.8."""
    smooth = ndimage.gaussian_filter(zscore(data), 1.0)
    parts, n = ndimage.label(smooth > 0.8)
    sizes = ndimage.sum(np.ones_like(parts), parts, range(1, n + 1))
    return (parts == 1 + int(np.argmax(sizes))).astype(np.uint8)


def _pad_amounts(spatial) -> list[int]:
    pads: list[int] = []
    for s in reversed(spatial):  # F.pad takes the last axis first
        pads += [0, (-s) % MULTIPLE]
    return pads


class PadToFour(torch.nn.Module):
    """Pads ``(B, C, D, H, W)`` with zeros up to multiples of 4, crops the output back."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2], x.shape[3], x.shape[4]
        padded = F.pad(x, [0, (-w) % 4, 0, (-h) % 4, 0, (-d) % 4])
        return self.net(padded)[:, :, :d, :h, :w]


def unet() -> torch.nn.Module:
    """``monai.networks.nets.UNet(3, 1, 2, channels=(8, 16, 32), strides=(2, 2))``."""
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2))


def train(image: np.ndarray, label: np.ndarray, steps: int = 80) -> torch.nn.Module:
    """Train the U-Net on one normalised volume in nibabel order; returns it wrapped, eval."""
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    net = unet()
    x = F.pad(torch.from_numpy(image)[None, None], _pad_amounts(image.shape))
    y = F.pad(torch.from_numpy(label.astype(np.int64))[None, None], _pad_amounts(label.shape))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    return PadToFour(net).eval()


def save_torchscript(model: torch.nn.Module, path: Path, shape) -> Path:
    """Trace the padded model at ``(2, 1, *shape)`` and save it."""
    example = torch.zeros((2, 1, *shape))
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return path
