"""Results of the faithfulness evaluation: curves, their AUCs, a table, JSON and a PNG."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Curve", "FaithfulnessResult", "trapezoid_auc"]

CURVE_NAMES = ("deletion", "insertion", "random_deletion", "random_insertion")


def trapezoid_auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Area under ``values`` over ``fractions`` by the trapezoid rule (NaN if any is NaN)."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) * 0.5 * np.diff(x)))


@dataclass(frozen=True)
class Curve:
    """One deletion or insertion curve, complete or in progress.

    Attributes
    ----------
    kind
        ``"deletion"`` (image voxels replaced by the substrate) or ``"insertion"`` (the
        substrate's voxels replaced by the image's).
    order
        ``"saliency"`` (most salient voxels first) or ``"random"`` (the baseline).
    fractions
        Fraction of the voxels removed (deletion) or inserted (insertion) at each step,
        ``(steps + 1,)`` from 0 to 1.
    runs
        Per score (``"dice"``, ``"probability"``): ``(n_orders, steps + 1)`` values, NaN
        where not computed yet. One order for the saliency curve; the random baseline has
        as many as random orders were asked for.
    """

    kind: str
    order: str
    fractions: np.ndarray
    runs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_orders(self) -> int:
        """Voxel orders averaged in this curve."""
        return int(next(iter(self.runs.values())).shape[0])

    @property
    def n_done(self) -> int:
        """Perturbed inputs scored so far (over all orders)."""
        return int(np.isfinite(next(iter(self.runs.values()))).sum())

    @property
    def done(self) -> bool:
        """Whether every step of every order is scored."""
        return all(bool(np.isfinite(r).all()) for r in self.runs.values())

    def scores(self, score: str = "dice") -> np.ndarray:
        """The curve (mean over orders) for ``"dice"`` or ``"probability"``; NaN where missing."""
        runs = self._runs(score)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            return np.nanmean(runs, axis=0)

    def auc(self, score: str = "dice") -> float:
        """Area under the curve over the fraction in [0, 1] (NaN until the curve is done)."""
        runs = self._runs(score)
        if not np.isfinite(runs).all():
            return float("nan")
        return trapezoid_auc(self.fractions, runs.mean(axis=0))

    def auc_std(self, score: str = "dice") -> float:
        """Standard deviation of the AUC over the random orders (0 for one order)."""
        runs = self._runs(score)
        if not np.isfinite(runs).all():
            return float("nan")
        aucs = [trapezoid_auc(self.fractions, r) for r in runs]
        return float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0

    def _runs(self, score: str) -> np.ndarray:
        if score not in self.runs:
            raise ValueError(f"score must be one of {sorted(self.runs)}, got {score!r}")
        return self.runs[score]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: fractions, the mean curve and the AUC per score."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "order": self.order,
            "n_orders": self.n_orders,
            "fractions": self.fractions.tolist(),
        }
        for name in self.runs:
            out[name] = {
                "curve": [_num(v) for v in self.scores(name)],
                "auc": _num(self.auc(name)),
                "auc_std": _num(self.auc_std(name)),
            }
        return out


def _num(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass(frozen=True)
class FaithfulnessResult:
    """Deletion and insertion curves of a map, with the random-order baseline.

    A low deletion AUC (the score falls fast when the most salient voxels go) and a high
    insertion AUC (it rises fast when they come back) mean a faithful map; the random
    order is what a map that knows nothing gets.

    Attributes
    ----------
    deletion, insertion
        The curves in saliency order (None when not asked for).
    random_deletion, random_insertion
        The baseline curves in random order (None when not asked for).
    substrate
        What removed voxels were replaced with.
    steps
        Steps per curve (``steps + 1`` points, fractions 0 to 1).
    n_random
        Random orders averaged in the baseline.
    seed
        Seed of the random orders.
    target
        The class scored (None: all foreground classes).
    method
        The method that made the map, when known.
    n_forward
        Images passed through the model so far (the unperturbed one included).
    n_voxels
        Voxels the curves order (the fractions are of these).
    window
        The box of the voxels ordered, one ``[start, stop]`` per spatial axis (for a mask,
        its bounding box: fewer voxels than the box holds, ``n_voxels``); None when they
        are the whole image.
    slice_index
        The slice evaluated, for an explanation made slice by slice; else None.
    elapsed
        Seconds since the evaluation started.
    done
        True for the last snapshot of an evaluation that was not cancelled.
    """

    deletion: Curve | None
    insertion: Curve | None
    random_deletion: Curve | None
    random_insertion: Curve | None
    substrate: str
    steps: int
    n_random: int
    seed: int
    target: int | None = None
    method: str | None = None
    n_forward: int = 0
    n_voxels: int = 0
    window: list[list[int]] | None = None
    slice_index: int | None = None
    elapsed: float = 0.0
    done: bool = False

    def window_text(self) -> str:
        """``"the 1152 voxels of the window 28:60,0:36"``, or of a mask inside that box."""
        if self.window is None:
            return f"all {self.n_voxels} voxels"
        from ..roi import box_text

        box = box_text(self.window)
        size = int(np.prod([b - a for a, b in self.window]))
        where = f"the window {box}" if size == self.n_voxels else f"a mask within the box {box}"
        return f"the {self.n_voxels} voxels of {where}"

    def curves(self) -> dict[str, Curve]:
        """The curves present, by name (``"deletion"``, ``"random_deletion"``, ...)."""
        found = {name: getattr(self, name) for name in CURVE_NAMES}
        return {k: v for k, v in found.items() if v is not None}

    def auc(self, kind: str = "deletion", score: str = "dice", *, random: bool = False) -> float:
        """AUC of one curve: ``kind`` ``"deletion"``/``"insertion"``, of the map or the baseline."""
        if kind not in ("deletion", "insertion"):
            raise ValueError(f"kind must be 'deletion' or 'insertion', got {kind!r}")
        curve = getattr(self, f"random_{kind}" if random else kind)
        if curve is None:
            raise ValueError(f"this result has no {'random ' if random else ''}{kind} curve")
        return curve.auc(score)

    def table(self) -> str:
        """A plain-text table: AUC of the map and of the random baseline, per curve and score."""
        rows = [("curve", "score", "map AUC", "random AUC", "better?")]
        for kind in ("deletion", "insertion"):
            curve, base = getattr(self, kind), getattr(self, f"random_{kind}")
            if curve is None:
                continue
            for score in curve.runs:
                a = curve.auc(score)
                b = base.auc(score) if base is not None else float("nan")
                spread = base.auc_std(score) if base is not None and base.n_orders > 1 else None
                rnd = f"{b:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")
                better = "" if not np.isfinite(a + b) else ("yes" if _better(kind, a, b) else "no")
                rows.append((kind, score, f"{a:.4f}", rnd, better))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, AUCs and curves."""
        return {
            "method": self.method,
            "substrate": self.substrate,
            "steps": self.steps,
            "n_random": self.n_random,
            "seed": self.seed,
            "target": self.target,
            "n_forward": self.n_forward,
            "n_voxels": self.n_voxels,
            "window": self.window,
            "slice_index": self.slice_index,
            "elapsed": self.elapsed,
            "done": self.done,
            "curves": {name: c.to_dict() for name, c in self.curves().items()},
        }

    def to_png(self, path: str | Path | None = None, *, width: int = 880) -> bytes:
        """Plot the curves (one panel per curve kind and score) as a PNG.

        Parameters
        ----------
        path
            Also write the PNG here.
        width
            Width of the image in pixels.

        Returns
        -------
        bytes
            The PNG file's content.
        """
        from .plot import curves_png

        data = curves_png(self, width=width)
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def __repr__(self) -> str:
        parts = []
        for kind in ("deletion", "insertion"):
            c = getattr(self, kind)
            if c is not None:
                parts.append(f"{kind} AUC {c.auc('dice'):.3f}")
        state = "done" if self.done else "partial"
        return f"FaithfulnessResult({', '.join(parts)} (Dice), {self.substrate}, {state})"


def _better(kind: str, auc: float, baseline: float) -> bool:
    return auc < baseline if kind == "deletion" else auc > baseline
