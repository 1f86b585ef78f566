"""Agreement between two maps: Pearson and Spearman correlation, optionally in a region."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..explanation import Explanation
from ._setup import as_map

__all__ = ["Agreement", "rank_correlation", "seed_agreement"]


@dataclass(frozen=True)
class Agreement:
    """How alike two maps are.

    Attributes
    ----------
    pearson
        Linear correlation of the voxel values (NaN when a map is constant there).
    spearman
        Rank correlation (NaN when a map is constant there).
    n_voxels
        Voxels compared.
    """

    pearson: float
    spearman: float
    n_voxels: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        return {
            "pearson": _num(self.pearson),
            "spearman": _num(self.spearman),
            "n_voxels": self.n_voxels,
        }


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two flat arrays (``scipy.stats.spearmanr``); NaN if constant."""
    from scipy import stats

    a, b = np.ravel(a), np.ravel(b)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(a, b)[0])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _region(region: Any, a: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(region, str):
        if region != "reference":
            raise ValueError(f"region must be 'reference', a boolean mask or None, got {region!r}")
        if not isinstance(a, Explanation) or a.reference is None:
            raise ValueError("region='reference' needs the first argument to be an Explanation")
        ref = np.asarray(a.reference)
        mask = ref == a.target if a.target is not None else ref > 0  # the explained segment
    else:
        mask = np.asarray(region)
        if mask.dtype != bool:
            raise TypeError(f"region must be a boolean mask, got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"region must have the maps' shape {shape}, got {mask.shape}")
    return mask


def seed_agreement(a: Any, b: Any, *, region: Any = None) -> Agreement:
    """Correlation of two maps of the same image, e.g. two seeds of one method.

    Parameters
    ----------
    a, b
        Two :class:`~maskscope.Explanation` objects or maps of the same shape.
    region
        Compare only these voxels: a boolean mask, ``"reference"`` (the foreground of
        ``a``'s reference segmentation), or None for all voxels. For explanations made
        slice by slice, only the slices computed in both count.

    Returns
    -------
    Agreement
        Pearson and Spearman correlation and the number of voxels compared.
    """
    ma, mb = as_map(a, "a"), as_map(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"the two maps must have the same shape, got {ma.shape} and {mb.shape}")
    keep = np.ones(ma.shape, dtype=bool)
    if region is not None:
        keep &= _region(region, a, ma.shape)
    slices = [x.slices for x in (a, b) if isinstance(x, Explanation) and x.slices is not None]
    if slices:
        computed = np.zeros(ma.shape[0], dtype=bool)
        computed[sorted(set.intersection(*(set(s) for s in slices)))] = True
        keep &= computed.reshape((-1,) + (1,) * (ma.ndim - 1))
    n = int(keep.sum())
    if n < 2:
        raise ValueError(f"at least 2 voxels are needed to compare the maps, got {n}")
    va, vb = ma[keep], mb[keep]
    return Agreement(pearson=_pearson(va, vb), spearman=rank_correlation(va, vb), n_voxels=n)
