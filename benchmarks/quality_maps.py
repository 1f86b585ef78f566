"""Make the maps of one tool for the quality benchmark: ``python quality_maps.py '{json}'``.

``benchmarks/quality.py`` starts this script in the peers' venv (maskscope from ``src/``)
once per (case, tool). It loads the case from the shared folder ``dir`` (``shapes2d``: the
bundled sample and model; ``mri3d``: the volume and the trained U-Net's weights that
``quality.py`` saved there), runs the tool once per seed with a counting wrapper around the
model, saves each map (high = important, see :func:`peers.to_maps`) as ``.npy`` and prints
one JSON line: per seed the wall time, the images through the model and the model calls,
and for maskscope the reliability it reported.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402  (benchmarks/peers.py)
from parts import Counting  # noqa: E402  (benchmarks/parts.py)


def load_case(name: str, folder: Path) -> tuple[torch.nn.Module, np.ndarray, tuple]:
    """(model in eval mode, image ``(1, *spatial)``, voxel spacing) of a saved case."""
    from cases import mri_model, shapes_case

    if name == "shapes2d":
        case = shapes_case()
        return case.model.eval(), case.image, case.spacing
    model = mri_model()
    model.load_state_dict(torch.load(folder / f"{name}_model.pt", weights_only=True))
    meta = json.loads((folder / f"{name}.json").read_text())
    return model.eval(), np.load(folder / f"{name}_image.npy"), tuple(meta["spacing"])


def maskscope_method(label: str, cfg: dict, spacing: tuple) -> tuple[type, dict]:
    """(class, explain() keywords): the defaults but the budget and the occluder size."""
    from maskscope import HDM, RISE, PixelRISE, SegRISE

    rise = {"n_masks": int(cfg["n"]), "grid": int(cfg["grid"]), "batch_size": int(cfg["batch"])}
    hdm = {
        "diameter": float(cfg["diameter"]) * spacing[0],  # voxels → spacing units (isotropic)
        "stride": float(cfg["stride"]) * spacing[0],
        "voxel_spacing": spacing,
        "batch_size": int(cfg["batch"]),
        "sweep": "full",  # the budget is the number of centres, as for the peers' sweeps
    }
    table = {
        "RISE": (RISE, rise),
        "SegRISE": (SegRISE, rise),
        "PixelRISE-mean": (PixelRISE, {**rise, "merge": "mean"}),
        "PixelRISE-max": (PixelRISE, {**rise, "merge": "max"}),
        "HDM": (HDM, hdm),
        "HDM-hd95": (HDM, {**hdm, "distance": "hd95"}),
        "HDM-dice": (HDM, {**hdm, "distance": "dice"}),
    }
    if label not in table:
        raise ValueError(f"maskscope method must be one of {', '.join(table)}, got {label!r}")
    return table[label]


def save_maps(maps: dict, folder: Path, prefix: str, suffix: str) -> dict[str, str]:
    """Save each named map as ``folder/<prefix><name><suffix>.npy``; name → path."""
    paths = {}
    for name, m in maps.items():
        safe = name.replace(":", "_").replace("/", "_")
        path = folder / f"{prefix}{safe}{suffix}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, m.astype(np.float64))
        paths[name] = str(path)
    return paths


def main() -> None:
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(int(cfg.get("threads", 1)))
    folder = Path(cfg["dir"])
    tool = cfg["tool"]
    base, image, spacing = load_case(cfg["case"], folder)
    x = torch.as_tensor(image)[None]
    with torch.inference_mode():
        base(x.expand(int(cfg["batch"]), *x.shape[1:]).contiguous())  # warm-up
        region = base(x).argmax(dim=1)[0] == 1
        base_score = float(peers.SegmentScore(base, region)(x)[0, 0])
    method = None
    if tool.startswith("maskscope:"):
        method = maskscope_method(tool.split(":", 1)[1], cfg, spacing)
    offset = round(cfg["stride"])
    runs = []
    for seed in cfg["seeds"]:
        counted = Counting(base)
        t0 = time.perf_counter()
        result, extra = peers.run_tool(
            tool,
            counted,
            image,
            region,
            n=int(cfg["n"]),
            grid=int(cfg["grid"]),
            diameter=int(cfg["diameter"]),
            offset=offset,
            batch=int(cfg["batch"]),
            seed=seed,
            method=method,
        )
        wall = time.perf_counter() - t0
        maps = peers.to_maps(
            tool,
            result,
            tuple(image.shape[1:]),
            base_score=base_score,
            diameter=int(cfg["diameter"]),
            offset=offset,
        )
        paths = save_maps(maps, folder / "maps", f"{cfg['case']}-", f"-seed{seed}")
        reliability = getattr(result, "reliability", None)
        runs.append(
            {
                "seed": seed,
                "wall": wall,
                "forwards": counted.images,
                "calls": counted.calls,
                "reliability": None if reliability is None else float(reliability),
                "maps": paths,
                **extra,
            }
        )
    print(json.dumps({"tool": tool, "case": cfg["case"], "runs": runs}))


if __name__ == "__main__":
    main()
