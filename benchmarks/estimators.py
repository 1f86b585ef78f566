"""Seed agreement of the RISE-family estimators, and how well the reliability predicts it.

For each case (the bundled 2D sample; the real MRI volume with a MONAI U-Net, see
``cases.py``), each method and each estimator/sampling pair, two seeds are run to the largest
N and their maps compared at every N in the list (a run's snapshot after n masks is exactly
the n-mask run: masks depend only on ``(seed, index)``). Printed side by side per row: the
measured two-seed correlation, the reliability each run reported (mean of the two), their
difference, and the two seeds' partial correlation given ``C`` (the masks' covariance with
the share of the segment they keep, which the covariate estimator adds exactly): their
agreement beyond that share.

    python benchmarks/estimators.py                       # both cases, N up to 2000
    python benchmarks/estimators.py --cases mri3d --n 256 1024 4096 --configs centred/iid
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import case_parser, cases_of
from time_to_quality import beyond_share, share_covariance

from maskscope import PixelRISE, SegRISE

METHODS = {"SegRISE": (SegRISE, {}), "PixelRISE-mean": (PixelRISE, {"merge": "mean"})}
CONFIGS = (
    "paper/iid",
    "centred/iid",
    "centred/stratified",
    "covariate/iid",
    "covariate/stratified",
)


def snapshots_at(method, image, ns, seed, **kw) -> dict[int, object]:
    """The snapshots of one run of ``max(ns)`` masks at each n in ``ns``.

    Chunks of 8 masks: the loop ends a chunk at every multiple of 256 (the sums' blocks), so
    a snapshot falls on every multiple of 8.
    """
    bad = [n for n in ns if n % 8]
    if bad:
        raise SystemExit(f"--n must be multiples of 8 (snapshots come every 8 masks), got {bad}")
    want = set(ns)
    got = {}
    for snap in method.iter_explain(
        image, n_masks=max(ns), seed=seed, batch_size=8, max_batch_voxels=2**24, **kw
    ):
        if snap.n_done in want:
            got[snap.n_done] = snap
    return got


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def run_case(case, ns, configs, grid, pairs: int = 1) -> list[dict]:
    rows = []
    for label, (cls, extra) in METHODS.items():
        method = cls(case.model)
        for config in configs:
            estimator, sampling = config.split("/")
            kw = {"estimator": estimator, "sampling": sampling, "grid": grid, **extra}
            t0 = time.perf_counter()
            runs = [snapshots_at(method, case.image, ns, seed, **kw) for seed in range(2 * pairs)]
            wall = time.perf_counter() - t0
            for n in ns:
                # mean over the seed pairs (0, 1), (2, 3), ...: one pair's correlation is noisy
                measured = float(
                    np.mean(
                        [corr(runs[i][n].map, runs[i + 1][n].map) for i in range(0, 2 * pairs, 2)]
                    )
                )
                predicted = float(np.mean([r[n].reliability for r in runs]))
                cov = share_covariance(runs[0][n])
                beyond = float(
                    np.mean(
                        [
                            beyond_share(runs[i][n].map, runs[i + 1][n].map, cov)
                            for i in range(0, 2 * pairs, 2)
                        ]
                    )
                )
                rows.append(
                    {
                        "case": case.name,
                        "method": label,
                        "config": config,
                        "n": n,
                        "agreement": measured,
                        "reliability": predicted,
                        "error": predicted - measured,
                        "beyond_share": beyond,
                        "wall_s": wall,
                    }
                )
                print(
                    f"{case.name:9s} {label:15s} {config:19s} grid={grid} N={n:5d}  "
                    f"two seeds r={measured:6.3f}"
                    f"  reliability {predicted:6.3f}  ({predicted - measured:+.3f})"
                    f"  beyond the segment's share r={beyond:6.3f}",
                    flush=True,
                )
    return rows


def main() -> None:
    parser = case_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", nargs="+", type=int, default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--grid", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=1, help="seed pairs averaged")
    args = parser.parse_args()
    for case in cases_of(args):
        run_case(case, args.n, args.configs, args.grid, args.pairs)


if __name__ == "__main__":
    main()
