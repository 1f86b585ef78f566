"""A small U-Net for 2D and 3D segmentation that is fast on a CPU.

Two choices keep it cheap without giving up full-resolution output:

- a *space-to-depth stem*: the input is folded into channels by an integer factor per axis
  (``stem=4`` turns ``(C, 240, 240)`` into ``(16·C, 60, 60)``), the network runs at that lower
  resolution, and a *depth-to-space head* unfolds the last features into one logit per input
  pixel. The raw folded input is fed to the head as a skip connection, so edges stay sharp;
- a *global-context* path at the bottleneck: the spatial mean and maximum of the deepest features
  go through a small MLP and are added back everywhere, so a decision in one part of the image can
  depend on content anywhere else.

Any input size is accepted: the input is padded to a multiple of the stem, pooling rounds up and
each decoder level is resized to its skip connection, and the output is cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet"]


def _per_axis(value: int | Sequence[int], spatial_dims: int, name: str) -> tuple[int, ...]:
    """Return ``value`` as a tuple with one positive int per spatial axis."""
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims or any(int(v) < 1 for v in values):
        raise ValueError(
            f"{name} must be a positive int or {spatial_dims} positive ints, got {value!r}"
        )
    return tuple(int(v) for v in values)


def space_to_depth(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Fold blocks of ``factors`` voxels into channels.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C, *spatial)`` with each spatial size divisible by its factor.
    factors : sequence of int
        Block size per spatial axis.

    Returns
    -------
    torch.Tensor
        ``(B, C·prod(factors), *[s // f for s, f in zip(spatial, factors)])``.
    """
    b, c, *spatial = x.shape
    d = len(spatial)
    shape = [b, c]
    for s, f in zip(spatial, factors, strict=True):
        shape += [s // f, f]
    x = x.reshape(shape)
    # (B, C, s0, f0, s1, f1, ...) -> (B, C, f0, f1, ..., s0, s1, ...)
    order = [0, 1] + [3 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)]
    x = x.permute(order)
    out_spatial = [s // f for s, f in zip(spatial, factors, strict=True)]
    n_fold = 1
    for f in factors:
        n_fold *= f
    return x.reshape([b, c * n_fold, *out_spatial])


def depth_to_space(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C·prod(factors), *spatial)``.
    factors : sequence of int
        Block size per spatial axis.

    Returns
    -------
    torch.Tensor
        ``(B, C, *[s * f for s, f in zip(spatial, factors)])``.
    """
    b, cf, *spatial = x.shape
    d = len(spatial)
    n_fold = 1
    for f in factors:
        n_fold *= f
    x = x.reshape([b, cf // n_fold, *factors, *spatial])
    # (B, C, f0, f1, ..., s0, s1, ...) -> (B, C, s0, f0, s1, f1, ...)
    order = [0, 1]
    for i in range(d):
        order += [2 + d + i, 2 + i]
    x = x.permute(order)
    return x.reshape([b, cf // n_fold, *(s * f for s, f in zip(spatial, factors, strict=True))])


class _ConvBlock(nn.Sequential):
    """``n_convs`` × (3×3[×3] convolution, batch norm, ReLU)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, n_convs: int = 2):
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [
                conv(
                    in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False
                ),
                norm(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class _GlobalContext(nn.Module):
    """Add an MLP of the spatial mean and max of the features to every position."""

    def __init__(self, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2 * channels, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        pooled = torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1)
        g = self.mlp(pooled)
        return F.relu(x + g.reshape(*g.shape, *(1,) * (x.ndim - 2)))


class UNet(nn.Module):
    """A small U-Net for 2D or 3D images, returning per-pixel logits.

    Parameters
    ----------
    spatial_dims : {2, 3}
        Number of spatial axes of the input.
    in_channels : int
        Number of input channels ``C``.
    out_channels : int
        Number of output classes ``K`` (logits; apply softmax or argmax over dim 1).
    features : sequence of int
        Channels per resolution level, from the stem level down to the bottleneck. Each level
        after the first halves the resolution with max pooling.
    stem : int or sequence of int
        Space-to-depth factor per spatial axis; 1 runs the first level at full resolution.
    n_convs : int
        Convolutions per encoder and decoder block.
    global_context : bool
        Add the global mean/max MLP at the bottleneck.

    Notes
    -----
    Input ``(B, C, *spatial)`` of any spatial size; output ``(B, K, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (16, 32, 48, 64),
        *,
        stem: int | Sequence[int] = 2,
        n_convs: int = 2,
        global_context: bool = True,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if len(features) < 1:
            raise ValueError(f"features must list at least one level, got {features!r}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.features = tuple(int(f) for f in features)
        self.stem = _per_axis(stem, spatial_dims, "stem")
        n_fold = 1
        for f in self.stem:
            n_fold *= f
        folded_channels = in_channels * n_fold

        self.encoder = nn.ModuleList()
        previous = folded_channels
        for f in self.features:
            self.encoder.append(_ConvBlock(spatial_dims, previous, f, n_convs))
            previous = f
        self.context = _GlobalContext(self.features[-1]) if global_context else nn.Identity()
        self.decoder = nn.ModuleList()
        for level in range(len(self.features) - 2, -1, -1):
            skip = self.features[level] + (folded_channels if level == 0 else 0)
            self.decoder.append(
                _ConvBlock(
                    spatial_dims, self.features[level + 1] + skip, self.features[level], n_convs
                )
            )
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(self.features[0] + folded_channels, out_channels * n_fold, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, K, *spatial)`` for input ``(B, C, *spatial)``."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (B, {self.in_channels}, "
                f"{', '.join(['...'] * self.spatial_dims)}), got {tuple(x.shape)}"
            )
        spatial = x.shape[2:]
        pad: list[int] = []
        for size, f in zip(reversed(spatial), reversed(self.stem), strict=True):
            pad += [0, (-size) % f]
        if any(pad):
            x = F.pad(x, pad)
        folded = space_to_depth(x, self.stem)

        pool = F.max_pool2d if self.spatial_dims == 2 else F.max_pool3d
        skips: list[torch.Tensor] = []
        h = folded
        for level, block in enumerate(self.encoder):
            if level > 0:
                h = pool(h, 2, ceil_mode=True)
            h = block(h)
            skips.append(h)
        h = self.context(h)
        for i, block in enumerate(self.decoder):
            level = len(self.features) - 2 - i
            skip = skips[level]
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            parts = [h, skip, folded] if level == 0 else [h, skip]
            h = block(torch.cat(parts, dim=1))
        out = depth_to_space(self.head(torch.cat([h, folded], dim=1)), self.stem)
        crop = tuple(slice(0, s) for s in spatial)
        return out[(slice(None), slice(None), *crop)]
