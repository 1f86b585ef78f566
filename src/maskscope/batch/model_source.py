"""Where a batch's model comes from, and which device and threads a process gives it.

A :class:`ModelSource` is small and picklable: a model spec (a bundled name, a file, a
``package.module:factory``) is loaded where it is used; a model object (any picklable
callable) travels once, inside the worker plugin, never with every task.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelSource", "cpu_threads", "pick_device"]


def cpu_threads(n_workers: int) -> int:
    """Torch threads per worker when ``n_workers`` share this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, n_workers))


def pick_device(choice: str, index: int | None = None) -> str:
    """A torch device name for ``choice`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    ``"auto"`` is a CUDA GPU when one is visible (GPU ``index`` modulo their number, so
    the workers of one machine spread over its GPUs), else the CPU.
    """
    import torch

    if choice == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        choice = "cuda"
    if choice == "cuda" and index is not None and torch.cuda.is_available():
        return f"cuda:{index % torch.cuda.device_count()}"
    return choice


@dataclass(frozen=True)
class ModelSource:
    """A model to load: a spec, or a picklable model object.

    Attributes
    ----------
    spec
        What :func:`maskscope.models.load_model` takes, or a callable model.
    trusted
        Allow a ``.pt2`` file (see :func:`maskscope.models.load_model`).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    threads
        Torch threads of the process that runs it, and its share of the cores: a run then
        pipelines its chunks only with a core of that share to spare (None: leave torch's
        setting, all cores).
    """

    spec: Any
    trusted: bool = False
    device: str = "auto"
    threads: int | None = None

    @property
    def label(self) -> str:
        """The spec, or the model's class name."""
        return self.spec if isinstance(self.spec, str) else type(self.spec).__name__

    def load(self, index: int | None = None) -> tuple[Callable, str]:
        """Set the threads, load the model on its device; returns ``(model, device)``."""
        import torch

        from .._engine.pipeline import set_cores
        from ..models import UntrustedModelError, load_model
        from ..wording import load_for_frontend

        if self.threads is not None:  # this process's share of the cores
            torch.set_num_threads(int(self.threads))
            set_cores(int(self.threads))
        device = pick_device(self.device, index)
        if not isinstance(self.spec, str):
            model = self.spec
            if isinstance(model, torch.nn.Module):
                from .._engine.model_call import is_exported_module

                model = model.to(device)
                if not is_exported_module(model):  # an exported program's mode is fixed
                    model = model.eval()
            return model, device
        try:
            model = load_for_frontend(load_model, self.spec, device=device, trusted=self.trusted)
        except UntrustedModelError as exc:
            raise UntrustedModelError(exc.path, "--trust-model (trusted=True)") from None
        return model, device
