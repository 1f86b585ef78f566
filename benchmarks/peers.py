"""Drive maskscope or one peer tool on one model and image; turn its result into a map.

Shared by the side-by-side runs (``parts.py``, kind ``side``: wall time and memory) and the
map-quality benchmark (``quality_maps.py``: the maps themselves). Run in the peers' venv
(``bash benchmarks/setup_peers.sh``) with ``src/`` and, for interpret-segmentation's HDM and
muppet, ``benchmarks/stubs`` on ``PYTHONPATH``.

:func:`run_tool` returns the tool's own result (what the timed call gives back);
:func:`to_maps` turns it into one or more saliency maps of the image's spatial shape,
oriented so that high means important.
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import numpy as np
import torch


class TargetProbability(torch.nn.Module):
    """``(B, K, H, W)`` logits → ``(B, H, W)`` probability of the target class.

    interpret-segmentation's RISE indexes ``output[0][x][y]`` and thresholds
    ``output > output.mean()``: it expects one probability map per image.
    """

    def __init__(self, model: torch.nn.Module, target: int = 1) -> None:
        super().__init__()
        self.model, self.target = model, target
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)[:, self.target]


class TargetSegmentation(TargetProbability):
    """``(B, K, H, W)`` logits → ``(B, H, W)`` hard 0/1 segmentation of the target class."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x).argmax(dim=1) == self.target).float()


class SegmentScore(torch.nn.Module):
    """``(B, K, *sp)`` logits → ``(B, 1)`` mean target probability over a fixed segment.

    The scalar score that captum's Occlusion, captum-rise and MONAI need (they explain
    classifier-style outputs); maskscope's RISE uses the same score for a segmentation.
    """

    def __init__(self, model: torch.nn.Module, region: torch.Tensor, target: int = 1) -> None:
        super().__init__()
        self.model, self.target = model, target
        self.register_buffer("index", region.flatten().nonzero().squeeze(1))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.model(x), dim=1)[:, self.target].flatten(1)
        return p.index_select(1, self.index).mean(dim=1, keepdim=True)


def seed_everything(seed: int) -> None:
    """Seed the generators the peers draw from (numpy's, torch's and Python's global ones)."""
    np.random.seed(seed)  # noqa: NPY002  (interpret-segmentation draws from the global one)
    torch.manual_seed(seed)
    random.seed(seed)


#: muppet's seed for the benchmark's seed k is k times this (its masks use seed + index).
MUPPET_SEED_STEP = 1_000_000


def monai_overlap(diameter: int, offset: int) -> float:
    """MONAI's ``overlap`` for a step of ``offset``: it steps by ``int(roi * (1 - overlap))``."""
    return max(0.0, (diameter - offset) / diameter - 1e-9)  # so that 1 - overlap is not 0.1999…


def run_tool(
    tool: str,
    model: torch.nn.Module,
    image: np.ndarray,
    region: torch.Tensor,
    *,
    n: int,
    grid: int,
    diameter: int,
    offset: int,
    batch: int,
    seed: int | None = None,
    method: tuple[type, dict] | None = None,
) -> tuple[Any, dict]:
    """Run one tool on ``image`` (``(1, *spatial)``) and return (its result, extras).

    ``tool`` is ``"maskscope:<label>"`` (``method`` = (class, explain() keywords)) or a
    peer name. ``region`` is the reference segment (the model's prediction of class 1).
    ``seed`` seeds the global generators before the run (muppet gets
    ``MUPPET_SEED_STEP * seed``; None: 0 for muppet, the generators left as they are).
    Sizes are in voxels.
    """
    x = torch.as_tensor(image)[None].to(region.device)
    dims = image.ndim - 1
    if seed is not None:
        seed_everything(seed)
    if tool.startswith("maskscope:"):
        if method is None:
            raise ValueError(f"{tool} needs method=(class, keywords)")
        cls, kw = method
        kw = kw if seed is None else {**kw, "seed": seed}
        return cls(model).explain(image, **kw), {}
    if tool in _PEERS:
        return _PEERS[tool](model, image, x, region, n, grid, diameter, offset, batch, seed, dims)
    raise ValueError(f"unknown tool {tool!r}; expected maskscope:<method> or one of {list(_PEERS)}")


def _is_rise(model, image, x, region, n, grid, diameter, offset, batch, seed, dims):
    import time

    from interpret_segmentation.rise import SegmentationRISE

    t0 = time.perf_counter()
    explainer = SegmentationRISE(TargetProbability(model), tuple(image.shape[1:]), x.device)
    with tempfile.TemporaryDirectory() as tmp:
        explainer.generate_masks(N=n, s=grid, p1=0.5, savepath=os.path.join(tmp, "m.npy"))
    extra = {"mask_generation_s": time.perf_counter() - t0}
    with torch.no_grad():
        res = explainer(x)
        result = (res.mean(), res.max())
    extra["pixels"] = int(res.saliencies.shape[0])
    return result, extra


def _is_hdm(model, image, x, region, n, grid, diameter, offset, batch, seed, dims):
    import time

    from interpret_segmentation import hdm

    t0 = time.perf_counter()
    h, w = image.shape[-2:]
    explainer = hdm.HausdorffDistanceMasks(w, h)
    explainer.generate_masks(circle_size=diameter, offset=offset)
    extra = {"mask_generation_s": time.perf_counter() - t0}
    with torch.no_grad():
        res = explainer.explain(
            TargetSegmentation(model), torch.as_tensor(image), region.float(), x.device
        )
    return res.distances(hdm.RAW), extra


def _muppet(model, image, x, region, n, grid, diameter, offset, batch, seed, dims):
    from muppet.explainers.segrise import SegRISEExplainer

    # muppet seeds mask i with seed + i: seeds 0 and 1 would share all masks but one
    s = 0 if seed is None else MUPPET_SEED_STEP * seed
    explainer = SegRISEExplainer(model, nmasks=n, mask_dim=grid, mask_proba=0.5, seed=s)
    with torch.no_grad():
        return explainer(x), {}


def _captum_occlusion(model, image, x, region, n, grid, diameter, offset, batch, seed, dims):
    from captum.attr import Occlusion

    with torch.no_grad():
        result = Occlusion(SegmentScore(model, region)).attribute(
            x,
            sliding_window_shapes=(1,) + (diameter,) * dims,
            strides=(1,) + (offset,) * dims,
            baselines=0.0,
            target=0,
            perturbations_per_eval=batch,
        )
    return result, {}


def _captum_rise(model, image, x, region, n, grid, diameter, offset, batch, seed, dims):
    from rise import RISE as CaptumRISE

    with torch.no_grad():
        result = CaptumRISE(SegmentScore(model, region)).attribute(
            x, n_masks=n, initial_mask_shapes=((grid,) * dims,), target=0
        )
    return result, {}


def _monai(model, image, x, region, n, grid, diameter, offset, batch, seed, dims):
    from monai.visualize import OcclusionSensitivity

    overlap = monai_overlap(diameter, offset)
    occ = OcclusionSensitivity(
        SegmentScore(model, region),
        mask_size=diameter,
        n_batch=batch,
        mode=0.0,
        overlap=overlap,
        activate=False,
        verbose=False,
    )
    with torch.no_grad():
        return occ(x)[0], {"overlap": overlap}


_PEERS = {
    "interpret-segmentation:RISE": _is_rise,
    "interpret-segmentation:HDM": _is_hdm,
    "muppet:SegRISE": _muppet,
    "captum:Occlusion": _captum_occlusion,
    "captum-rise": _captum_rise,
    "monai:OcclusionSensitivity": _monai,
}


# ------------------------------------------------------------------------------ maps
def disk_map(distances: np.ndarray, spatial: tuple[int, int], diameter: int, offset: int):
    """interpret-segmentation's HDM grid as a map, in numbers as its ``circle_map`` draws it.

    ``distances[a, b]`` belongs to the disk in the box rows ``[a·offset, a·offset + d]``,
    columns ``[b·offset, b·offset + d]`` (how ``explain`` indexes its masks). Every pixel
    gets the largest distance of the disks over it (``circle_map`` paints larger ones on
    top); pixels under no disk get the smallest distance.
    """
    h, w = spatial
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.full(spatial, -np.inf)
    c, r = diameter / 2.0, diameter / 2.0 + 0.5  # PIL's box includes both corners
    for a in range(distances.shape[0]):
        for b in range(distances.shape[1]):
            inside = (yy - (a * offset + c)) ** 2 + (xx - (b * offset + c)) ** 2 <= r * r
            np.maximum(out, np.where(inside, distances[a, b], -np.inf), out=out)
    out[~np.isfinite(out)] = float(np.min(distances))
    return out


def to_maps(
    tool: str,
    result: Any,
    spatial: tuple[int, ...],
    *,
    base_score: float,
    diameter: int,
    offset: int,
) -> dict[str, np.ndarray]:
    """Saliency maps (float64, ``spatial``, high = important) from a tool's result, by name.

    interpret-segmentation's RISE gives two (``-mean`` and ``-max``). MONAI's map is the
    score with the occluder over each voxel: ``base_score`` minus it is the score drop.
    Distances (HDM) and captum's attributions (score drop) are high where important already.
    """

    def flat(t: Any) -> np.ndarray:
        arr = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
        arr = np.asarray(arr, dtype=np.float64)
        return arr.reshape(arr.shape[-len(spatial) :]) if arr.ndim > len(spatial) else arr

    if tool.startswith("maskscope:"):
        maps = {tool: flat(result.map)}
    elif tool == "interpret-segmentation:RISE":
        maps = {f"{tool}-mean": flat(result[0]), f"{tool}-max": flat(result[1])}
    elif tool == "interpret-segmentation:HDM":
        maps = {tool: disk_map(flat(result), spatial, diameter, offset)}
    elif tool == "monai:OcclusionSensitivity":
        maps = {tool: base_score - flat(result)}
    else:
        maps = {tool: flat(result)}
    for name, m in maps.items():
        if m.shape != tuple(spatial):
            raise ValueError(f"{name}: map of shape {m.shape}, expected {tuple(spatial)}")
    return maps
