"""Factories for ``--model tests.cli.model_factories:NAME``: models that fail or need a choice."""

from __future__ import annotations

import torch
from torch import nn

from tests.conftest import ThresholdNet


class _Raising(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = ThresholdNet(2)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the weights are corrupt\nsecond line of the message")


class _DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = ThresholdNet(2)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        return {"seg": logits, "aux": -logits}


class _NoConv(nn.Module):
    """Nothing tells its spatial dimensionality (no convolution)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x, x - 0.5], 1)


def raising() -> nn.Module:
    """A model that raises when called."""
    return _Raising()


def broken() -> nn.Module:
    """A factory that raises while building the model."""
    raise RuntimeError("no GPU here\nsecond line")


def dict_output() -> nn.Module:
    """A model returning {"seg": logits, "aux": -logits}."""
    return _DictOutput()


def no_conv() -> nn.Module:
    """A model without convolutions."""
    return _NoConv().eval()
