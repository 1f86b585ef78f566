"""Faulty models for the fuzz probes: each one fails in one well-defined way."""

from __future__ import annotations

import threading

import torch
from torch import nn

from tests.conftest import ThresholdNet

#: Seconds any probe waits at most for a thread or an event (a hang fails, never blocks).
BOUND = 20.0


class Faulty(nn.Module):
    """ThresholdNet with a fault: ``"raise"`` from call ``n`` on, ``"nan"``, ``"shape"``,
    ``"inplace"`` (``x.sub_(1)`` first), ``"batch1"`` (refuses batches > 1), ``"oom"``
    (simulated out-of-memory for batches > 2), ``"interrupt"`` (KeyboardInterrupt at call
    ``n``). Counts calls and images."""

    def __init__(self, fault: str, n: int = 3, spatial_dims: int = 2) -> None:
        super().__init__()
        self.net = ThresholdNet(spatial_dims)
        self.fault, self.n = fault, n
        self.in_channels = 1  # declared, as a model that knows its input may say
        self.calls = 0
        self.images = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        f = self.fault
        if f == "raise" and self.calls >= self.n:
            raise RuntimeError(f"the model broke down at call {self.calls}")
        if f == "interrupt" and self.calls == self.n:
            raise KeyboardInterrupt
        if f == "inplace":
            x.sub_(1.0)
            return self.net(x + 1.0)
        if f == "batch1" and x.shape[0] != 1:
            raise RuntimeError(f"this model takes one image at a time, got {x.shape[0]}")
        if f == "oom" and x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        out = self.net(x)
        if f == "nan" and self.calls >= self.n:
            out = out.clone()
            out[:, :, 0, 0] = float("nan")
        if f == "shape" and self.calls >= self.n:
            out = out[..., :-1]
        return out


class Gated(nn.Module):
    """ThresholdNet that blocks in every call after the first until ``gate`` opens.

    ``entered`` is set when a blocked call starts; ``calls`` counts calls. For probes that
    must act while a chunk is running, without any timing assumption.
    """

    def __init__(self, spatial_dims: int = 2, free_calls: int = 1) -> None:
        super().__init__()
        self.net = ThresholdNet(spatial_dims)
        self.free_calls = free_calls
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.free_calls:
            self.entered.set()
            if not self.gate.wait(BOUND):
                raise TimeoutError("the probe never opened the gate")
        return self.net(x)
