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

from maskscope import HDM, ROI, SegRISE, SlidingWindow, receptive_field


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


def positive_mass(expl, region: np.ndarray) -> float:
    """Share of the positive saliency (the map minus its median) that lies in ``region``."""
    s = np.clip(expl.map - np.median(expl.map), 0, None)
    return float(s[region].sum() / max(s.sum(), 1e-300))


def case_lesion(quick: bool) -> None:
    """Two lesions; a point on one, grown by 2 voxels, explained; mass near each lesion.

    "Near" is within one RISE grid cell (8 voxels at grid 8 on 64 voxels): the masks'
    resolution, over which a cell's saliency spreads.
    """
    from scipy import ndimage

    img, a, b = two_lesions()
    model = LocalMean()
    point = tuple(int(v) for v in np.argwhere(a).mean(0))
    roi = ROI.from_point(point, grow=2)
    near_a = ndimage.binary_dilation(a, iterations=8)
    near_b = ndimage.binary_dilation(b, iterations=8)
    n = 300 if quick else 1000
    runs = [
        ("SegRISE, default (crop auto)", SegRISE(model), dict(n_masks=n, grid=8, batch_size=8)),
        (
            "SegRISE, whole volume",
            SegRISE(model),
            dict(crop=False, n_masks=n, grid=8, batch_size=8),
        ),
        ("HDM, whole volume (its default)", HDM(model), dict(diameter=6, stride=4, batch_size=8)),
    ]
    for label, method, kw in runs:
        expl, t = timed(lambda method=method, kw=kw: method.explain(img, roi=roi, **kw))
        on_a, on_b = positive_mass(expl, near_a), positive_mass(expl, near_b)
        ok = on_a >= 0.9 and on_b <= 0.01
        print(
            f"lesion: {label} ({expl.n_total} perturbations): {on_a:.1%} of the positive "
            f"mass near the explained lesion, {on_b:.1%} near the other; {t:.1f} s -> "
            f"{'OK' if ok else 'below target'}"
        )


def case_crop(quick: bool) -> None:
    """A 3D U-Net on 256×256×128 (or smaller), a 32³ ROI: crop mode vs the whole volume."""
    from monai.networks.nets import UNet

    shape = (128, 128, 64) if quick else (256, 256, 128)
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(8, 16, 32), strides=(2, 2), norm="batch").eval()
    rng = np.random.default_rng(2)
    img = rng.standard_normal(shape).astype(np.float32)
    c = tuple(n // 2 for n in shape)
    box = ",".join(f"{m - 16}:{m + 16}" for m in c)
    margin = receptive_field(net, 1, 3, probe=64)
    n = 8 if quick else 16
    kw = dict(roi=box, n_masks=n, grid=8, batch_size=2, target=1)
    crop, t_crop = timed(lambda: SegRISE(net, pad_multiple=4).explain(img, crop=True, **kw))
    full, t_full = timed(lambda: SegRISE(net, pad_multiple=4).explain(img, crop=False, **kw))
    win = tuple(slice(a, b) for a, b in crop.params["crop_window"])
    diff = float(np.abs(crop.map[win] - full.map[win]).max())
    speed = t_full / t_crop
    print(
        f"crop: MONAI UNet(8,16,32) on {shape}, ROI {box}, receptive field {margin}, window "
        f"{crop.params['crop_window']}, N={n}: whole volume {t_full:.1f} s, crop {t_crop:.1f} s "
        f"({speed:.1f}x); max |map difference| in the window {diff:.1e} -> "
        f"{'OK' if speed >= 5 and diff < 1e-6 else 'FAIL'}"
    )


def case_channels(quick: bool) -> None:
    """A 4-channel phantom with the signal in channel 2 only: per-channel importance."""
    img0, _, _ = two_lesions((32, 48, 48))
    rng = np.random.default_rng(5)
    img = np.stack([img0 if c == 2 else rng.permutation(img0.ravel()).reshape(img0.shape)
                    for c in range(4)])  # fmt: skip
    model = LocalMean(in_channels=4)
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.weight[:, 2] = 1 / 125
    n = 200 if quick else 500
    expl, t = timed(
        lambda: SegRISE(model).explain(img, per_channel=True, n_masks=n, grid=6, batch_size=8)
    )
    imp = expl.extras["channel_importance"]
    order = [int(i) for i in np.argsort(-imp)]
    print(
        f"channels: SegRISE N={n} per channel, importance {np.round(imp, 4).tolist()}, ranked "
        f"{order}; {t:.1f} s -> {'OK' if order[0] == 2 else 'FAIL'}"
    )


class ThreeBalls(nn.Module):
    """Four classes by the local mean: ~0.3, ~0.6, ~0.9 (three lesions of three classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 27)
        self.register_buffer("centres", torch.tensor([0.0, 0.3, 0.6, 0.9]).reshape(1, 4, 1, 1, 1))
        self.calls = 0
        self.eval()

    def forward(self, x):
        self.calls += x.shape[0]
        return -((self.conv(x) - self.centres) ** 2) * 60.0


def case_targets(quick: bool) -> None:
    """Three classes from one run: forwards, and equality with three single-target runs."""
    shape = (32, 48, 48)
    img = np.zeros(shape, np.float32)
    for k, (y, x) in enumerate([(12, 12), (24, 36), (36, 20)], start=1):
        img[ball(shape, (16, y, x), 6)] = 0.3 * k
    model = ThreeBalls()
    n = 100 if quick else 300
    kw = dict(n_masks=n, grid=6, batch_size=8)
    expl, t_all = timed(lambda: SegRISE(model).explain(img, targets=[1, 2, 3], **kw))
    calls_all = model.calls
    same, t_single = True, 0.0
    for k in (1, 2, 3):
        single, t = timed(lambda k=k: SegRISE(model).explain(img, target=k, **kw))
        t_single += t
        same &= bool(np.array_equal(single.map, expl.extras[f"target_{k}"]))
    print(
        f"targets: SegRISE N={n}, classes 1, 2, 3 in one run: {calls_all} forwards "
        f"({t_all:.1f} s) vs {model.calls - calls_all} for three runs ({t_single:.1f} s); "
        f"maps equal to the single-target runs: {same} -> "
        f"{'OK' if same and calls_all == n + 1 else 'FAIL'}"
    )


CASES = {
    "lesion": case_lesion,
    "crop": case_crop,
    "sliding": case_sliding,
    "channels": case_channels,
    "targets": case_targets,
}


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
