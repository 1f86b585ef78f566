"""Checking a requested device before anything is put on it."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_device"]


def check_device(device: Any, what: str = "device") -> torch.device:
    """A ``torch.device`` that exists here, or a ``ValueError`` saying why not.

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``.
    what
        The argument's name, for the message.
    """
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"{what} must be a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps', "
            f"got {device!r}"
        ) from None
    if dev.type == "meta":
        raise ValueError(f"{what}={str(dev)!r} holds no data: use 'cpu' or a GPU")
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(
                f"{what}={str(dev)!r} was asked, but this torch ({torch.__version__}) was "
                "built without CUDA: install a CUDA build of torch, or use 'cpu'"
            )
        if not torch.cuda.is_available():
            raise ValueError(f"{what}={str(dev)!r} was asked, but no CUDA GPU is visible here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"{what}={str(dev)!r} was asked, but there are {torch.cuda.device_count()} "
                "CUDA devices (0-based)"
            )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{what}={str(dev)!r} was asked, but MPS is not available here")
    return dev
