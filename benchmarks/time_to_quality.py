"""Time to equal map quality: maskscope against each peer, on shapes2d and a real 3D volume.

For every pair (maskscope method, peer of the same kind) it prints, side by side:

- the peer's wall time for its run at the budget its users run it at (``--peer-n2d``,
  ``--peer-n3d``; occlusion tools at the stride closest to that many positions), and that
  map's deletion AUC (Dice, zero substrate);
- maskscope's *time to quality*: one run of the method, streamed, at its defaults; the
  wall time of the first snapshot whose map correlates ≥ ``--agreement`` with the
  method's own converged map (another seed, ``--converged`` masks; for HDM, the full
  sweep), or whose deletion AUC is within ``--auc-margin`` of the peer's (checked at
  powers of two of the masks done, the evaluation's time left out);
- the ratio peer wall ÷ maskscope's time to quality (target ≥ 3), and the same ratio for
  the agreement criterion alone (deletion AUC at a margin of 0.01 is met early by coarse
  maps on a small segment, so the agreement column is the stricter one). Beside the
  agreement, for the RISE family: the partial correlation given ``C``, the masks' covariance
  with the share of the segment they keep, which the covariate estimator knows exactly: how
  far the rest of the map has converged.

The peer is not asked to converge: its own time to quality would be at least its wall
time at that budget, so the ratio is a lower bound of the speed-up at equal quality. The
peers run in their own venv (``bash benchmarks/setup_peers.sh``), one process each, as in
``quality.py``; maskscope runs here, on the same model, image and threads.

    python benchmarks/time_to_quality.py                 # both cases
    python benchmarks/time_to_quality.py --cases shapes2d --pairs SegRISE:muppet:SegRISE
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402  (benchmarks/quality.py)
from cases import Case, mri_case, shapes_case  # noqa: E402

from maskscope import HDM, RISE, PixelRISE, SegRISE  # noqa: E402
from maskscope.evaluate import faithfulness  # noqa: E402

#: (maskscope method, peer) pairs of the same kind; the peers that run on 3D volumes are
#: captum's Occlusion and MONAI's OcclusionSensitivity (``quality.ONLY_2D``).
PAIRS = (
    ("SegRISE", "muppet:SegRISE"),
    ("PixelRISE-mean", "interpret-segmentation:RISE"),
    ("RISE", "captum-rise"),
    ("HDM", "interpret-segmentation:HDM"),
    ("HDM", "captum:Occlusion"),
    ("HDM", "monai:OcclusionSensitivity"),
    ("SegRISE", "captum:Occlusion"),
    ("SegRISE", "monai:OcclusionSensitivity"),
)
METHODS = {
    "RISE": (RISE, {}),
    "SegRISE": (SegRISE, {}),
    "PixelRISE-mean": (PixelRISE, {"merge": "mean"}),
    "HDM": (HDM, {}),
}


#: Methods whose maps are the same estimator (one converged map serves both).
SAME_MAP = {"PixelRISE-mean": "RISE"}


@dataclass
class Quality:
    """When a maskscope run reached each criterion (None: not within the run)."""

    agree_s: float | None = None
    agree_masks: int | None = None
    agree_r: float | None = None
    #: the agreement beyond the segment's share (see :func:`beyond_share`)
    agree_beyond: float | None = None
    auc_s: float | None = None
    auc_masks: int | None = None
    auc: float | None = None
    total_s: float = 0.0

    @property
    def seconds(self) -> float | None:
        """Time to quality: the first criterion met."""
        times = [t for t in (self.agree_s, self.auc_s) if t is not None]
        return min(times) if times else None


def deletion_auc(case: Case, saliency: np.ndarray, steps: int) -> float:
    """Deletion AUC (Dice, zero substrate), as ``quality.py`` scores every map."""
    res = faithfulness(
        saliency, model=case.model, image=case.image, steps=steps, n_random=0, seed=0,
        substrate="zero", batch_size=16,
    )  # fmt: skip
    return float(res.deletion.auc("dice"))


def share_covariance(snap) -> np.ndarray:
    """``C(x)``: the covariance of a RISE mask with the share of the segment it keeps.

    The covariate estimator adds ``β C`` with ``C`` known exactly, so from its first masks
    its map holds a blurred copy of the segment that is much of the converged map.
    """
    from maskscope._engine.covariate import RegionCovariate, mask_kernels
    from maskscope._engine.masks import RiseMasks

    p = snap.params
    region = torch.from_numpy(np.asarray(snap.reference) > 0)
    masks = RiseMasks(tuple(region.shape), p["grid"], p["p_keep"], 0)
    return RegionCovariate(region, mask_kernels(masks), p["p_keep"]).cov.numpy()


def beyond_share(a: np.ndarray, b: np.ndarray, cov: np.ndarray) -> float:
    """Partial correlation of two maps given ``C``: their agreement beyond the segment's share."""
    x = np.stack([np.ones(cov.size), cov.ravel()], 1)

    def resid(v):
        v = v.ravel().astype(np.float64)
        return v - x @ np.linalg.lstsq(x, v, rcond=None)[0]

    return float(np.corrcoef(resid(a), resid(b))[0, 1])


def method_kwargs(label: str, case: Case, hdm: dict) -> tuple[type, dict]:
    """The method at its defaults (HDM: the occluder of the comparison, in spacing units)."""
    cls, kw = METHODS[label]
    kw = dict(kw)
    if cls is HDM:
        kw.update(hdm, voxel_spacing=case.spacing)
    return cls, kw


def converged(label: str, case: Case, hdm: dict, n: int) -> np.ndarray:
    """The method's own converged map: seed 1 at ``n`` masks (HDM: its full sweep)."""
    cls, kw = method_kwargs(label, case, hdm)
    if cls is not HDM:
        kw.update(n_masks=n, seed=1)
    else:
        kw.update(sweep="full")
    return cls(case.model).explain(case.image, **kw).map


def time_to_quality(label, case, hdm, ref, peer_auc, args) -> Quality:
    """Stream one run; when it first agrees with ``ref``, and first reaches the peer's AUC."""
    cls, kw = method_kwargs(label, case, hdm)
    checks = {2**k for k in range(4, 20)}
    q = Quality()
    t0, spent = time.perf_counter(), 0.0
    for snap in cls(case.model).iter_explain(case.image, yield_every=0.0, **kw):
        now = time.perf_counter() - t0 - spent
        r = float(np.corrcoef(snap.map.ravel(), ref.ravel())[0, 1])
        if q.agree_s is None and r >= args.agreement:
            q.agree_s, q.agree_masks, q.agree_r = now, snap.n_done, r
            if cls is not HDM:
                t1 = time.perf_counter()
                q.agree_beyond = beyond_share(snap.map, ref, share_covariance(snap))
                spent += time.perf_counter() - t1
        due = snap.done or any(c <= snap.n_done for c in checks)
        if q.auc_s is None and peer_auc is not None and due:
            checks = {c for c in checks if c > snap.n_done}
            t1 = time.perf_counter()
            auc = deletion_auc(case, snap.map, args.steps)
            spent += time.perf_counter() - t1
            if auc <= peer_auc + args.auc_margin:
                q.auc_s, q.auc_masks, q.auc = now, snap.n_done, auc
        if q.agree_s is not None and (q.auc_s is not None or peer_auc is None):
            break
    q.total_s = time.perf_counter() - t0 - spent
    return q


def peer_run(case: Case, peer: str, folder: Path, args) -> dict:
    """One run of the peer in its venv: wall time, forwards and its map's deletion AUC."""
    dims = case.image.ndim - 1
    spatial = tuple(case.image.shape[1:])
    budget = args.peer_n2d if dims == 2 else args.peer_n3d
    diameter = args.diameter2d if dims == 2 else args.diameter3d
    occl = peer in quality.OCCLUSION
    stride = quality.pick_stride(peer, spatial, diameter, budget) if occl else 0.0
    cfg = {
        "case": case.name, "dir": str(folder), "tool": peer, "seeds": [0], "n": budget,
        "grid": 6, "diameter": diameter, "stride": stride, "batch": 16, "threads": args.threads,
    }  # fmt: skip
    out = quality.run_tool(args.peers_python, cfg, args.timeout)
    if "error" in out:
        return {"error": out["error"]}
    run = out["runs"][0]
    first = next(iter(run["maps"].values()))
    return {
        "wall": run["wall"],
        "forwards": run["forwards"],
        "stride": stride,
        "diameter": diameter,
        "auc": deletion_auc(case, np.load(first), args.steps),
    }


def run_case(case: Case, args) -> list[dict]:
    """Every pair on one case."""
    dims = case.image.ndim - 1
    rows, refs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        quality.save_case(case, folder)
        for label, peer in args.pairs:
            if dims == 3 and peer in quality.ONLY_2D:
                continue
            print(f"  {case.name}: {peer}", flush=True)
            p = peer_run(case, peer, folder, args)
            if "error" in p:
                rows.append({"case": case.name, "method": label, "peer": peer, **p})
                print(f"    ERROR {p['error']}", flush=True)
                continue
            hdm = {}
            if label == "HDM":  # the peer's occluder and stride (voxels → spacing units)
                unit = case.spacing[0]
                hdm = {"diameter": p["diameter"] * unit, "stride": p["stride"] * unit}
            key = (SAME_MAP.get(label, label), json.dumps(hdm))
            if key not in refs:
                print(f"  {case.name}: maskscope {label} converged map", flush=True)
                refs[key] = converged(label, case, hdm, args.converged)
            q = time_to_quality(label, case, hdm, refs[key], p["auc"], args)
            rows.append({"case": case.name, "method": label, "peer": peer, "peer_": p, "q": q})
            print("    " + line(rows[-1]), flush=True)
    return rows


def line(row: dict) -> str:
    """One printed row: the peer, maskscope's times to each criterion, the ratio."""
    if "error" in row:
        return f"| {row['case']} | maskscope:{row['method']} | {row['peer']} | {row['error']} |"
    p, q = row["peer_"], row["q"]

    def when(s, n, what):
        return f"{s:.2f} s at {n} ({what})" if s is not None else f"not in {q.total_s:.0f} s"

    what = f"r {q.agree_r:.3f}" if q.agree_r else ""
    if q.agree_beyond is not None:
        what += f"; beyond the segment's share {q.agree_beyond:.2f}"
    agree = when(q.agree_s, q.agree_masks, what)
    auc = when(q.auc_s, q.auc_masks, f"AUC {q.auc:.4f}" if q.auc is not None else "")
    ratio = f"{p['wall'] / q.seconds:.1f}×" if q.seconds else "n.a."
    agree_ratio = f"{p['wall'] / q.agree_s:.1f}×" if q.agree_s else "n.a."
    return (
        f"| {row['case']} | maskscope:{row['method']} | {row['peer']} | {p['forwards']} | "
        f"{p['wall']:.1f} | {p['auc']:.4f} | {agree} | {auc} | {ratio} | {agree_ratio} |"
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["shapes2d", "mri3d"])
    ap.add_argument("--pairs", nargs="+", default=[f"{m}:{p}" for m, p in PAIRS],
                    help="METHOD:PEER, e.g. SegRISE:muppet:SegRISE")  # fmt: skip
    ap.add_argument("--peer-n2d", type=int, default=1000)
    ap.add_argument("--peer-n3d", type=int, default=1000)
    ap.add_argument("--diameter2d", type=int, default=25)
    ap.add_argument("--diameter3d", type=int, default=8)
    ap.add_argument("--converged", type=int, default=4000, help="masks of the converged map")
    ap.add_argument("--agreement", type=float, default=0.9)
    ap.add_argument("--auc-margin", type=float, default=0.01)
    ap.add_argument("--steps", type=int, default=200, help="deletion steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--peers-python", default=str(quality.PEERS_PYTHON))
    args = ap.parse_args()
    args.pairs = [tuple(s.split(":", 1)) for s in args.pairs]
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# time to quality, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s)"
    )
    print("| case | maskscope | peer | peer forwards | peer wall (s) | peer deletion AUC | "
          "maskscope: r ≥ agreement with own converged map | maskscope: peer's AUC + margin | "
          "speed-up (first met) | speed-up (agreement) |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---|---|---:|---:|")
    builders = {"shapes2d": shapes_case, "mri3d": mri_case}
    for name in args.cases:
        run_case(builders[name](), args)


if __name__ == "__main__":
    main()
