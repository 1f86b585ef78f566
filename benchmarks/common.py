"""What every benchmark script shares: paths, method labels, the peers, models and images.

The benchmark scripts import this module by name (``benchmarks/`` is on ``sys.path`` when a
script of it runs). It touches maskscope only through its public face.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: The peers' venv (``bash benchmarks/setup_peers.sh``) and the stand-in torchvision.
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
STUBS = HERE / "stubs"

#: maskscope's methods in report order (PixelRISE twice: its two merges).
LABELS = ("RISE", "SegRISE", "PixelRISE-mean", "PixelRISE-max", "HDM")

#: Peer tools and the maskscope methods each is compared with.
PEERS = {
    "interpret-segmentation:RISE": ("PixelRISE-mean", "PixelRISE-max"),
    "interpret-segmentation:HDM": ("HDM",),
    "muppet:SegRISE": ("SegRISE",),
    "captum:Occlusion": ("HDM",),
    "captum-rise": ("RISE",),
    "monai:OcclusionSensitivity": ("HDM",),
}
#: Peers that import torchvision transforms: ``STUBS`` goes on their ``PYTHONPATH``.
NEEDS_STUBS = {"interpret-segmentation:HDM", "muppet:SegRISE"}
#: Peers that evaluate one image per model call; maskscope also runs at batch 1 for them.
UNBATCHED = {
    "interpret-segmentation:RISE",
    "interpret-segmentation:HDM",
    "muppet:SegRISE",
    "captum-rise",
}
#: maskscope at batch 1 (label suffix "@1"): memory compared with the unbatched peers.
OURS_BATCH1 = ("RISE", "SegRISE", "PixelRISE-mean", "HDM")

#: Why a peer cannot explain a volume (read from their code; the error is shown beside it).
NO_3D = {
    "interpret-segmentation:RISE": "2D only: generate_masks draws (N, s, s) grids and resizes "
    "each to the input size",
    "interpret-segmentation:HDM": "2D only: explain() asserts a (C, H, W) image; the masks are "
    "PIL ellipses",
    "muppet:SegRISE": "its Dice attributor permutes one-hot outputs as (0, 3, 1, 2): "
    "(B, K, H, W) only",
    "captum-rise": "documented for 3D masks, but its mask generator loops over two axes and "
    "upsamples with mode='bilinear' (4D tensors only)",
}


class OneByOne(torch.nn.Module):
    """A near-free segmentation model: one 1×1 convolution to 2 classes.

    The convolution (1 input channel → 2 classes) is evaluated as the equivalent broadcast
    multiply-add: oneDNN's kernel for this shape costs ~6.6 ms per 240² image on one CPU
    thread (50× the multiply-add), which would bury the engine's own cost in the floor.
    """

    def __init__(self, dims: int = 2) -> None:
        super().__init__()
        conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
        self.conv = conv(1, 2, 1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([-4.0, 4.0]).reshape(self.conv.weight.shape)
            self.conv.bias[:] = torch.tensor([2.0, -2.0])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, 2) + (1,) * (x.ndim - 2)
        w = self.conv.weight.reshape(shape)
        return torch.addcmul(self.conv.bias.reshape(shape), x, w)


#: Benchmark model names → the bundled model they load (None: the near-free model).
MODELS = {"unet2d": "shapes2d", "1x1": None, "unet3d": "phantom3d", "1x1-3d": None}


def model_and_image(name: str, device: str = "cpu"):
    """(model in eval mode on ``device``, image ``(1, *spatial)``, voxel spacing).

    ``unet2d`` / ``1x1``: ``shapes2d(seed=7)``, 240×240, spacing (1, 1); ``unet3d`` /
    ``1x1-3d``: ``phantom3d(seed=3)``, 64×96×96, spacing (2, 1, 1).
    """
    from maskscope.data import phantom3d, shapes2d
    from maskscope.models import load_model

    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    dims = 3 if name in ("unet3d", "1x1-3d") else 2
    if dims == 2:
        image, spacing = shapes2d(seed=7).image, (1.0, 1.0)
    else:
        ph = phantom3d(seed=3)
        image, spacing = ph.image, tuple(ph.voxel_spacing)
    bundled = MODELS[name]
    model = load_model(bundled, device=device) if bundled else OneByOne(dims)
    return model.to(device).eval(), image, spacing


def batch_used(expl, asked: int | None = None) -> int:
    """The batch size an explanation ran at (after the engine's limits), from its params."""
    params = expl.params
    for key in ("batch_size_used", "chunk_size"):
        value = params.get(key)
        if isinstance(value, int) and value > 0:
            return value
    if asked is None:
        raise KeyError(f"no batch size in the explanation's params: {sorted(params)}")
    return asked


def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def cpu_name() -> str:
    """The processor's model name (``lscpu``; "(KVM VM)" on a virtual machine), or what
    :mod:`platform` knows."""
    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return name
    found = re.search(r"Model name:\s*(.+)", out.stdout)
    name = found.group(1).strip() if found else name
    hypervisor = re.search(r"Hypervisor vendor:\s*(.+)", out.stdout)
    return f"{name} ({hypervisor.group(1).strip()} VM)" if hypervisor else name


def machine_line(device: str = "cpu", threads: int | None = None) -> str:
    """One line naming what the figures were measured on: CPU, cores, torch, threads, device.

    ``threads``: the torch threads of the measuring processes (default: this one's).
    """
    threads = threads or torch.get_num_threads()
    where = f"{cpu_name()}, {os.cpu_count()} cores"
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        where = f"{torch.cuda.get_device_name(torch.device(device))} ({where})"
    return (
        f"{where} · torch {torch.__version__} · {threads} torch thread(s) · "
        f"device {device} · python {sys.version.split()[0]}"
    )


def last_error_line(message: str) -> str:
    """The exception line of a ' / '-joined stderr tail."""
    parts = [p.strip() for p in message.split(" / ") if p.strip()]
    for p in reversed(parts):
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", p):
            return p
    return parts[-1] if parts else message


def by(rows: list[dict], **match) -> list[dict]:
    """The result rows whose fields equal every ``match`` value."""
    return [x for x in rows if all(x.get(k) == v for k, v in match.items())]


def side_summary(rows: list[dict]) -> dict:
    """(tool, model) → medians of wall, peak RSS and growth over repeats, with the count."""
    groups: dict = {}
    for x in rows:
        groups.setdefault((x["tool"], x["model"]), []).append(x)
    out = {}
    for key, xs in groups.items():
        med = {k: statistics.median(x[k] for x in xs) for k in ("wall", "peak_mb", "growth_mb")}
        out[key] = {**xs[0], **med, "repeats": len(xs)}
    return out
