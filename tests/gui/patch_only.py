"""A model that runs on patches of one size only, and records what each call received."""

from __future__ import annotations

import torch
from torch import nn


class PatchOnly(nn.Module):
    """Refuses inputs whose spatial shape is not ``patch``; records each call's batch size.

    Parameters
    ----------
    model
        The model run on the patches.
    patch
        The only spatial shape accepted.
    """

    def __init__(self, model: nn.Module, patch: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.patch = tuple(patch)
        #: The batch size (patches) of every call, in order.
        self.sizes: list[int] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.patch:
            raise ValueError(f"patches of {self.patch} only, got {tuple(x.shape[2:])}")
        self.sizes.append(int(x.shape[0]))
        return self.model(x)
