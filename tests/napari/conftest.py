"""Fixtures of the napari tests: the plugin's manifest, tiny models, run helpers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from napari.utils.notifications import NotificationSeverity, notification_manager
from npe2 import PluginManager, PluginManifest
from torch import nn

import maskscope
from tests.conftest import ThresholdNet

ROOT = Path(__file__).resolve().parents[2]
#: The manifest next to the package's ``__init__.py``.
PACKAGE_MANIFEST = Path(maskscope.__file__).parent / "napari.yaml"


class Threshold(ThresholdNet):
    """The shared test model, without its near-tie guard.

    The napari tests compare a widget's run with ``explain()`` at the same batch sizes on the
    same machine, so the same kernels round the same way; on the real-valued shapes sample a
    local mean within 5e-7 of the threshold is a matter of chance among millions of voxels.
    The threshold (0.4837) still rules out exact ties of 0/1 images under RISE masks.
    """

    margin = 0.0


class Slow(nn.Module):
    """Wraps a model and sleeps at every call (for cancelling mid-run)."""

    def __init__(self, model: nn.Module, seconds: float = 0.02) -> None:
        super().__init__()
        self.model = model
        self.seconds = seconds
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.model(x)


class FailsAfter(nn.Module):
    """Wraps a model and raises from its ``n``-th call on."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.model = model
        self.n = n
        self.calls = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError("the model broke down\nsecond line of the message")
        return self.model(x)


@pytest.fixture(scope="session")
def plugin() -> PluginManifest:
    """maskscope's manifest in npe2's plugin manager (registered from the package if needed).

    In an installed environment (editable or wheel) npe2 discovers the plugin itself; when
    the tests run from the source tree (``PYTHONPATH=src``) the manifest next to the
    package's ``__init__.py`` is registered once, as discovery would do.
    """
    pm = PluginManager.instance()
    pm.discover()
    try:
        return pm.get_manifest("maskscope")
    except KeyError:
        pm.register(PluginManifest.from_file(PACKAGE_MANIFEST))
        return pm.get_manifest("maskscope")


@pytest.fixture
def model2d() -> Threshold:
    return Threshold(2)


@pytest.fixture
def model3d() -> Threshold:
    return Threshold(3)


def run_to_end(qtbot, widget, timeout: int = 30_000):
    """Start a run, wait for its first snapshot and its end; return the worker."""
    with qtbot.waitSignal(widget.run_finished, timeout=timeout):
        worker = widget.run()
        assert worker is not None, widget.status.text()
    return worker


def saliency_layers(viewer) -> list:
    """The viewer's maskscope map layers (the prediction Labels layer left out)."""
    return [
        ly
        for ly in viewer.layers
        if "maskscope" in ly.metadata and ly.metadata["maskscope"].get("role") != "prediction"
    ]


def square_image(size: int = 48) -> np.ndarray:
    """A dark image with one bright square off-centre."""
    img = np.zeros((size, size), np.float32)
    img[10:22, 26:40] = 1.0
    return img


@pytest.fixture
def errors():
    """Error notifications shown during the test."""
    start = len(notification_manager.records)

    def new() -> list[str]:
        return [
            str(n.message)
            for n in notification_manager.records[start:]
            if n.severity == NotificationSeverity.ERROR
        ]

    return new
