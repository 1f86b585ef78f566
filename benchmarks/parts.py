"""One benchmark configuration per process: ``python benchmarks/parts.py KIND '{json}'``.

``benchmarks/run.py`` starts this script once per configuration (so that peak memory and
allocator state never carry over) and reads the JSON object printed on the last line of
its standard output. Every configuration runs with ``torch.set_num_threads(threads)``
(default 1) and reports its peak resident set size (``ru_maxrss``).

Kinds
-----
overhead      one (model, method) case of ``overhead.py``: wall / forward floor, medians
side          one side-by-side run: maskscope or a peer tool, same model, image, evaluations
size          time and peak memory of one method at one image size (2D or 3D)
snapshot      time to the first streamed snapshot of ``iter_explain``
early         SegRISE with early stopping (``tol``) or a long run; saves the map
profile       cProfile of one explain() run: shares of the wall time per function
forwards      the model's time per image at fixed batch sizes (``floor.py``)
default       one method at default settings: wall per evaluation (``floor.py``)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import overhead  # noqa: E402  (benchmarks/overhead.py)
import peers  # noqa: E402  (benchmarks/peers.py)
from common import batch_used, model_and_image, sync  # noqa: E402
from floor import run_default, run_forwards  # noqa: E402  (benchmarks/floor.py)


def peak_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Counting(torch.nn.Module):
    """Wraps a model and counts its calls and the inputs it evaluated."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        if isinstance(getattr(model, "in_channels", None), int):
            self.in_channels = model.in_channels
        self.calls = 0
        self.images = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += int(x.shape[0])
        return self.model(x)


def _model_image(model: str, device: str):
    """(model, image (1, *spatial) float32) for the side-by-side runs (``common.MODELS``)."""
    m, image, _spacing = model_and_image(model, device)
    return m, image


def _warm(model, image, device, batch: int = 16) -> None:
    x = torch.as_tensor(image)[None].to(device)
    with torch.inference_mode():
        model(x.expand(batch, *x.shape[1:]).contiguous())


# ----------------------------------------------------------------------------------- kinds
def run_overhead(cfg: dict) -> dict:
    """One case of overhead.py (see :func:`overhead.make_case`)."""
    args = _Args(cfg)
    case = overhead.make_case(cfg["model"], cfg["method"], args)
    return overhead.measure(case, cfg["repeats"], cfg["device"])


class _Args:
    def __init__(self, d: dict) -> None:
        self.__dict__.update(d)


def _ours(tool: str, n: int, offset: int, diameter: int, batch: int | None, dims: int):
    """(method class, keywords) of a ``maskscope:<label>`` tool (None for a peer), and the batch.

    ``<label>@1`` runs at batch 1, like the peers that call the model once per image.
    """
    if not tool.startswith("maskscope:"):
        return None, batch
    label = tool.split(":", 1)[1]
    if label.endswith("@1"):
        label, batch = label[:-2], 1
    method = overhead.method_kwargs(label, n_masks=n, stride=offset, batch_size=batch, dims=dims)
    if label == "HDM":
        method[1]["diameter"] = diameter
    return method, batch


def run_side(cfg: dict) -> dict:
    """maskscope or a peer on one image: wall, peak RSS, forward calls.

    With ``floor_batch``, also the floor right after the run: the model alone on as many
    inputs as the tool evaluated, in batches of ``floor_batch``.

    In 3D (``model="unet3d"``) every size is in voxels (no spacing), so that a ball of
    ``diameter`` voxels every ``offset`` voxels matches captum's and MONAI's cubes.
    """
    device, tool, n = cfg["device"], cfg["tool"], int(cfg["n"])
    diameter, offset = int(cfg["diameter"]), int(cfg["offset"])
    batch = None if cfg.get("batch_size") is None else int(cfg["batch_size"])  # None: default
    base, image = _model_image(cfg["model"], device)
    dims = image.ndim - 1
    grid = 8 if dims == 2 else 6
    counted = Counting(base)
    x = torch.as_tensor(image)[None].to(device)  # (1, 1, *spatial)
    with torch.inference_mode():
        region = base(x).argmax(dim=1)[0] == 1
    _warm(base, image, device, batch or 1)
    before, peak_before = rss_mb(), peak_mb()
    method, batch = _ours(tool, n, offset, diameter, batch, dims)
    t0 = time.perf_counter()
    result, extra = peers.run_tool(
        tool,
        counted,
        image,
        region,
        n=n,
        grid=grid,
        diameter=diameter,
        offset=offset,
        batch=batch or 1,
        method=method,
    )
    sync(device)
    wall = time.perf_counter() - t0
    if method is not None:
        extra = {**extra, "batch_used": batch_used(result, batch or 0)}
    del result
    if cfg.get("floor_batch"):  # the model alone on as many inputs, at that batch, right after
        fb = int(cfg["floor_batch"])
        extra = {**extra, "floor": overhead.forward_floor(base, x, counted.images, fb)}
    return {
        "tool": tool,
        "model": cfg["model"],
        "wall": wall,
        "peak_mb": peak_mb(),
        "rss_before_mb": before,
        "peak_before_mb": peak_before,
        "growth_mb": peak_mb() - before,
        "calls": counted.calls,
        "evaluations": counted.images,
        **extra,
    }


def run_size(cfg: dict) -> dict:
    """One method at one image size: wall, forward floor, peak RSS."""
    from maskscope.data import phantom3d, shapes2d
    from maskscope.models import load_model

    device, size, dims = cfg["device"], int(cfg["size"]), int(cfg["dims"])
    if dims == 2:
        image, spacing = shapes2d(seed=7, size=size).image, (1.0, 1.0)
        model = load_model("shapes2d", device=device)
    else:
        ph = phantom3d(seed=3, shape=(size, size, size))
        image, spacing = ph.image, ph.voxel_spacing
        model = load_model("phantom3d", device=device)
    cls, kw = overhead.method_kwargs(
        cfg["method"],
        n_masks=cfg["n"],
        stride=cfg.get("stride", 5.0),
        batch_size=cfg["batch_size"],
        dims=dims,
    )
    if dims == 3:
        # the 3D U-Net finds no lesion in the smallest phantoms: explain the true lesion
        kw["voxel_spacing"] = spacing
        kw["reference"] = ph.label
    before = rss_mb()
    t0 = time.perf_counter()
    expl = cls(model).explain(image, **kw)
    sync(device)
    wall = time.perf_counter() - t0
    peak = peak_mb()
    x = torch.as_tensor(image)[None].to(device)
    chunk = batch_used(expl)  # the batch used, after the voxel limit
    floor = overhead.forward_floor(model, x, expl.n_forward, chunk)
    out = {
        "dims": dims,
        "size": size,
        "voxels": int(np.prod(image.shape[1:])),
        "method": cfg["method"],
        "n": expl.n_forward,
        "batch_size": chunk,
        "wall": wall,
        "floor": floor,
        "ratio": wall / floor,
        "peak_mb": peak,
        "rss_before_mb": before,
    }
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_snapshot(cfg: dict) -> dict:
    """Time from ``iter_explain`` to its first snapshot, and the time of one chunk."""
    args = _Args(cfg)
    _, label, explainer, image, kw = overhead.make_case(cfg["model"], cfg["method"], args)
    explainer.explain(image, **{**kw, **_tiny(label)})  # warm-up
    x = torch.as_tensor(image)[None].to(cfg["device"])
    t0 = time.perf_counter()
    gen = explainer.iter_explain(image, **kw)
    first = next(gen)
    t_first = time.perf_counter() - t0
    gen.close()
    bs = batch_used(first)
    # one chunk = the reference forward + one batch of perturbed inputs
    chunk = overhead.forward_floor(explainer.model, x, 1, 1) + overhead.forward_floor(
        explainer.model, x, bs, bs
    )
    return {
        "model": cfg["model"],
        "method": label,
        "batch_size": bs,
        "first_n_done": int(first.n_done),
        "n_total": int(first.n_total),
        "first_s": t_first,
        "one_chunk_floor_s": chunk,
    }


def _tiny(label: str) -> dict:
    return {"stride": 60.0} if label == "HDM" else {"n_masks": 32}


def run_early(cfg: dict) -> dict:
    """SegRISE with ``tol`` (or a long run without): masks used, wall; saves the map."""
    from maskscope import SegRISE

    device = cfg["device"]
    model, image = _model_image(cfg["model"], device)
    kw = {"n_masks": int(cfg["n"]), "grid": 8, "batch_size": 16, "seed": int(cfg["seed"])}
    if cfg.get("tol") is not None:
        kw["tol"] = float(cfg["tol"])
    t0 = time.perf_counter()
    expl = SegRISE(model).explain(image, **kw)
    wall = time.perf_counter() - t0
    np.save(cfg["map_path"], expl.map.astype(np.float32))
    return {
        "model": cfg["model"],
        "tol": cfg.get("tol"),
        "seed": int(cfg["seed"]),
        "n_max": int(cfg["n"]),
        "masks_used": int(expl.n_done),
        "stopped_early": bool(expl.stopped_early),
        "rel_error": None if expl.rel_error is None else float(expl.rel_error),
        "wall": wall,
        "map_path": cfg["map_path"],
    }


#: Wrappers around the whole run (their cumulative time is the run): left out of the profile.
_SKIP = ("methods/base.py", "methods/_snapshots.py", "_engine/loop.py:run_task")


def run_profile(cfg: dict) -> dict:
    """cProfile of one ``explain`` run: where the wall time goes, as shares of it.

    ``functions``: maskscope functions (and the model's forward) by cumulative time;
    ``builtins``: torch / numpy built-ins by self time.
    """
    import cProfile
    import pstats

    args = _Args(cfg)
    _, label, explainer, image, kw = overhead.make_case(cfg["model"], cfg["method"], args)
    explainer.explain(image, **{**kw, **_tiny(label)})  # warm-up
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    expl = explainer.explain(image, **kw)
    prof.disable()
    wall = time.perf_counter() - t0
    x = torch.as_tensor(image)[None].to(cfg["device"])
    floor = overhead.forward_floor(explainer.model, x, expl.n_forward, batch_used(expl))
    stats = pstats.Stats(prof).stats
    funcs, builtins = [], []
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        if "/maskscope/" in file:
            where = f"{file.split('/maskscope/', 1)[1]}:{name}"
            if any(where.startswith(s) for s in _SKIP) or name in ("explain", "<lambda>"):
                continue
            funcs.append(
                {
                    "function": where,
                    "line": line,
                    "calls": ncalls,
                    "cum_s": cumtime,
                    "self_s": tottime,
                }
            )
        elif file == "~":
            builtins.append({"function": name, "calls": ncalls, "self_s": tottime})
    funcs.sort(key=lambda f: -f["cum_s"])
    builtins.sort(key=lambda f: -f["self_s"])
    return {
        "model": cfg["model"],
        "method": label,
        "forwards": expl.n_forward,
        "wall": wall,
        "floor": floor,
        "functions": funcs[:14],
        "builtins": builtins[:8],
    }


KINDS = {
    "profile": run_profile,
    "overhead": run_overhead,
    "side": run_side,
    "size": run_size,
    "snapshot": run_snapshot,
    "early": run_early,
    "forwards": run_forwards,
    "default": run_default,
}


def main() -> None:
    kind, cfg = sys.argv[1], json.loads(sys.argv[2])
    torch.set_num_threads(int(cfg.get("threads", 1)))
    if kind not in KINDS:
        raise SystemExit(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out = KINDS[kind](cfg)
    out["kind"] = kind
    print(json.dumps(out))


if __name__ == "__main__":
    main()
