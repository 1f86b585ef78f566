"""Crafted model files whose pickled parts run code when unpickled (for the trust tests)."""

from __future__ import annotations

import io
import pathlib
import pickle
import warnings
import zipfile
from pathlib import Path

import torch


class _WritesMarker:
    """Unpickles to a call of ``Path.write_text(marker, "ran")``: code run from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "ran"))


def _rewrite(src: Path, dst: Path, suffix: str, payload: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        hits = 0
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(suffix):
                data, hits = payload, hits + 1
            zout.writestr(info, data)
    assert hits == 1, f"{src} has no single {suffix} entry"


def _segmenter() -> torch.nn.Conv2d:
    """A fixed 2-class segmenter: foreground where the 3×3 mean exceeds 0.25.

    Fixed weights, not a random initialisation: what it segments must not depend on the
    global random state that earlier tests leave (a random one may segment nothing).
    0.25 is no multiple of 1/9, so images of 0s and 1s never hit a tie.
    """
    model = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[1].fill_(1.0 / 9.0)
        model.bias.copy_(torch.tensor([0.25, 0.0]))
    return model.eval()


def crafted_pt2(tmp: Path, marker: Path) -> Path:
    """A working ``.pt2`` whose pickled sample inputs write ``marker`` when loaded."""
    model = _segmenter()
    dims = ({0: torch.export.Dim("batch")},)
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=dims)
    clean = tmp / "clean.pt2"
    torch.export.save(program, str(clean))
    buf = io.BytesIO()
    torch.save(((_WritesMarker(marker),), {}), buf)
    evil = tmp / "crafted.pt2"
    _rewrite(clean, evil, "sample_inputs/model.pt", buf.getvalue())
    return evil


def crafted_torchscript(tmp: Path, marker: Path) -> Path:
    """A TorchScript archive whose ``data.pkl`` asks for a Python function (protocol 2)."""
    clean = tmp / "clean.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_segmenter()), str(clean))
    evil = tmp / "crafted.pt"
    _rewrite(clean, evil, "/data.pkl", pickle.dumps(_WritesMarker(marker), protocol=2))
    return evil


class _WritesFile(torch.nn.Module):
    """A segmenter whose ``forward`` also writes ``payload`` into ``target`` through
    ``torch.from_file(..., shared=True)``: a TorchScript program writing any file."""

    def __init__(self, target: str, payload: bytes) -> None:
        super().__init__()
        self.conv = _segmenter()
        self.target = target
        self.payload = list(payload)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.from_file(self.target, shared=True, size=len(self.payload), dtype=torch.uint8)
        out.copy_(torch.tensor(self.payload, dtype=torch.uint8))
        return self.conv(x) + (out[:1].float() * 0.0).sum()


def writing_torchscript(tmp: Path, target: Path, payload: bytes = b"written") -> Path:
    """A working TorchScript model that writes ``payload`` into ``target`` when called."""
    path = tmp / "writes.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_WritesFile(str(target), payload)), str(path))
    return path
