"""Sizes of every part of ``benchmarks/run.py``: the full run, and ``--quick`` (smaller)."""

from __future__ import annotations

import copy

QUICK = {
    "overhead": {
        "n_masks": 200,
        "stride": 10.0,
        "batch_size": 16,
        "repeats": 1,
        "n_masks_3d": 24,
        "stride_3d": 32.0,
        "batch_size_3d": 4,
        "models": ["unet2d", "1x1", "unet3d"],
    },
    "side": {
        "unet2d": {"n": 100, "offset": 10, "repeats": 1},
        "1x1": {"n": 100, "offset": 10, "repeats": 1},
    },
    "n_scaling": {"SegRISE": [500, 8000]},
    "size2d": {"sizes": [128, 256], "n": 64},
    "size3d": {"sizes": [32, 64], "n": 8, "batch_size": 4},
    "target3d": {"size": 128, "n": 16, "batch_size": 16},
    "batch": {"sizes": [4, 16], "n": 128},
    "snapshot": {"n_masks": 1000, "stride": 5.0},
    "early": {"n": 2000, "tols": [0.15, 0.1]},
    "profile": {"n_masks": 200, "stride": 10.0, "n_masks_3d": 12, "stride_3d": 32.0},
    "side3d": {"n": 8, "diameter": 16, "offset": 16, "batch_size": 4},
    "floor": {
        "batches": {"unet2d": [1, 2, 4, 8, 16], "unet3d": [1, 2, 4]},
        "images": {"unet2d": 32, "unet3d": 8},
        "n": {"unet2d": 100, "unet3d": 12},
        "stride": {"unet2d": 16.0, "unet3d": 32.0},
        "peers_n": 100,
        "peers_offset": 16,
        "repeats": 3,
    },
    "timeout": 900,
}

FULL = {
    "overhead": {
        "n_masks": 1000,
        "stride": 5.0,
        "batch_size": 16,
        "repeats": 3,
        "n_masks_3d": 100,
        "stride_3d": 16.0,
        "batch_size_3d": 4,
        "models": ["unet2d", "1x1", "unet3d", "1x1-3d"],
    },
    "side": {
        "unet2d": {"n": 500, "offset": 5, "repeats": 1},
        "1x1": {"n": 250, "offset": 5, "repeats": 3},
    },
    "n_scaling": {
        "SegRISE": [250, 500, 1000, 2000, 4000, 8000],
        "PixelRISE": [250, 500, 2000, 8000],
    },
    "size2d": {"sizes": [128, 256, 384, 512], "n": 200},
    "size3d": {"sizes": [32, 64, 96, 128], "n": 32, "batch_size": 4},
    "target3d": {"size": 128, "n": 64, "batch_size": 16},
    "batch": {"sizes": [1, 4, 16, 64], "n": 512},
    "snapshot": {"n_masks": 1000, "stride": 5.0},
    "early": {"n": 8000, "tols": [0.15, 0.1, 0.075, 0.05]},
    "profile": {"n_masks": 1000, "stride": 5.0, "n_masks_3d": 40, "stride_3d": 16.0},
    "side3d": {"n": 32, "diameter": 16, "offset": 16, "batch_size": 4},
    "floor": {
        "batches": {"unet2d": [1, 2, 4, 8, 16, 32], "unet3d": [1, 2, 4, 8]},
        "images": {"unet2d": 64, "unet3d": 16},
        "n": {"unet2d": 400, "unet3d": 48},
        "stride": {"unet2d": 8.0, "unet3d": 24.0},
        "peers_n": 400,
        "peers_offset": 10,
        "repeats": 3,
    },
    "timeout": 2400,
}


def settings(quick: bool) -> dict:
    """A fresh copy of the sizes of every part: ``QUICK`` or ``FULL``."""
    return copy.deepcopy(QUICK if quick else FULL)
