"""Several targets from one run, and one map per input channel.

Both are sums over the same perturbed inputs, so they cost the forward passes of one run:

* :func:`combine_tasks`: the tasks of several targets (classes, or ROIs) built by a
  method for the same image, seed and parameters share their masks and perturbation; one
  task runs the model once per mask and hands each target's accumulator its own score.
  Each target's map is the one its own run gives: the same masks, the same outputs.
* :class:`ChannelMasks` and :class:`PerChannel`: RISE masks drawn independently for each
  input channel (channel ``c`` from the seed stream ``(seed, c)``), and one weighted sum per
  channel of that channel's masks. A channel the model ignores gets a map of noise around
  0; the channels are ranked by their map's mean over the explained segment.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .accumulate import Partial
from .mask_batch import MaskBatch
from .masks import RiseMasks

__all__ = ["ChannelMasks", "PerChannel", "PerTarget", "combine_tasks"]


def _before_last_chunk(accumulators: Sequence[Any]) -> None:
    for acc in accumulators:
        hook = getattr(acc, "before_last_chunk", None)
        if hook is not None:
            hook()


class PerTarget:
    """The accumulators of several targets, fed from the same masks.

    ``update`` receives a tuple with one score per target. ``partial`` gives the first
    target's map (its standard error and reliability) and every target's map as the
    extra ``"target_<name>"``.
    """

    def __init__(self, accumulators: Sequence[Any], names: Sequence[str]) -> None:
        self.accumulators = list(accumulators)
        self.names = [str(n) for n in names]

    @property
    def has_stderr(self) -> bool:
        """Whether the first target's map has a standard error."""
        return bool(getattr(self.accumulators[0], "has_stderr", False))

    def update(self, batch: MaskBatch, scores: Sequence[torch.Tensor]) -> None:
        """Add a chunk to every target's accumulator with its own score."""
        for acc, s in zip(self.accumulators, scores, strict=True):
            acc.update(batch, s)

    def before_last_chunk(self) -> None:
        """Each target's (see :func:`~.pipeline.settle_before_last`)."""
        _before_last_chunk(self.accumulators)

    def finish(self, workers: int = 1) -> Iterator[int]:
        """Each target's final pass in turn (PixelRISE max's other pixels, the held sums).

        Without it a target whose accumulator finishes the map at the end (PixelRISE max
        over more pixels than its memory holds) would keep its snapshot's lower bound.
        """
        for acc in self.accumulators:
            finish = getattr(acc, "finish", None)
            if finish is not None:
                yield from finish(workers=workers)

    def partial(self) -> Partial:
        """The first target's partial, with every target's map among the extras."""
        parts = [acc.partial() for acc in self.accumulators]
        first = parts[0]
        extras = dict(first.extras)
        for name, p in zip(self.names, parts, strict=True):
            extras[f"target_{name}"] = p.map
        return dataclasses.replace(first, extras=extras)


def combine_tasks(tasks: Sequence[Any], names: Sequence[str]) -> Any:
    """One task scoring every target of ``tasks`` (same image, masks, perturbation).

    The first task's masks and perturbation are used: every accumulator receives the
    same mask batches (and their factors), as in its own run. Sweeps that plan as they go
    (adaptive HDM) run the union of their plans' centres
    (:class:`~maskscope._engine.adaptive_targets.SharedSweeps`).
    """
    first = tasks[0]
    scores = [t.score for t in tasks]

    def score(out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(s(out) for s in scores)

    accumulator: Any = PerTarget([t.accumulator for t in tasks], names)
    masks, planned = first.masks, first.planned
    if first.planned is not None:  # adaptive sweeps: the union of the targets' plans
        from .adaptive_targets import SharedSweeps

        accumulator = SharedSweeps([t.accumulator for t in tasks], names)
        masks = functools.partial(accumulator.batch, dtype=first.x.dtype)
        planned = accumulator.planned
    refs = [t.reference for t in tasks if t.reference is not None]
    preds = [t.prediction for t in tasks if t.prediction is not None]
    regions = [t.region for t in tasks if t.region is not None]
    info: dict[str, Any] = {}
    for t in tasks:
        info.update(t.info)
    return dataclasses.replace(
        first,
        score=score,
        accumulator=accumulator,
        masks=masks,
        planned=planned,
        reference=torch.stack(refs).amax(0) if refs else None,
        prediction=torch.stack(preds).amax(0) if preds else None,
        region=torch.stack(regions).any(0) if regions else None,
        info=info,
    )


class ChannelMasks:
    """Independent RISE masks per input channel: ``(b, C, *spatial)`` per chunk.

    Channel ``c``'s masks are the :class:`RiseMasks` of seed stream ``(seed, c)``, built
    by ``make(seed)`` (so a crop window's masks are drawn the same way).
    """

    def __init__(self, make: Callable[[int], RiseMasks], n_channels: int, seed: int) -> None:
        seeds = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7919]).spawn(n_channels)
        self.streams = [make(int(s.generate_state(1)[0])) for s in seeds]
        self.spatial = self.streams[0].spatial

    def batch(self, start: int, stop: int) -> MaskBatch:
        """Masks ``start .. stop-1`` of every channel, ``(stop - start, C, *spatial)``."""
        return MaskBatch(start, torch.cat([m(start, stop).clone() for m in self.streams], 1))


class PerChannel:
    """One accumulator per input channel, each fed that channel's masks.

    ``partial`` gives the mean of the channel maps as the map, each channel's map as the
    extra ``"channel_<c>"``, and ``"channel_importance"``: each channel map's mean over
    ``region`` (the explained segment) minus its mean over the image (the level where
    hiding changes nothing), one value per channel.
    """

    def __init__(self, accumulators: Sequence[Any], region: torch.Tensor | None) -> None:
        self.accumulators = list(accumulators)
        self.region = None if region is None else region.reshape(-1)

    has_stderr = False

    def update(self, batch: MaskBatch, scores: torch.Tensor) -> None:
        """Add a chunk: channel ``c``'s accumulator gets ``masks[:, c:c+1]``."""
        for c, acc in enumerate(self.accumulators):
            acc.update(MaskBatch(batch.start, batch.masks[:, c : c + 1]), scores)

    def before_last_chunk(self) -> None:
        """Each channel's (see :func:`~.pipeline.settle_before_last`)."""
        _before_last_chunk(self.accumulators)

    def partial(self) -> Partial:
        """The mean channel map, the channel maps and their importance, the worst reliability."""
        parts = [acc.partial() for acc in self.accumulators]
        maps = torch.stack([p.map.reshape(-1) for p in parts])
        extras = {f"channel_{c}": p.map for c, p in enumerate(parts)}
        if self.region is not None and bool(self.region.any()):
            inside = maps[:, self.region.to(maps.device)].mean(1)
            extras["channel_importance"] = inside - maps.mean(1)
        rel = [p.reliability for p in parts]
        reliability = None if any(r is None for r in rel) else min(rel)
        return Partial(
            map=maps.mean(0).reshape(parts[0].map.shape), extras=extras, reliability=reliability
        )
