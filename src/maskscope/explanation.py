"""The :class:`Explanation` snapshot: a saliency map and everything needed to trust it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RELIABILITY_WORDS", "Explanation", "describe_reliability"]

_ARRAYS = ("map", "stderr", "reference", "prediction", "roi", "image")


@dataclass(frozen=True)
class Explanation:
    """One snapshot of an explanation, complete or in progress.

    Every snapshot owns its arrays: later snapshots of the same run never change it.

    Attributes
    ----------
    method
        ``"RISE"``, ``"PixelRISE"``, ``"SegRISE"`` or ``"HDM"``.
    map
        The saliency map, shaped like the input's spatial axes (``(H, W)`` or ``(D, H, W)``).
        For a 2D model explained slice by slice, slices not computed are 0 (see ``slices``).
    params
        The method's parameters and the run's options (JSON-serialisable).
    n_done, n_total
        Perturbed inputs evaluated so far and planned.
    elapsed
        Seconds since the run started.
    stderr
        Per-voxel standard error of ``map`` (RISE family; None where undefined).
    extras
        Further named maps (e.g. ``"mean"`` for a max-merged PixelRISE, HDM's views).
    reference
        The reference segmentation the scores compare with (label image), when one is used.
    prediction
        The model's segmentation of the unperturbed input, when the model segments.
    roi
        The region of interest the scores saw (boolean, the map's shape) when the run
        explained one (``roi=``); the union of them for several. Outside it, the scores
        counted every voxel as background, and so does :func:`maskscope.evaluate.
        faithfulness`.
    image
        The input ``(C, *spatial)`` (shared between snapshots of one run, never modified).
    voxel_spacing
        Physical size of a voxel per spatial axis.
    slices
        The computed slices when a 2D model explains a volume, else None.
    n_forward
        Images passed through the model so far (perturbed inputs + unperturbed ones).
    done
        True for the last snapshot of a run that was not interrupted.
    cancelled
        True for the last snapshot of a run stopped by a
        :class:`~maskscope._engine.cancel.CancelToken` (``done`` is then False).
    stopped_early
        True when the run stopped because the standard error reached the tolerance.
    rel_error
        RMS standard error divided by the map's spread (its standard deviation over voxels;
        RISE family), else None.
    reliability
        Predicted correlation between this map and a map made the same way with another
        seed (split-half reliability, Spearman–Brown corrected; RISE family and PixelRISE
        mean), else None. 0.9 means two seeds' maps would correlate about 0.9.
    target
        The explained class.
    """

    method: str
    map: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    n_done: int = 0
    n_total: int = 0
    elapsed: float = 0.0
    stderr: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    reference: np.ndarray | None = None
    prediction: np.ndarray | None = None
    roi: np.ndarray | None = None
    image: np.ndarray | None = None
    voxel_spacing: tuple[float, ...] = ()
    slices: tuple[int, ...] | None = None
    n_forward: int = 0
    done: bool = False
    cancelled: bool = False
    stopped_early: bool = False
    rel_error: float | None = None
    reliability: float | None = None
    target: int | None = None

    @property
    def progress(self) -> float:
        """Fraction of the planned work done, in [0, 1]."""
        return 1.0 if self.n_total == 0 else min(1.0, self.n_done / self.n_total)

    @property
    def ndim(self) -> int:
        """Number of spatial axes of the map."""
        return self.map.ndim

    def to_torch(self, name: str = "map", device: Any = None):
        """A map as a torch tensor: ``"map"``, ``"stderr"`` or the name of an extra."""
        import torch

        arr = self.extras[name] if name in self.extras else getattr(self, name)
        if arr is None:
            raise ValueError(f"this explanation has no {name!r}")
        return torch.from_numpy(np.array(arr)).to(device or "cpu")

    def reliability_text(self) -> str:
        """The reliability in words, for people who do not read correlations.

        A finished adaptive HDM sweep that skipped centres says how many the model saw.
        """
        note = self.coverage_text()
        if self.method == "HDM" and self.done and not np.any(self.map):
            seen = "" if note is None else f"; {note}"
            return (
                "exact, and flat: no occluder changed the distance (a larger diameter, "
                f"another fill or distance='dice' may find what the segmentation depends on){seen}"
            )
        if self.reliability is None and note is not None:
            return f"deterministic, no sampling noise: {note}"
        flat = self.map.size > 0 and float(np.ptp(self.map)) == 0.0
        return describe_reliability(self.reliability, self.method, n_masks=self.n_done, flat=flat)

    def coverage_text(self) -> str | None:
        """For a finished adaptive HDM sweep that skipped centres, how many the model saw;
        None otherwise."""
        seen = self.extras.get("grid_evaluated")
        if not self.done or seen is None:
            return None
        seen = np.asarray(seen)
        if self.slices is not None:  # a 2D model slice by slice: the slices it explained
            seen = seen[list(self.slices)]
        n_seen, n_all = int(np.count_nonzero(seen)), int(np.size(seen))
        # several targets' sweeps evaluate the union of their centres: the run's count
        # (``seen`` marks the first target's own centres, those exact in its ``grid_raw``)
        n_seen = max(n_seen, min(int(self.n_done), n_all))
        if n_seen == n_all:
            return None
        return (
            f"the model saw {n_seen} of {n_all} centres, the others take their neighbours' "
            "interpolation (sweep='full' evaluates every centre)"
        )

    def with_status(self, **changes: Any) -> Explanation:
        """A copy with some fields changed (e.g. ``done``)."""
        return replace(self, **changes)

    # ---------------------------------------------------------------- save / load
    def save(self, path: str | Path, *, include_image: bool = True) -> Path:
        """Save to a compressed ``.npz`` file with the parameters as JSON.

        Parameters
        ----------
        path
            Destination; ``.npz`` is appended when missing.
        include_image
            Also store the input image.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            value = getattr(self, name)
            if value is not None and (name != "image" or include_image):
                arrays[name] = np.asarray(value)
        for name, value in self.extras.items():
            arrays[f"extra__{name}"] = np.asarray(value)
        meta = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in _ARRAYS and f.name != "extras"
        }
        meta["slices"] = list(self.slices) if self.slices is not None else None
        meta["voxel_spacing"] = list(self.voxel_spacing)
        arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Explanation:
        """Load an explanation written by :meth:`save`.

        The file is read with ``allow_pickle=False`` and every entry is checked for its
        type and shape; a damaged or tampered file raises a ``ValueError`` naming the file
        and the entry.
        """
        from ._saved import read_saved

        meta, arrays, extras = read_saved(path)
        meta["voxel_spacing"] = tuple(meta.get("voxel_spacing") or ())
        if meta.get("slices") is not None:
            meta["slices"] = tuple(meta["slices"])
        known = {f.name for f in fields(cls)}
        meta = {k: v for k, v in meta.items() if k in known}
        return cls(**meta, **arrays, extras=extras)

    # ---------------------------------------------------------------- rendering
    def default_slice(self, axis: int = 0) -> int | None:
        """The slice along ``axis`` shown by default for a 3D map (None for 2D).

        The middle explained slice of a 2D model's run, else the reference's centre, else
        the middle.
        """
        if self.map.ndim == 2:
            return None
        if self.slices and axis == 0:
            return self.slices[len(self.slices) // 2]
        if self.reference is not None and self.reference.any():
            zs = np.nonzero(self.reference)[axis]
            return int(np.round(zs.mean()))
        return self.map.shape[axis] // 2

    def view_slice(
        self, slice_index: int | None = None, axis: int | None = None
    ) -> tuple[int | None, int | None]:
        """``(axis, slice)`` of a figure of a 3D map; ``(None, None)`` for 2D.

        Without ``axis``: :meth:`default_axis`, or the first axis when ``slice_index`` is
        given (as before there was a choice). Without ``slice_index``: :meth:`default_slice`
        along the axis. Out-of-range values are refused with the map's shape.
        """
        if self.map.ndim == 2:
            return None, None
        if axis is None:
            axis = 0 if slice_index is not None else self.default_axis()
        if not isinstance(axis, int | np.integer) or not 0 <= axis < 3:
            raise ValueError(f"axis must be 0, 1 or 2 for a 3D map, got {axis!r}")
        n = self.map.shape[axis]
        z = self.default_slice(int(axis)) if slice_index is None else slice_index
        if not isinstance(z, int | np.integer) or not 0 <= z < n:
            raise ValueError(
                f"slice_index must be in 0 … {n - 1} along axis {axis} of the map "
                f"{self.map.shape}, got {z!r}"
            )
        return int(axis), int(z)

    def default_axis(self) -> int | None:
        """The axis across which a 3D map is sliced for a figure by default (None for 2D).

        A 2D model's slices lie along the first axis. Otherwise the axis along which the
        voxels lie farthest apart, then the one with the fewest voxels, then the first: a
        scan's slice direction, which is the third axis of a NIfTI file read in its own
        order (nibabel's, MONAI's) and the first in SimpleITK's or nnU-Net's.
        """
        if self.map.ndim == 2:
            return None
        if self.slices:
            return 0
        spacing = tuple(self.voxel_spacing or ())[-3:]
        spacing = spacing if len(spacing) == 3 else (1.0, 1.0, 1.0)
        return min(range(3), key=lambda a: (-float(spacing[a]), self.map.shape[a], a))

    def to_png(
        self,
        path: str | Path | None = None,
        *,
        view: str = "map",
        slice_index: int | None = None,
        axis: int | None = None,
        cmap: str = "inferno",
        alpha: float = 0.6,
        with_image: bool = True,
        contour: bool = True,
    ) -> bytes:
        """Render the map over the image as a PNG, one pixel per voxel on the finest axis.

        An anisotropic slice is stretched (nearest neighbour) to its voxels' physical
        aspect; :func:`~maskscope.figure.figure_png` adds a title, a colour bar and a
        readable size.

        Parameters
        ----------
        path
            Also write the PNG here.
        view
            ``"map"``, ``"stderr"`` or the name of an extra map.
        slice_index
            For 3D maps, the slice along ``axis`` (default: :meth:`default_slice`).
        axis
            For 3D maps, the axis across which the map is sliced (default
            :meth:`default_axis`, or the first axis when ``slice_index`` is given).
        cmap
            A colormap name understood by the ``cmap`` package.
        alpha
            Opacity of the saliency over the image.
        with_image
            Draw the image underneath (when stored).
        contour
            Outline the reference segmentation.

        Returns
        -------
        bytes
            The PNG file's content.
        """
        from .figure import slice_spacing, with_aspect
        from .render import overlay_rgb, png_bytes

        arr = self.extras.get(view) if view in self.extras else getattr(self, view, None)
        if arr is None or not isinstance(arr, np.ndarray):
            valid = ["map", *(["stderr"] if self.stderr is not None else []), *self.extras]
            raise ValueError(f"view must be one of {valid}, got {view!r}")
        axis, z = self.view_slice(slice_index, axis)
        pick = (lambda a: a) if z is None else (lambda a: np.take(a, z, axis=axis))
        img2d = ref2d = None
        if with_image and self.image is not None:
            img2d = pick(self.image[0])
        if contour and self.reference is not None:
            ref2d = pick(self.reference)
        sal = pick(arr)
        rgb = overlay_rgb(sal, img2d, cmap=cmap, alpha=alpha, contour=ref2d)
        data = png_bytes(with_aspect(rgb, slice_spacing(self, axis, z)))
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def __repr__(self) -> str:
        state = "done" if self.done else ("cancelled" if self.cancelled else "partial")
        if self.stopped_early:
            state += ", stopped early"
        rel = "" if self.reliability is None else f", reliability {self.reliability:.2f}"
        return (
            f"Explanation({self.method}, map {self.map.shape}, {self.n_done}/{self.n_total} "
            f"{state}{rel}, {self.elapsed:.1f} s)"
        )


#: Reliability bands and what they mean for the reader of a map.
RELIABILITY_WORDS = (
    (0.95, "stable: another seed would give practically the same map"),
    (0.85, "mostly stable: the main regions are reliable, fine detail may change"),
    (0.6, "rough: only the strongest regions are reliable; use more masks"),
    (-math.inf, "mostly noise: do not interpret it yet; use more masks"),
)


#: Masks a RISE-family map needs for a reliability (two of each interleaved half).
MIN_MASKS_FOR_RELIABILITY = 4


def describe_reliability(
    value: float | None, method: str = "", n_masks: int | None = None, flat: bool = False
) -> str:
    """``"reliability 0.93 (mostly stable: ...)"``, or why there is no figure.

    The reliability is the predicted correlation between this map and one made the same way
    with another seed. Without a figure after ``n_masks`` ≥ 4 masks, a half of the masks
    gave a constant map: when the map itself is ``flat``, no mask changed the model's score.
    The words follow the figure as shown (0.949 reads 0.95, "stable").
    """
    if value is None:
        if method == "HDM":
            return "exact (a deterministic sweep: no sampling noise)"
        if n_masks is not None and n_masks >= MIN_MASKS_FOR_RELIABILITY:
            if flat:
                return (
                    "no reliability: the map is flat, no mask changed the model's score "
                    "(check that the image is not blank and that outputs, logits or "
                    "probabilities, is what the model returns)"
                )
            return (
                "no reliability yet: one half of the masks gave a constant map (their "
                "scores did not change); use more masks"
            )
        return f"reliability not yet known (needs at least {MIN_MASKS_FOR_RELIABILITY} masks)"
    shown = round(float(value), 2)
    words = next(text for bound, text in RELIABILITY_WORDS if shown >= bound)
    return f"reliability {shown:.2f} ({words})"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    return repr(obj)
