"""Which input channel matters: one map per channel and a per-channel summary."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..explanation import Explanation

__all__ = ["explain_channels"]


def _importance(maps: list[np.ndarray], region: np.ndarray | None) -> np.ndarray:
    """Each map's mean over ``region`` minus its mean over the image."""
    if region is None or not region.any():
        return np.array([float(m.mean()) for m in maps])
    return np.array([float(m[region].mean() - m.mean()) for m in maps])


def explain_channels(method: Any, image: Any, **kwargs: Any) -> Explanation:
    """Explain ``image`` channel by channel; the result ranks the channels.

    The RISE family draws its masks independently per channel in one run
    (``per_channel=True``). HDM occludes one channel at a time (``channel=c``): one run
    per channel, its maps are the runs' maps. Either way the result has one map per
    channel in ``extras["channel_<c>"]``, their mean as ``map``, and
    ``extras["channel_importance"]``: each channel map's mean over the explained segment
    (the reference of the explained class) minus its mean over the image. Rank the
    channels with ``np.argsort(-expl.extras["channel_importance"])``.

    Parameters
    ----------
    method
        A :class:`~maskscope.Method` (RISE, SegRISE, PixelRISE with ``merge="mean"``, HDM).
    image
        A ``(C, *spatial)`` image.
    **kwargs
        As :meth:`~maskscope.Method.explain` (``roi=``, ``n_masks=``, ...).
    """
    if method.stochastic:
        return method.explain(image, per_channel=True, **kwargs)
    if "channel" in kwargs:
        raise ValueError("explain_channels occludes every channel in turn: leave channel unset")
    n = int(np.shape(image)[0])
    runs = [method.explain(image, channel=c, **kwargs) for c in range(n)]
    maps = [r.map for r in runs]
    last = runs[-1]
    region = None
    if last.reference is not None:
        region = last.reference > 0 if last.target is None else last.reference == last.target
    extras = {f"channel_{c}": m for c, m in enumerate(maps)}
    extras["channel_importance"] = _importance(maps, region)
    return dataclasses.replace(
        last,
        map=np.mean(maps, axis=0),
        extras={**last.extras, **extras},
        n_done=sum(r.n_done for r in runs),
        n_total=sum(r.n_total for r in runs),
        n_forward=sum(r.n_forward for r in runs),
        elapsed=sum(r.elapsed for r in runs),
        params={**last.params, "channel": None, "per_channel": True},
    )
