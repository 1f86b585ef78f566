"""A second control variate for the RISE sums: the share of the explained region a mask keeps.

The centred estimator (:mod:`~.weighted_sum`) removes the masks' coverage noise, but the
weights still vary with everything the masks hide, and at a voxel ``x`` all of that
variation outside ``x``'s own cells is noise. For a segment, most of it is explained by one
number per mask: ``φᵢ``, the mean of ``mᵢ`` over the explained region, minus ``p``. The
covariate estimator regresses the weights on ``φ`` and adds back what the regression took
out, with its exact expectation:

    ``S(x) = w̄ + [Σ (wᵢ − w̄) mᵢ(x) − β (Σ (φᵢ − φ̄) mᵢ(x) − (n − 1) C(x))] / (n p)``

with ``β`` the least-squares slope of ``w`` on ``φ`` and ``C(x) = Cov(φ, m(x))``. ``C`` is known
without any model call: the grids' cells are independent and the shifts uniform, so

    ``Cov(m(x), m(y)) = p (1 − p) Πₐ kₐ(xₐ, yₐ)``, ``kₐ(i, j) = mean_s ⟨Rₐ[s + i], Rₐ[s + j]⟩``

over the shifts ``s`` of axis ``a`` (``Rₐ`` its interpolation matrix): one small matrix per
axis, and ``C`` is the region's indicator passed through them. ``E[Σ (φᵢ − φ̄) mᵢ(x)] =
(n − 1) C(x)``, so the correction has expectation zero up to the usual ``O(1/n)`` of an
estimated slope: the map keeps the centred map's expectation, and its noise drops by the
share of the weights' variance that ``φ`` explains (``docs/methods.md`` shows the seed
agreement it gives).
"""

from __future__ import annotations

import torch

__all__ = ["RegionCovariate", "mask_kernels"]


def mask_kernels(masks) -> list[torch.Tensor]:
    """Per-axis factors ``kₐ (sizeₐ, sizeₐ)`` of the covariance of RISE masks (float64).

    ``masks`` is a :class:`~.masks.RiseMasks` (or a window of one): its interpolation
    matrices, cells, origin and rendered shape give ``Cov(m(x), m(y)) = p (1 − p) Πₐ
    kₐ(xₐ, yₐ)`` for the voxels it renders.
    """
    kernels = []
    for mat, cell, first, size in zip(
        masks._mats, masks.cells, masks.origin, masks.spatial, strict=True
    ):
        m = mat.to(torch.float64)
        rows = torch.arange(size, device=m.device) + int(first)
        acc = torch.zeros(size, size, dtype=torch.float64, device=m.device)
        for s in range(int(cell)):
            r = m[rows + s]
            acc.addmm_(r, r.T)
        kernels.append(acc / int(cell))
    return kernels


class RegionCovariate:
    """The feature ``φ = mean(m over region) − p`` and its exact covariance with every voxel.

    Parameters
    ----------
    region
        Boolean ``spatial`` mask of the explained voxels (not empty).
    kernels
        :func:`mask_kernels` of the masks.
    p_keep
        The masks' keep probability.
    """

    def __init__(self, region: torch.Tensor, kernels: list[torch.Tensor], p_keep: float) -> None:
        region = region.to(torch.bool)
        count = int(region.sum())
        if count == 0:
            raise ValueError("the covariate needs a non-empty region")
        # imported here: accumulate imports weighted_sum, which imports this module
        from .accumulate import _apply_separable

        self.p = float(p_keep)
        basis = region.to(device=kernels[0].device, dtype=torch.float64) / count
        out = _apply_separable(basis, kernels)  # the kernels are symmetric
        #: ``Cov(φ, m(x))``, flat (float64).
        self.cov = (self.p * (1.0 - self.p)) * out.reshape(-1)
        self.count = count
        self._index = torch.nonzero(region.reshape(-1)).flatten()

    def features(self, masks: torch.Tensor) -> torch.Tensor:
        """``φᵢ`` of flat masks ``(b, voxels)`` with values in [0, 1] → ``(b,)`` float64.

        Each mask's region is summed in fixed point: its values (at most 1) are rounded to
        multiples of ``2**-(62 − bits of the region's voxel count)`` (``2**-35`` for a
        region of 10⁸ voxels) and added as 64-bit integers. That sum is exact, so a mask
        gets the same bits whatever the chunk it comes in (a floating-point sum's rounding
        depends on the reduction's shape), from one reduction per chunk.
        """
        index = self._index.to(masks.device)
        scale = float(2 ** (62 - self.count.bit_length()))  # the sum stays below 2**62
        fixed = masks.index_select(1, index).double().mul_(scale).round_().to(torch.int64)
        return fixed.sum(dim=1).double() / (scale * self.count) - self.p
