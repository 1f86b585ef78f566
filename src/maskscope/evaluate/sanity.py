"""Model-randomisation sanity check (Adebayo et al. 2018), cascading from the output end.

A map that explains the model must change when the model's weights are destroyed. The
check re-initialises the model's layers one after another, starting at the output, on a
deep copy of the model (the user's model is never touched), recomputes the map with the
same method, parameters and seed after each step, and reports the rank correlation of each
randomised map with the original one. High correlations all the way down mean the map
shows the image (or the masks), not the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..explanation import Explanation
from ..methods.base import Method
from .agreement import rank_correlation

__all__ = ["RandomizationResult", "parametrised_layers", "randomization_check"]


@dataclass(frozen=True)
class RandomizationResult:
    """Rank correlation of the maps of a progressively randomised model with the original.

    Attributes
    ----------
    layers
        Names of the layers with parameters, output end first (the cascade's order).
    n_randomised
        Layers re-initialised at each step (cumulative).
    spearman
        Spearman correlation of each step's map with the original map (NaN where the
        randomised map is constant: the model no longer reacts to the perturbations).
    spearman_abs
        The same for the absolute values of the maps (Adebayo et al. report both): a map
        whose sign flipped but whose structure stayed has a strongly negative ``spearman``
        and a high ``spearman_abs``.
    original
        The map of the intact model.
    maps
        The randomised maps, when asked for (``keep_maps=True``).
    """

    layers: list[str]
    n_randomised: list[int]
    spearman: np.ndarray
    spearman_abs: np.ndarray
    original: Explanation
    maps: list[np.ndarray] = field(default_factory=list)

    def table(self) -> str:
        """One line per step: the last layer re-initialised and the rank correlation."""
        width = max(len("last layer"), *(len(self.layers[n - 1]) for n in self.n_randomised))
        lines = [f"layers randomised  {'last layer':<{width}}  Spearman  Spearman of |map|"]
        rows = zip(self.n_randomised, self.spearman, self.spearman_abs, strict=True)
        for n, rho, rho_abs in rows:
            lines.append(f"{n:>17}  {self.layers[n - 1]:<{width}}  {rho:>8.3f}  {rho_abs:>8.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        return {
            "method": self.original.method,
            "layers": list(self.layers),
            "n_randomised": list(self.n_randomised),
            "spearman": [float(v) if np.isfinite(v) else None for v in self.spearman],
            "spearman_abs": [float(v) if np.isfinite(v) else None for v in self.spearman_abs],
        }


def parametrised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that hold parameters of their own, output end first (reversed definition order)."""
    found = [
        (name or type(m).__name__, m)
        for name, m in model.named_modules()
        if next(m.parameters(recurse=False), None) is not None
    ]
    return found[::-1]


def _reinitialise(module: nn.Module, seed: int) -> None:
    """The layer's own initialisation, seeded, without touching the global random state."""
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
            return
        for p in module.parameters(recurse=False):
            std = float(p.detach().float().std()) if p.numel() > 1 else 0.0
            nn.init.normal_(p, 0.0, std if np.isfinite(std) and std > 0 else 0.02)


def _layers_of(method: Method) -> list[tuple[str, nn.Module]]:
    model = method.model
    if not isinstance(model, nn.Module):
        raise TypeError(
            "the randomisation check re-initialises a torch.nn.Module's layers; "
            f"the method's model is a {type(model).__name__}"
        )
    layers = parametrised_layers(model)
    if not layers:
        raise ValueError("the model has no layer with parameters to randomise")
    return layers


def _cascade_steps(n_layers: int, steps: int | None) -> list[int]:
    if steps is None:
        return list(range(1, n_layers + 1))
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ValueError(f"steps must be a positive int or None (every layer), got {steps!r}")
    ks = np.unique(np.round(np.linspace(1, n_layers, min(int(steps), n_layers))).astype(int))
    return [int(k) for k in ks]


def randomization_check(
    method: Method,
    image: Any,
    *,
    steps: int | None = None,
    init_seed: int = 0,
    region: Any = None,
    keep_maps: bool = False,
    **explain_kwargs: Any,
) -> RandomizationResult:
    """Cascading model-parameter randomisation: does the map change with the model?

    Parameters
    ----------
    method
        A method instance (e.g. ``SegRISE(model)``) whose model is a ``torch.nn.Module``.
        Its model is deep-copied; the original is left unchanged.
    image
        The image to explain.
    steps
        Cascade steps: None re-initialises one more layer per step (every layer); an int
        spreads that many steps evenly, the last one re-initialising every layer.
    init_seed
        Seed of the re-initialisation (layer ``i`` uses ``init_seed + i``).
    region
        Compare the maps only on these voxels (a boolean mask), or everywhere (None).
    keep_maps
        Keep the randomised maps in the result.
    **explain_kwargs
        Passed to ``method.explain`` for every map (``n_masks``, ``seed``, ``target``, ...).
        The randomised models are explained against the intact model's reference and
        target, so that every map answers the same question.

    Returns
    -------
    RandomizationResult
    """
    layers = _layers_of(method)
    ks = _cascade_steps(len(layers), steps)
    if region is not None:
        region = np.asarray(region)
        if region.dtype != bool:
            raise TypeError(f"region must be a boolean mask, got dtype {region.dtype}")
    original = method.explain(image, **explain_kwargs)
    kwargs = dict(explain_kwargs)
    if original.reference is not None and kwargs.get("reference") is None:
        kwargs["reference"] = original.reference
    if kwargs.get("target") is None:
        kwargs["target"] = original.target
    keep = np.ones(original.map.shape, bool) if region is None else region
    names = [name for name, _ in layers]
    rhos, rhos_abs, maps = [], [], []
    a = original.map[keep]
    for expl in _cascade(method, names, ks, init_seed, image, kwargs):
        rhos.append(rank_correlation(a, expl.map[keep]))
        rhos_abs.append(rank_correlation(np.abs(a), np.abs(expl.map[keep])))
        if keep_maps:
            maps.append(expl.map)
    return RandomizationResult(names, ks, np.asarray(rhos), np.asarray(rhos_abs), original, maps)


def _cascade(method: Method, names: list[str], ks: list[int], init_seed: int, image, kwargs):
    """The maps of a deep copy of the model with its first ``k`` layers re-initialised."""
    twin = copy.copy(method)
    twin.model = copy.deepcopy(method.model)
    twin_layers = dict(parametrised_layers(twin.model))
    done = 0
    for k in ks:
        for i in range(done, k):
            _reinitialise(twin_layers[names[i]], init_seed + i)
        done = k
        yield twin.explain(image, **kwargs)
