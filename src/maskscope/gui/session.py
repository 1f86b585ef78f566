"""One run of a GUI: the model, the method, the snapshot generator, its cancel token.

:class:`Session` is what both widgets hold. ``start`` validates the form values and
the inputs (errors are raised there, before any work), builds the method for the model
and returns the engine's snapshot generator; ``cancel`` stops the run from any thread
after the chunk in progress; ``record`` keeps the last snapshot. The prediction check
(:func:`maskscope.check_prediction`) is prepared with the run and runs the model only when
called, in the run's own thread, so that a GUI never waits on the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import CancelToken, Explanation, Method, check_prediction
from ..prediction import PredictionSummary
from .fields import split_values
from .methods import method_class
from .models import LoadedModel
from .sliding import check_patch_dims

__all__ = [
    "PredictionReady",
    "PredictionSummary",
    "RunRequest",
    "Session",
    "keep_partial",
    "prediction_first",
]


@dataclass(frozen=True)
class RunRequest:
    """What to explain: the image and how it is read.

    Attributes
    ----------
    image
        ``(C, *spatial)`` or a bare ``(*spatial)`` array.
    target
        The class to explain, or None for the method's default.
    reference
        A label image of the spatial shape, or None for the model's prediction.
    slices
        For a 2D model on a volume: ``"all"``, an index or a list of indices.
    voxel_spacing
        Physical size per spatial axis, or None.
    normalize
        One of :data:`maskscope.intensity.NORMALIZATIONS` (or a callable).
    roi, crop, per_channel
        A region of interest (any form ``iter_explain`` takes), crop mode (``"auto"``,
        True, a margin or False, as ``iter_explain`` takes it), and a map per input
        channel (RISE family).
    """

    image: Any
    target: int | None = None
    reference: Any = None
    slices: Any = "all"
    voxel_spacing: Any = None
    normalize: Any = "none"
    roi: Any = None
    crop: Any = "auto"
    per_channel: bool = False


@dataclass(frozen=True)
class PredictionReady:
    """What a run yields before its first snapshot: the prediction check's result."""

    summary: PredictionSummary | None


def prediction_first(
    check: Callable[[], PredictionSummary | None], snapshots: Iterator[Any]
) -> Iterator[Any]:
    """The prediction check, then the run's snapshots, as one generator.

    The check runs in the thread that advances the generator, so that a failing model is
    reported like any run failure. Closing it closes ``snapshots``.
    """
    try:
        yield PredictionReady(check())
        yield from snapshots
    finally:
        snapshots.close()


def keep_partial(snapshots: Iterator[Explanation]) -> Iterator[Explanation]:
    """The run's snapshots; when it fails, first the map of the masks it finished.

    The engine paces its snapshots, so the chunks summed since the last one would be lost
    with the failure: the error's ``partial`` (the snapshot of the finished work) is
    yielded before the error is raised, when it holds more than the last snapshot.
    Closing it closes ``snapshots``.
    """
    last = None
    try:
        for last in snapshots:
            yield last
    except Exception as exc:
        kept = getattr(exc, "partial", None)
        if isinstance(kept, Explanation) and (last is None or kept.n_done > last.n_done):
            yield kept
        raise
    finally:
        snapshots.close()


class Session:
    """A GUI's run state: what it explains with, and the run in progress or the last one.

    Parameters
    ----------
    method
        A name in :data:`maskscope.METHODS`.
    model
        The model, or None until one is chosen.

    Attributes
    ----------
    token
        The cancel token of the current or last run.
    snapshots
        Its snapshot generator.
    last
        Its latest snapshot (None before the first).
    check
        Its prediction check (call it to run the model once on the unperturbed input).
    """

    def __init__(self, method: str = "SegRISE", model: LoadedModel | None = None) -> None:
        method_class(method)
        self.method = method
        self.model = model
        self.token: CancelToken | None = None
        self.snapshots: Iterator[Any] | None = None
        self.last: Explanation | None = None
        self.check: Callable[[], PredictionSummary | None] | None = None

    def explainer(
        self,
        spatial_dims: int | None = None,
        *,
        method: str | None = None,
        model: LoadedModel | None = None,
    ) -> Method:
        """The method built for the model (``spatial_dims`` overrides the model's).

        ``method`` and ``model`` default to the session's.
        """
        model = model or self.model
        if model is None:
            raise ValueError("no model given: choose a model first")
        dims = spatial_dims if spatial_dims is not None else model.spatial_dims
        cls = method_class(method or self.method)
        return cls(model.model, spatial_dims=dims, **model.method_kwargs())

    def start(
        self,
        request: RunRequest,
        values: dict[str, Any],
        *,
        yield_every: float = 0.2,
        spatial_dims: int | None = None,
        prediction: bool = False,
        method: str | None = None,
        model: LoadedModel | None = None,
    ) -> Iterator[Any]:
        """Validate everything and return the run's snapshot generator.

        Parameters
        ----------
        request, values
            The image and how it is read; the form's values by parameter name.
        yield_every
            Seconds between snapshots (0: one per chunk). Above 0 the engine also keeps
            them to a tenth of the run (``RunOptions.yield_every``); a cancel acts at the
            next chunk either way, through the run's token.
        spatial_dims
            The model's dimensionality when the widget knows better than the model.
        prediction
            Yield a :class:`PredictionReady` (the prediction check) before the snapshots.
        method, model
            Switch to this method and model once the run starts (a run that cannot start
            leaves the last run's state as it is).

        Bad values or inputs raise ``ValueError`` / ``TypeError`` here, before any work;
        errors of the model surface from the generator.
        """
        method = method or self.method
        params, options = split_values(method, values)
        options = dataclasses.replace(options, yield_every=yield_every)
        explainer = self.explainer(spatial_dims, method=method, model=model)
        check_patch_dims(explainer.model, explainer.spatial_dims)
        token = CancelToken()
        snapshots = keep_partial(
            explainer.iter_explain(
                request.image,
                target=request.target,
                reference=request.reference,
                params=params,
                options=options,
                slices=request.slices,
                voxel_spacing=request.voxel_spacing,
                cancel=token,
                normalize=request.normalize,
                roi=request.roi,
                crop=request.crop,
                per_channel=request.per_channel,
            )
        )
        check = partial(
            check_prediction,
            explainer,
            request.image,
            reference=request.reference,
            target=request.target,
            normalize=request.normalize,
            slices=request.slices,
        )
        self.method, self.model = method, model or self.model
        self.token, self.last, self.check = token, None, check
        self.snapshots = prediction_first(check, snapshots) if prediction else snapshots
        return self.snapshots

    def record(self, snap: Explanation) -> None:
        """Keep ``snap`` as the run's latest snapshot."""
        self.last = snap

    def cancel(self) -> None:
        """Stop the run after the chunk in progress (from any thread); the map is kept."""
        if self.token is not None:
            self.token.cancel()
