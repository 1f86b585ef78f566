"""Cases for the quality benchmarks: the bundled 2D sample, a real MRI volume with a MONAI U-Net.

The real case is built from data that a package ships, with a model that maskscope did not
make: nibabel's test volume ``anatomical.nii`` (33×41×25, 2 mm voxels, big-endian int16), a
label of its bright tissue (smoothed intensity above its 75th percentile, largest connected
component), and a ``monai.networks.nets.UNet`` trained on it for a few hundred Adam steps.
The model sees the z-scored volume in nibabel's (i, j, k) order, as a MONAI pipeline gives it.

    python benchmarks/cases.py        # trains the U-Net and prints its Dice
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Case:
    """A model, an image ``(C, *spatial)``, its label and what to call it."""

    name: str
    model: nn.Module
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, ...]
    decisive: np.ndarray | None = None  # the shape the model's rule depends on (shapes2d)


class PadToMultiple(nn.Module):
    """Pads the spatial axes to a multiple of ``k`` (replicate), crops the output back."""

    def __init__(self, net: nn.Module, k: int) -> None:
        super().__init__()
        self.net = net
        self.k = k
        self.in_channels = 1
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        pad = []
        for s in reversed(spatial):
            extra = (-s) % self.k
            pad += [extra // 2, extra - extra // 2]
        y = self.net(nn.functional.pad(x, pad, mode="replicate"))
        index = [slice(None), slice(None)]
        for s, (lo, _) in zip(spatial, zip(pad[-2::-2], pad[-1::-2], strict=True), strict=True):
            index.append(slice(lo, lo + s))
        return y[tuple(index)]


def anatomical() -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """nibabel's ``anatomical.nii`` as native float32 (i, j, k), its label and spacing."""
    import nibabel as nib
    from scipy import ndimage

    path = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "anatomical.nii")
    img = nib.load(path)
    raw = np.asarray(img.dataobj).astype(np.float32)  # big-endian int16 on disk
    smooth = ndimage.gaussian_filter(raw, 1.0)
    mask = smooth > np.percentile(smooth, 75)
    labels, _ = ndimage.label(mask)
    largest = np.bincount(labels.ravel())[1:].argmax() + 1
    label = (labels == largest).astype(np.int64)
    return raw, label, tuple(float(z) for z in img.header.get_zooms()[:3])


def zscore(vol: np.ndarray) -> np.ndarray:
    """MONAI's NormalizeIntensity over the whole volume."""
    return ((vol - vol.mean()) / vol.std()).astype(np.float32)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean arrays."""
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def mri_model() -> PadToMultiple:
    """The (untrained) MONAI U-Net of :func:`mri_case`, padded to a multiple of 4."""
    from monai.networks.nets import UNet

    net = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2))
    return PadToMultiple(net, 4)


@functools.lru_cache(maxsize=1)
def mri_case(steps: int = 300, seed: int = 0) -> Case:
    """The real MRI volume with a trained MONAI U-Net (Dice printed by ``__main__``)."""
    from monai.losses import DiceCELoss

    raw, label, spacing = anatomical()
    x = torch.from_numpy(zscore(raw))[None, None]
    y = torch.from_numpy(label)[None, None]
    torch.manual_seed(seed)
    model = mri_model()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    return Case("mri3d", model, zscore(raw)[None], label, spacing)


def shapes_case() -> Case:
    """The bundled 2D sample (``shapes2d(seed=1)``) with the bundled U-Net."""
    from maskscope.data import shapes2d
    from maskscope.models import load_model

    sample = shapes2d(seed=1)
    decisive = sample.masks[sample.right_shape]  # which shape is segmented depends on it
    return Case(
        "shapes2d", load_model("shapes2d"), sample.image, sample.label, (1.0, 1.0), decisive
    )


#: The cases by name.
CASES = {"shapes2d": shapes_case, "mri3d": mri_case}


def case_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every quality script shares: cases, threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, default=1)
    return parser


def cases_of(args: argparse.Namespace) -> list[Case]:
    """Set the torch threads, print the set-up, and build the cases asked for."""
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)", flush=True)
    return [CASES[name]() for name in args.cases]


def main() -> None:
    case = mri_case()
    with torch.inference_mode():
        pred = case.model(torch.from_numpy(case.image)[None]).argmax(1)[0].numpy()
    print(f"{case.name}: image {case.image.shape}, label {int(case.label.sum())} voxels")
    print(f"U-Net prediction {int(pred.sum())} voxels, Dice {dice(pred, case.label):.3f}")


if __name__ == "__main__":
    main()
