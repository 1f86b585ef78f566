"""Do the maps keep their promises? Early stopping and the model-randomisation check.

For each case (``cases.py``):

- ``tol``: SegRISE and PixelRISE-mean with ``tol=0.1`` (stop at reliability 0.9) for seeds 0
  and 1: masks used, the reliability each run reported, and the measured correlation of the
  two stopped maps (what the reliability promised), beside a full run's.
- randomisation: SegRISE's map for the trained model and for the model with its layers
  re-initialised from the output end (cascading, Adebayo et al. 2018), rank correlation with
  the trained model's map at each step: a faithful method's map must change.

    python benchmarks/promises.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import case_parser, cases_of

from maskscope import PixelRISE, SegRISE
from maskscope.evaluate import randomization_check

METHODS = {"SegRISE": (SegRISE, {}), "PixelRISE-mean": (PixelRISE, {"merge": "mean"})}


def early_stopping(case, tol: float, cap: int) -> None:
    for label, (cls, extra) in METHODS.items():
        method = cls(case.model)
        runs = [
            method.explain(case.image, n_masks=cap, tol=tol, seed=s, batch_size=16, **extra)
            for s in (0, 1)
        ]
        r = float(np.corrcoef(runs[0].map.ravel(), runs[1].map.ravel())[0, 1])
        rel = [round(x.reliability, 3) for x in runs]
        print(
            f"{case.name:9s} {label:15s} tol={tol}: stopped early {[x.stopped_early for x in runs]}"
            f" after {[x.n_done for x in runs]} masks (cap {cap}); reliability {rel}; the two "
            f"stopped maps correlate {r:.3f} (promised {np.mean(rel):.3f})",
            flush=True,
        )


def randomisation(case, n_masks: int, steps: int) -> None:
    result = randomization_check(
        SegRISE(case.model), case.image, steps=steps, n_masks=n_masks, seed=0, batch_size=16
    )
    print(f"{case.name} SegRISE randomisation (N={n_masks}):\n{result.table()}", flush=True)


def main() -> None:
    parser = case_parser(__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=0.1)
    parser.add_argument("--cap", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=3, help="randomisation cascade steps")
    args = parser.parse_args()
    for case in cases_of(args):
        early_stopping(case, args.tol, args.cap)
        randomisation(case, 500, args.steps)


if __name__ == "__main__":
    main()
