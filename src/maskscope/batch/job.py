"""What to do with every case of a batch (:class:`Job`) and doing it for one case.

:func:`run_case` is the whole work of one case, the same in every engine (a Dask worker, a
``--num-parts`` process): read the files, explain, write the map and the explanation, score
the map when asked, and write the case's record last.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dataset import Case
from .store import BatchStore, atomic_write

__all__ = ["Job", "fails_again", "run_case"]


def fails_again(exc: BaseException) -> bool:
    """Whether a case's error would come back on a retry: bad input or a known failure.

    A wrong shape, an unreadable file's content or a model that cannot take the input
    (``ValueError``, ``TypeError``, a :class:`~maskscope._engine.failures.ModelError`
    with a hint) fail the same way every time; anything else (a lost worker, memory, a
    file system's hiccup) may not, and is retried.
    """
    from .._engine.failures import ModelError

    if isinstance(exc, ModelError):
        return exc.hint is not None
    return isinstance(exc, ValueError | TypeError)


@dataclass(frozen=True)
class Job:
    """The settings shared by every case of a batch (picklable: it travels to workers).

    Attributes
    ----------
    method
        A name of :data:`maskscope.METHODS` (``"SegRISE"``, ``"RISE"``, ``"PixelRISE"``,
        ``"HDM"``).
    values
        The method's parameters and run options by name (``n_masks``, ``seed``, ...).
    target, slices
        As in :meth:`maskscope.Method.explain`.
    normalize, percentiles
        Intensity normalisation (:data:`maskscope.intensity.NORMALIZATIONS`).
    axes
        NIfTI array order, ``"ijk"`` or ``"kji"`` (see :func:`maskscope.io.read_image`).
    outputs, spatial_dims, model_options
        As the method's constructor takes them (``model_options``: ``output_key``,
        ``pad_multiple``, ``pad_mode``).
    patch
        None, or :class:`maskscope.SlidingWindow`'s keyword arguments (``patch_size``,
        ``overlap``, ``blend``, ``patch_batch``): every worker runs the model by sliding
        window, for a model made for patches smaller than the images.
    evaluate, eval_steps
        Score every map by deletion / insertion (:func:`maskscope.evaluate.faithfulness`,
        one random order as the baseline), with this many steps per curve.
    map_format
        Suffix of the maps (``".nii.gz"``, ``".npy"``, ...); None: the input's own format.
    """

    method: str = "SegRISE"
    values: dict[str, Any] = field(default_factory=dict)
    target: int | None = None
    slices: str | list[int] = "all"
    normalize: str = "none"
    percentiles: tuple[float, float] = (0.5, 99.5)
    axes: str = "ijk"
    outputs: str = "logits"
    spatial_dims: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    patch: dict[str, Any] | None = None
    evaluate: bool = False
    eval_steps: int = 20
    map_format: str | None = None

    def check(self) -> None:
        """Validate everything before any case runs (``ValueError`` / ``TypeError``)."""
        from ..gui import method_class, split_values
        from ..intensity import Normalizer
        from ..io import FORMATS, check_axes

        method_class(self.method)
        split_values(self.method, dict(self.values))
        if self.patch is not None:
            self._sliding(lambda x: x)  # checks the sliding window's settings
        Normalizer(self.normalize, self.percentiles)
        check_axes(self.axes)
        if self.map_format is not None and self.map_format not in FORMATS:
            raise ValueError(
                f"map_format must be one of {', '.join(FORMATS)} or None, got {self.map_format!r}"
            )
        if isinstance(self.eval_steps, bool) or not isinstance(self.eval_steps, int):
            raise TypeError(f"eval_steps must be an int, got {self.eval_steps!r}")
        if self.eval_steps < 1:
            raise ValueError(f"eval_steps must be at least 1, got {self.eval_steps}")

    def settings(self) -> dict[str, Any]:
        """The settings by name, the method's parameters among them (for ``batch.json``)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "values"}
        return {**out, **self.values}

    def explainer(self, model: Callable) -> Any:
        """The method built around ``model``."""
        from ..gui import method_class

        if self.patch is not None:
            model = self._sliding(model)
        return method_class(self.method)(
            model, outputs=self.outputs, spatial_dims=self.spatial_dims, **self.model_options
        )

    def _sliding(self, model: Callable) -> Any:
        from .._engine.sliding import SlidingWindow

        if not isinstance(self.patch, dict):
            raise TypeError(f"patch must be a dict of SlidingWindow's options, got {self.patch!r}")
        return SlidingWindow(model, **self.patch)


def _read(path, axes: str):
    from ..io import read_image

    return read_image(path, axes=axes)


def _companion(path, image: Any, what: str, axes: str) -> np.ndarray:
    """A label or mask file of the case, checked to share the image's space."""
    from ..io import read_companion

    return np.asarray(read_companion(path, image, what, axes=axes).data)


def _roi_kwargs(case: Case, image: Any, axes: str) -> dict[str, Any]:
    """The case's ROI as ``roi=``: a box, or a file's non-zero voxels read in the image's
    order."""
    if isinstance(case.roi, str):
        from ..roi import ROI

        return {"roi": ROI.from_box(case.roi)}
    if case.roi is None:
        return {}
    return {"roi": _companion(case.roi, image, "the ROI", axes) > 0}


def _region(labels: np.ndarray, target: int | None) -> np.ndarray:
    return labels == target if target is not None else labels > 0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _figures(expl: Any, case: Case, spacing_known: bool) -> dict[str, Any]:
    """Prediction size, agreement with a given reference, reliability."""
    out: dict[str, Any] = {
        "method": expl.method,
        "target": expl.target,
        "n_done": expl.n_done,
        "n_total": expl.n_total,
        "reliability": expl.reliability,
        "rel_error": expl.rel_error,
        "stopped_early": expl.stopped_early,
        "n_forward": expl.n_forward,
        "explain_seconds": round(expl.elapsed, 4),
    }
    if expl.prediction is not None:
        pred = _region(np.asarray(expl.prediction), expl.target)
        out["prediction_voxels"] = int(pred.sum())
        if spacing_known and expl.voxel_spacing:
            out["prediction_volume"] = float(pred.sum() * math.prod(expl.voxel_spacing))
        if case.reference is not None and expl.reference is not None:
            out["reference_dice"] = _dice(pred, _region(np.asarray(expl.reference), expl.target))
    return out


def _evaluation(expl: Any, model: Callable, job: Job) -> dict[str, Any]:
    from ..evaluate import faithfulness

    try:
        result = faithfulness(
            expl,
            model=model,
            steps=job.eval_steps,
            n_random=1,
            batch_size=int(job.values.get("batch_size") or 16),
            outputs=job.outputs,
            spatial_dims=job.spatial_dims,
            **job.model_options,
        )
    except ValueError as exc:  # e.g. a volume explained slice by slice
        return {"evaluation_note": str(exc).splitlines()[0]}
    window = None  # an ROI explained in crop mode: the curves order its window's voxels
    if result.window is not None:
        from ..roi import box_text

        window = box_text(result.window)
    return {
        "deletion_auc": result.auc("deletion"),
        "insertion_auc": result.auc("insertion"),
        "random_deletion_auc": result.auc("deletion", random=True),
        "random_insertion_auc": result.auc("insertion", random=True),
        "evaluation_window": window,
    }


def run_case(
    case: Case,
    job: Job,
    model: Callable,
    store: BatchStore,
    *,
    worker: str = "local",
    attempt: int | None = None,
) -> dict[str, Any]:
    """Explain one case and write its results; returns its record.

    The map and the explanation are written under temporary names and renamed; the record
    (``cases/NAME.json``) is written last. Any error propagates (the engine retries or
    records the case as failed). ``worker`` and ``attempt`` (when the engine knows it) go
    into the record.
    """
    from .._engine.inputs import prepare_image
    from ..intensity import Normalizer
    from ..io import PICTURE_FORMATS, check_colour, write_map

    t0 = time.perf_counter()
    image = _read(case.image, job.axes)
    reference = None
    if case.reference is not None:
        reference = _companion(case.reference, image, "the reference", job.axes)
    explainer = job.explainer(model)
    layout = prepare_image(image.data, explainer.spatial_dims, explainer.in_channels)
    check_colour(image, layout.slice_by_slice, f"the image {case.image.name}")
    expl = explainer.explain(
        image.data,
        reference=reference,
        target=job.target,
        slices=job.slices,
        voxel_spacing=image.voxel_spacing,
        normalize=Normalizer(job.normalize, job.percentiles),
        **_roi_kwargs(case, image, job.axes),
        **job.values,
    )
    fmt = job.map_format or (".tif" if image.format in PICTURE_FORMATS else image.format)
    map_path = store.map_path(case.name, fmt)
    spacing = expl.voxel_spacing or None
    atomic_write(map_path, lambda tmp: write_map(tmp, expl.map, like=image, spacing=spacing))
    expl_path = store.explanation_path(case.name)
    atomic_write(expl_path, lambda tmp: expl.save(tmp))
    row: dict[str, Any] = {
        "name": case.name,
        "status": "ok",
        "image": str(case.image),
        "reference": str(case.reference) if case.reference else None,
        "roi": str(case.roi) if case.roi else None,
        **_figures(expl, case, image.voxel_spacing is not None),
    }
    if job.evaluate:
        row.update(_evaluation(expl, model, job))
    row.update(
        seconds=round(time.perf_counter() - t0, 4),
        worker=worker,
        host=socket.gethostname(),
        device=str(explainer.device),
        map=str(map_path.relative_to(store.out)),
        explanation=str(expl_path.relative_to(store.out)),
    )
    if attempt is not None:
        row["attempts"] = attempt
    return store.write_record(row)
