"""The RISE family's map and standard error from the running sums of :mod:`~.weighted_sum`.

A set of masks (all of them, or one half) is summarised by :class:`Moments`: the flat sums
``Σ wᵢ mᵢ``, ``Σ mᵢ`` and, for the covariate estimator, ``Σ φᵢ mᵢ``, with the scalar sums of
the weights and features. :func:`estimate` turns them into the map of one estimator
(``"paper"``, ``"centred"`` or ``"covariate"``; see :mod:`~.covariate` for the last).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MIN_FIT", "Moments", "estimate", "slope", "standard_error"]

#: Masks a set needs before its slope is used (fewer: the centred map). With very few masks
#: the fit leaves almost no residual, and the map would be the slope times ``C`` alone: a
#: blurred copy of the segment, the same for every seed, that says nothing yet.
MIN_FIT = 16


@dataclass
class Moments:
    """First-moment sums of a set of masks.

    Attributes
    ----------
    s_w, s_1
        ``Σ wᵢ mᵢ`` and ``Σ mᵢ``, flat.
    n
        Number of masks.
    w
        ``Σ wᵢ``.
    s_phi
        ``Σ φᵢ mᵢ`` (None without a covariate).
    phi, phi2, w_phi
        ``Σ φᵢ``, ``Σ φᵢ²`` and ``Σ wᵢ φᵢ``.
    s_w2, w2
        ``Σ wᵢ² mᵢ`` (flat) and ``Σ wᵢ²``, for a centred estimator's standard error (None
        otherwise).
    s_phi2, s_wphi
        ``Σ φᵢ² mᵢ`` and ``Σ wᵢ φᵢ mᵢ`` (flat), the same with a covariate.
    """

    s_w: torch.Tensor
    s_1: torch.Tensor
    n: int
    w: float
    s_phi: torch.Tensor | None = None
    phi: float = 0.0
    phi2: float = 0.0
    w_phi: float = 0.0
    s_w2: torch.Tensor | None = None
    w2: float = 0.0
    s_phi2: torch.Tensor | None = None
    s_wphi: torch.Tensor | None = None


def slope(m: Moments) -> float:
    """Least-squares slope of the weights on the feature.

    0 where the feature is constant, and for fewer than :data:`MIN_FIT` masks.
    """
    if m.s_phi is None or m.n < MIN_FIT:
        return 0.0
    sxx = m.phi2 - m.phi * m.phi / m.n
    if not sxx > 1e-12 * max(m.phi2, 1e-300):
        return 0.0
    return (m.w_phi - m.w * m.phi / m.n) / sxx


def estimate(m: Moments, p: float, estimator: str, cov: torch.Tensor | None) -> torch.Tensor:
    """The map of ``estimator`` from the moments ``m`` (``cov`` = ``Cov(φ, m(x))``, flat)."""
    n = max(m.n, 1)
    if estimator == "paper":
        return m.s_w / (n * p)
    w_bar = m.w / n
    out = w_bar + (m.s_w - w_bar * m.s_1) / (n * p)
    beta = slope(m) if cov is not None else 0.0
    if beta != 0.0:
        phi_bar = m.phi / n
        out = out - (beta / (n * p)) * (m.s_phi - phi_bar * m.s_1 - (n - 1) * cov)
    return out


def standard_error(m: Moments, s2: torch.Tensor, p: float, estimator: str) -> torch.Tensor | None:
    """Per-voxel standard error of :func:`estimate`'s map (None before two masks).

    The map is the mean of ``Xᵢ = eᵢ mᵢ / p`` plus terms that do not vary with ``i``, with
    ``eᵢ = wᵢ`` (paper), ``wᵢ − w̄`` (centred) or ``wᵢ − w̄ − β (φᵢ − φ̄)`` (covariate). The
    centred ``eᵢ`` sum to 0, so the map is also the mean of ``eᵢ (mᵢ − m̄) / p``, a sample
    covariance, and that is the spread that varies from seed to seed: ``eᵢ mᵢ`` would add
    ``m̄² var(e)``, about three times the variance at ``p = 0.5`` (its spread over another
    seed's is what the reliability measures, and ``1 − rel_error²`` should agree with it).
    The error is ``sqrt(var(X) / n)`` with the unbiased sample variance (the estimates of
    ``w̄`` and ``β`` themselves are neglected). ``s2`` holds the second-moment sums
    ``Σ dᵢ mᵢ²`` for ``d`` in ``(w², w, 1)``, then ``(φ², φ, w φ)`` with a covariate
    (``m.s_phi`` set); a centred estimator's ``m`` holds ``s_w2`` (and ``s_phi2``, ``s_wphi``),
    without which (sums kept without an error) there is none.
    """
    n = m.n
    if n < 2:
        return None
    if estimator != "paper":
        return None if m.s_w2 is None else _centred_error(m, s2, p)
    mean_x = m.s_w / (n * p)
    mean_x2 = s2[0] / (n * p * p)
    var = (mean_x2 - mean_x * mean_x).clamp(min=0.0) * (n / (n - 1))
    return torch.sqrt(var / n)


def _centred_error(m: Moments, s2: torch.Tensor, p: float) -> torch.Tensor:
    """:func:`standard_error` of ``Xᵢ = eᵢ (mᵢ − m̄) / p`` (centred and covariate)."""
    n = m.n
    c = m.w / n
    beta = slope(m)
    f = m.phi / n if beta != 0.0 else 0.0
    # Σ e, Σ e m, Σ e² m² (as in standard_error), Σ e² m and Σ e², expanded in the sums
    sum_e = m.w - n * c
    sum_em = m.s_w - c * m.s_1
    sum_e2m2 = s2[0] - 2.0 * c * s2[1] + c * c * s2[2]
    sum_e2m = m.s_w2 - 2.0 * c * m.s_w + c * c * m.s_1
    sum_e2 = m.w2 - 2.0 * c * m.w + n * c * c
    if beta != 0.0:
        sum_e = sum_e - beta * (m.phi - n * f)
        sum_em = sum_em - beta * (m.s_phi - f * m.s_1)
        cross = s2[5] - f * s2[1] - c * s2[4] + c * f * s2[2]
        square = s2[3] - 2.0 * f * s2[4] + f * f * s2[2]
        sum_e2m2 = sum_e2m2 - 2.0 * beta * cross + beta * beta * square
        cross1 = m.s_wphi - f * m.s_w - c * m.s_phi + c * f * m.s_1
        square1 = m.s_phi2 - 2.0 * f * m.s_phi + f * f * m.s_1
        sum_e2m = sum_e2m - 2.0 * beta * cross1 + beta * beta * square1
        cross0 = m.w_phi - f * m.w - c * m.phi + n * c * f
        square0 = m.phi2 - 2.0 * f * m.phi + n * f * f
        sum_e2 = sum_e2 - 2.0 * beta * cross0 + beta * beta * square0
    m_bar = m.s_1 / n
    sum_x = (sum_em - m_bar * sum_e) / p
    sum_x2 = (sum_e2m2 - 2.0 * m_bar * sum_e2m + m_bar * m_bar * sum_e2) / (p * p)
    mean_x = sum_x / n
    var = (sum_x2 / n - mean_x * mean_x).clamp(min=0.0) * (n / (n - 1))
    return torch.sqrt(var / n)
