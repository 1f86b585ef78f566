"""Sums of RISE masks computed from their two factors, grouped by the first factor.

A RISE mask is ``mᵢ = Lᵢ @ Yᵢ`` (:class:`~maskscope._engine.mask_batch.MaskBatch`):
``Lᵢ (rows, k)`` interpolates the first axis at the mask's shift, ``Yᵢ (k, rest)`` holds the
other axes. Masks with the same shift along the first axis have the same ``L``, and there
are at most ``cell`` shifts, so the weighted sums over many masks are

    ``Σᵢ cᵢ mᵢ = Σᵤ Lᵤ @ (Σ_{i: Lᵢ = Lᵤ} cᵢ Yᵢ)``

one small product per distinct ``L`` instead of one per mask: in 3D, a block of 64 masks
with 11 distinct shifts costs about a third of the multiply-adds of the per-mask products,
and the full-size masks are never read. The squares use ``m² = L² Y² + 2 (L₀ L₁)(Y₀ Y₁)``
over neighbouring columns of ``L`` (rows of ``Y``), since only neighbouring weights of a
row of ``L`` are non-zero together.
"""

from __future__ import annotations

import torch

__all__ = ["PendingFactors"]


class PendingFactors:
    """The factors of up to ``cap`` masks, waiting for their weighted sums.

    Parameters
    ----------
    rows, k, rest
        ``L`` is ``(rows, k)`` and ``Y`` is ``(k, rest)``.
    like
        A tensor with the factors' dtype and device.
    cap
        Masks held at most.
    n_first, n_second
        Number of coefficient columns of the first-moment sums ``Σ c1ᵢ mᵢ`` and of the
        second-moment sums ``Σ c2ᵢ mᵢ²``.
    """

    def __init__(
        self,
        rows: int,
        k: int,
        rest: int,
        like: torch.Tensor,
        cap: int,
        n_first: int,
        n_second: int,
    ) -> None:
        new = like.new_empty
        self.key = (rows, k, rest, like.dtype)
        self.cap = int(cap)
        self.n = 0
        self.lmat = new((cap, rows, k))
        self.c1 = new((cap, n_first))
        self.c2 = new((cap, n_second))
        self.y = new((cap, k, rest))
        self.y2 = new((cap, 2 * k - 1, rest))  # Y², then products of neighbouring rows
        self._out = (new((n_first, rows, rest)), new((n_second, rows, rest)))

    @staticmethod
    def bytes_per_mask(rows: int, k: int, rest: int, n_coef: int, element_size: int) -> int:
        """Bytes held per pending mask."""
        return (rows * k + (3 * k - 1) * rest + n_coef) * element_size

    def add(self, lmat: torch.Tensor, y: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> None:
        """Hold the factors ``L (n, rows, k)``, ``Y (n, k, rest)`` and coefficients of n masks."""
        i, n = self.n, lmat.shape[0]
        k = lmat.shape[2]
        self.lmat[i : i + n] = lmat
        self.c1[i : i + n] = c1
        self.c2[i : i + n] = c2
        self.y[i : i + n] = y
        torch.mul(y, y, out=self.y2[i : i + n, :k])
        torch.mul(y[:, :-1], y[:, 1:], out=self.y2[i : i + n, k:])
        self.n += n

    def products(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ c1ᵢ mᵢ`` ``(n_first, voxels)`` and ``Σ c2ᵢ mᵢ²`` ``(n_second, voxels)``.

        Reused arrays: valid until the next call.
        """
        n = self.n
        rows, k = self.lmat.shape[1], self.lmat.shape[2]
        flat = self.lmat[:n].reshape(n, -1)
        if flat.device.type == "mps":  # no unique over rows there: one group per mask
            uniq, inv = flat, torch.arange(n, device=flat.device)
        else:
            uniq, inv = torch.unique(flat, dim=0, return_inverse=True)
        lu = uniq.view(-1, rows, k)
        groups = torch.arange(lu.shape[0], device=flat.device)
        onehot = (inv[None, :] == groups[:, None]).to(flat.dtype)  # (groups, n)
        l2 = torch.cat([lu * lu, 2.0 * lu[..., :-1] * lu[..., 1:]], dim=2)
        p1 = _grouped(lu, onehot, self.c1[:n], self.y[:n], self._out[0])
        p2 = _grouped(l2, onehot, self.c2[:n], self.y2[:n], self._out[1])
        return p1.view(p1.shape[0], -1), p2.view(p2.shape[0], -1)


def _grouped(lu, onehot, coef, y, out) -> torch.Tensor:
    """``out[q] = Σᵢ coef[i, q] L_{g(i)} @ Yᵢ`` with the masks' groups in ``onehot``.

    ``lu (groups, rows, kk)``, ``onehot (groups, n)``, ``coef (n, q)``, ``y (n, kk, rest)``,
    ``out (q, rows, rest)``.
    """
    s, rows, kk = lu.shape
    n, rest = y.shape[0], y.shape[2]
    q = coef.shape[1]
    g = (coef.T[:, None, :] * onehot[None]).reshape(q * s, n)
    z = torch.mm(g, y.reshape(n, kk * rest)).view(q, s * kk, rest)  # Σ cᵢ Yᵢ per group
    lcat = lu.permute(1, 0, 2).reshape(rows, s * kk)
    return torch.bmm(lcat.expand(q, rows, s * kk), z, out=out)
