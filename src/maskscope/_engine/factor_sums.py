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

The grouped sums ``Σ_{i: Lᵢ = Lᵤ} cᵢ Yᵢ`` are small (a few rows of ``Y`` per group and
column), so :class:`GroupSums` keeps adding them over many flushes of the pending masks, and
the products with the ``Lᵤ``, which write full-size sums, are taken only when a block of
masks closes or a snapshot asks: in 3D that is the larger part of the cost saved.
"""

from __future__ import annotations

import torch

__all__ = ["FactoredSums", "GroupSums", "PendingFactors", "distinct_rows"]

_PROBES: dict[tuple[int, str], torch.Tensor] = {}


def _probe(length: int, device: torch.device) -> torch.Tensor:
    """A fixed random float64 vector of ``length`` on ``device`` (the rows' keys)."""
    key = (length, str(device))
    if key not in _PROBES:
        gen = torch.Generator().manual_seed(20_231)
        _PROBES[key] = (1.0 + torch.rand(length, generator=gen, dtype=torch.float64)).to(device)
    return _PROBES[key]


def distinct_rows(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of ``flat (n, d)`` and each row's index among them.

    Rows are grouped by one number each, their product with a fixed random vector, and each
    group is checked to hold one row repeated, so the grouping is exact; should two
    different rows ever share a number, the rows are compared whole instead
    (``torch.unique(dim=0)``, a sort of whole rows that is slow on a GPU). Equal rows
    given different numbers would only make two groups of one row, which sums the same.
    """
    n = flat.shape[0]
    key = flat.to(torch.float64) @ _probe(flat.shape[1], flat.device)
    _, inv = torch.unique(key, return_inverse=True)
    first = torch.full((n,), n, dtype=torch.long, device=flat.device)
    first = first.scatter_reduce_(0, inv, torch.arange(n, device=flat.device), "amin")
    first = first[: int(inv.max()) + 1] if n else first[:0]
    uniq = flat.index_select(0, first)
    if torch.equal(uniq.index_select(0, inv), flat):
        return uniq, inv
    return torch.unique(flat, dim=0, return_inverse=True)


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

    def groups(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct first factors ``Lᵤ`` ``(s, rows, k)`` and each pending mask's ``u``."""
        n = self.n
        rows, k = self.lmat.shape[1], self.lmat.shape[2]
        flat = self.lmat[:n].reshape(n, -1)
        if flat.device.type == "mps":  # no unique over rows there: one group per mask
            return flat.view(n, rows, k), torch.arange(n, device=flat.device)
        uniq, inv = distinct_rows(flat)
        return uniq.view(-1, rows, k), inv

    def products(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``Σ c1ᵢ mᵢ`` ``(n_first, voxels)`` and ``Σ c2ᵢ mᵢ²`` ``(n_second, voxels)``.

        Reused arrays: valid until the next call.
        """
        lu, inv = self.groups()
        groups = torch.arange(lu.shape[0], device=inv.device)
        onehot = (inv[None, :] == groups[:, None]).to(lu.dtype)  # (groups, n)
        n = self.n
        z1 = _grouped(onehot, self.c1[:n], self.y[:n])
        return _lift(lu, z1, _grouped(onehot, self.c2[:n], self.y2[:n]), self._out)


class GroupSums:
    """``Σ cᵢ Yᵢ`` per distinct first factor ``Lᵤ``, added up over many flushes.

    Parameters
    ----------
    rows, k, rest, like, n_first, n_second
        As for :class:`PendingFactors`.
    max_groups
        Distinct first factors held at most (the memory is ``max_groups`` ×
        :meth:`bytes_per_group`); :meth:`add` refuses more.
    out
        The full-size arrays :meth:`products` writes into (a :class:`PendingFactors`'s own
        can be shared: each product is used before the next is taken); new ones if None.
    """

    def __init__(
        self, rows: int, k: int, rest: int, like: torch.Tensor, n_first: int, n_second: int,
        max_groups: int, out: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:  # fmt: skip
        self.max_groups = max(1, int(max_groups))
        self._like = like
        self._shape = (rows, k, rest, n_first, n_second)
        self.g = 0  # groups in use
        self.n = 0  # masks summed since the last clear
        self._cap = 0
        self._lu = self._z1 = self._z2 = None
        if out is None:
            out = (like.new_empty((n_first, rows, rest)), like.new_empty((n_second, rows, rest)))
        self._out = out

    @staticmethod
    def bytes_per_group(
        rows: int, k: int, rest: int, n_first: int, n_second: int, element_size: int
    ) -> int:
        """Bytes held per distinct first factor."""
        return (rows * k + (n_first * k + n_second * (2 * k - 1)) * rest) * element_size

    def _grow(self, need: int) -> None:
        rows, k, rest, q, r = self._shape
        cap = min(self.max_groups, max(need, 2 * self._cap, 4))
        zeros = self._like.new_zeros
        lu, z1, z2 = (
            zeros((cap, rows, k)),
            zeros((q, cap * k, rest)),
            zeros((r, cap * (2 * k - 1), rest)),
        )
        if self.g:
            g = self.g
            lu[:g] = self._lu[:g]
            z1[:, : g * k] = self._z1[:, : g * k]
            z2[:, : g * (2 * k - 1)] = self._z2[:, : g * (2 * k - 1)]
        self._lu, self._z1, self._z2, self._cap = lu, z1, z2, cap

    def add(self, pending: PendingFactors) -> bool:
        """Add the pending masks' grouped sums; False (nothing added) past ``max_groups``.

        Each group's masks are summed straight into its rows (one product per group).
        """
        lu, inv = pending.groups()
        k, s = self._shape[1], lu.shape[0]
        slot = torch.full((s,), -1, dtype=torch.long, device=lu.device)
        if self.g:
            same = (lu.reshape(s, 1, -1) == self._lu[: self.g].reshape(1, self.g, -1)).all(dim=2)
            found = same.any(dim=1)
            slot[found] = same[found].float().argmax(dim=1)
        new = torch.nonzero(slot < 0).flatten()
        if self.g + new.numel() > self.max_groups:
            return False
        if self.g + new.numel() > self._cap:
            self._grow(self.g + new.numel())
        slot[new] = torch.arange(self.g, self.g + new.numel(), device=lu.device)
        self._lu[slot[new]] = lu[new]
        self.g += int(new.numel())
        n = pending.n
        order = torch.argsort(inv, stable=True)
        counts = torch.bincount(inv, minlength=s).tolist()
        for coef, y, total, kk in (
            (pending.c1, pending.y, self._z1, k),
            (pending.c2, pending.y2, self._z2, 2 * k - 1),
        ):
            coef, y = coef[:n].index_select(0, order), y[:n].index_select(0, order)
            rest = y.shape[2]
            lo = 0
            for u, c in zip(slot.tolist(), counts, strict=True):
                rows = total[:, u * kk : (u + 1) * kk].view(total.shape[0], kk * rest)
                rows.addmm_(coef[lo : lo + c].T, y[lo : lo + c].reshape(c, kk * rest))
                lo += c
        self.n += n
        return True

    def products(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The full-size sums of everything added (reused arrays, as in PendingFactors)."""
        g, k = self.g, self._shape[1]
        return _lift(self._lu[:g], self._z1[:, : g * k], self._z2[:, : g * (2 * k - 1)], self._out)

    def clear(self) -> None:
        """Forget every group (after their products were taken)."""
        if self.g:
            k = self._shape[1]
            self._z1[:, : self.g * k].zero_()
            self._z2[:, : self.g * (2 * k - 1)].zero_()
        self.g = self.n = 0


class FactoredSums:
    """The factors of one shape of masks on their way into a block's sums.

    Chunks wait in a :class:`PendingFactors` of ``cap`` masks; each full one is reduced to
    its grouped sums, kept in a :class:`GroupSums` of at most ``group_bytes``; :meth:`lift`
    adds their full-size products to the block's sums (when the block closes).

    Parameters
    ----------
    lmat, y
        A chunk's factors (for the shapes, dtype and device).
    n_first, n_second
        Coefficient columns of the first- and second-moment sums.
    n
        Masks in the chunk (the pending masks are at least that many).
    flush_every, pending_bytes
        Masks, and bytes, that trigger the grouped sums of the pending masks.
    group_bytes
        Memory of the grouped sums at most.
    """

    def __init__(
        self, lmat, y, n_first: int, n_second: int, n: int, flush_every: int,
        pending_bytes: int, group_bytes: int,
    ) -> None:  # fmt: skip
        rows, k, rest = lmat.shape[1], lmat.shape[2], y.shape[2]
        size = y.element_size()
        per_mask = PendingFactors.bytes_per_mask(rows, k, rest, n_first + n_second, size)
        self.cap = max(n, min(flush_every, pending_bytes // per_mask))
        self.key = (rows, k, rest, y.dtype)
        self.pending = PendingFactors(rows, k, rest, y, self.cap, n_first, n_second)
        per_group = GroupSums.bytes_per_group(rows, k, rest, n_first, n_second, size)
        self.groups = GroupSums(
            rows, k, rest, y, n_first, n_second, group_bytes // per_group, self.pending._out
        )

    @property
    def n(self) -> int:
        """Masks held: pending, or in grouped sums not yet lifted."""
        return self.pending.n + self.groups.n

    def add(self, lmat, y, c1, c2, b1: torch.Tensor, b2: torch.Tensor) -> None:
        """Hold a chunk (``b1``, ``b2``: the block's sums, should the groups be full)."""
        if self.pending.n + lmat.shape[0] > self.cap:
            self.flush(b1, b2)
        self.pending.add(lmat, y, c1, c2)
        if self.pending.n >= self.cap:
            self.flush(b1, b2)

    def flush(self, b1: torch.Tensor, b2: torch.Tensor) -> None:
        """The pending masks into the grouped sums (lifted first into ``b1``, ``b2`` if full)."""
        pending = self.pending
        if not pending.n:
            return
        if not self.groups.add(pending):
            self._lift_groups(b1, b2)
            if not self.groups.add(pending):  # more groups than it may hold
                p1, p2 = pending.products()
                b1.add_(p1)
                b2.add_(p2)
        pending.n = 0

    def _lift_groups(self, b1: torch.Tensor, b2: torch.Tensor) -> None:
        if self.groups.n:
            p1, p2 = self.groups.products()
            b1.add_(p1)
            b2.add_(p2)
            self.groups.clear()

    def lift(self, b1: torch.Tensor, b2: torch.Tensor) -> None:
        """Add everything held to ``b1``, ``b2`` and hold nothing."""
        self.flush(b1, b2)
        self._lift_groups(b1, b2)

    def added_to(self, b1: torch.Tensor, b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New sums: ``b1``, ``b2`` with everything held added (what is held is unchanged)."""
        for part in (self.groups, self.pending):
            if part.n:
                p1, p2 = part.products()
                b1, b2 = b1 + p1, b2 + p2
        return b1, b2


def _grouped(onehot, coef, y) -> torch.Tensor:
    """``Σᵢ coef[i, q] Yᵢ`` per group: ``(q, groups · kk, rest)``.

    ``onehot (groups, n)``, ``coef (n, q)``, ``y (n, kk, rest)``.
    """
    s, n = onehot.shape
    kk, rest = y.shape[1], y.shape[2]
    q = coef.shape[1]
    g = (coef.T[:, None, :] * onehot[None]).reshape(q * s, n)
    return torch.mm(g, y.reshape(n, kk * rest)).view(q, s * kk, rest)


def _lift(lu, z1, z2, out) -> tuple[torch.Tensor, torch.Tensor]:
    """``Σᵤ Lᵤ @ z[u]`` for the first moments and ``Σᵤ L²ᵤ @ z[u]`` for the squares, flat."""
    l2 = torch.cat([lu * lu, 2.0 * lu[..., :-1] * lu[..., 1:]], dim=2)
    p1 = _apply(lu, z1, out[0])
    p2 = _apply(l2, z2, out[1])
    return p1.view(p1.shape[0], -1), p2.view(p2.shape[0], -1)


def _apply(lu, z, out) -> torch.Tensor:
    """``out[q] = Σᵤ Lᵤ @ z[q, u·kk ..]``: ``lu (groups, rows, kk)``, ``z (q, groups·kk, rest)``."""
    s, rows, kk = lu.shape
    q = z.shape[0]
    lcat = lu.permute(1, 0, 2).reshape(rows, s * kk)
    return torch.bmm(lcat.expand(q, rows, s * kk), z, out=out)
