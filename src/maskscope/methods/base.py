"""What every perturbation method shares: inputs, reference, target, slices, the run."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from .._engine.cancel import CancelToken
from .._engine.devices import check_device
from .._engine.inputs import model_device_dtype, model_layout
from .._engine.loop import ModelRunner, RunOptions, Task, run_task
from .._engine.model_call import ModelCall, is_exported_module
from .._engine.scores import OUTPUT_KINDS
from ..explanation import Explanation
from ._crop import SPLIT_RUNS_DO_NOT_CROP, crop_arguments, iter_crop, wants_crop, why_not_cropped
from ._focus import make_focus
from ._prepare import Prepared, prepare_input
from ._record import batch_plan, checked_task, resolve_settings, run_record
from ._snapshots import RunRecord, Snapshots, attach_partial
from .context import Context, build_context

__all__ = ["Context", "Method"]


class Method:
    """Base class of the perturbation methods.

    Parameters
    ----------
    model
        Any callable taking ``(B, C, *spatial)`` and returning ``(B, K, *spatial)`` (a
        segmentation) or ``(B, K)`` (a classifier). Use ``model.eval()`` first.
    outputs
        Whether the model returns ``"logits"`` (softmax over K, or sigmoid when K = 1) or
        ``"probabilities"``.
    spatial_dims
        2 or 3: the model's spatial dimensionality. Inferred from its first convolution when
        omitted; needed for a 3-axis input to a model with no recognisable convolution.
    device
        Where masks and sums live; defaults to the model's device (CPU for plain callables).
    output_key
        Which part of the model's return value to explain: a dict key (``"logits"``) or a
        tuple / list index (``1``). Default: the tensor itself, a dict's ``"out"``,
        ``"logits"`` or ``"pred"`` (or its only value), an object's ``.logits``, a
        sequence's first element (the full-resolution head of deep supervision).
        ``"channel 2"`` (or ``"logits/channel 2"``, ``"0/channel 2"``): one channel of that
        tensor alone, explained as a binary output; for multi-label models whose
        channels are independent, overlapping sigmoids (MONAI's BraTS SegResNet).
    output
        Instead of ``output_key``: a callable ``output(raw) -> tensor``.
    pad_multiple
        Pad every input to a multiple of this per spatial axis (one int, or one per axis;
        U-Nets need 2**levels) and crop the outputs back. None: no padding.
    pad_mode
        ``"zeros"``, ``"replicate"`` or ``"reflect"`` (with ``pad_multiple``).
    precision
        ``"float32"`` (default: float32 throughout, TensorFloat-32 off on a CUDA device, so
        a seed gives the CPU's map there), ``"tf32"`` (the model's convolutions on
        TensorFloat-32 on a CUDA device), or ``"bfloat16"`` / ``"float16"``: run the
        model's forward under ``torch.autocast`` in that dtype (scores and sums stay in
        float32 / float64; see the speed page of the docs for how much the map changes).
    compile
        Compile the model with ``torch.compile(dynamic=False)`` (each batch size compiles
        once; a smaller last batch is padded to a compiled size).
    """

    #: Display name.
    name: ClassVar[str] = ""
    #: The parameter dataclass.
    Params: ClassVar[type]
    #: Whether the method needs a segmentation model (``(B, K, *spatial)`` outputs).
    needs_segmentation: ClassVar[bool] = True
    #: Whether ``target=None`` means "all foreground classes" (else: a single class).
    target_none_means_all: ClassVar[bool] = False
    #: Whether the method draws random masks (so a seed, a standard error and early
    #: stopping apply); a deterministic sweep has none of them.
    stochastic: ClassVar[bool] = True
    #: Whether a crop-mode run gives the whole-image run's map in its window (the full
    #: image's masks seen through it), so that ``crop="auto"`` may crop.
    exact_crop: ClassVar[bool] = False

    def __init__(
        self,
        model: Callable,
        *,
        outputs: str = "logits",
        spatial_dims: int | None = None,
        device: torch.device | str | None = None,
        output_key: str | int | None = None,
        output: Callable[[Any], torch.Tensor] | None = None,
        pad_multiple: int | tuple[int, ...] | None = None,
        pad_mode: str = "zeros",
        precision: str = "float32",
        compile: bool = False,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if outputs not in OUTPUT_KINDS:
            raise ValueError(f"outputs must be one of {OUTPUT_KINDS}, got {outputs!r}")
        self.outputs = outputs
        #: The model as the engine calls it (padding, output choice, batch fallback).
        self.model_call = ModelCall(
            model,
            output_key=output_key,
            output=output,
            pad_multiple=pad_multiple,
            pad_mode=pad_mode,
            precision=precision,
            compile=compile,
        )
        dims, in_ch = model_layout(model)
        if spatial_dims is not None and spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        self.spatial_dims = spatial_dims or dims
        self.in_channels = in_ch
        mdev, mdtype = model_device_dtype(model)
        if device is not None:
            device = check_device(device)
        if device is not None and mdev is not None and torch.device(device).type != mdev.type:
            raise ValueError(
                f"the model is on {mdev} but device={str(device)!r} was asked: move the model "
                f"first (model.to({str(device)!r})) or leave device unset"
            )
        self.device = torch.device(device) if device is not None else (mdev or torch.device("cpu"))
        self.dtype = mdtype or torch.float32

    @property
    def model(self) -> Callable:
        """The user's model; setting another one keeps the output choice and padding."""
        return self.model_call.model

    @model.setter
    def model(self, model: Callable) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        self.model_call = self.model_call.with_model(model)

    # ------------------------------------------------------------------ hooks
    def make_task(self, ctx: Context, params: Any) -> Task:
        """Build the task for one image or slice (implemented by each method)."""
        raise NotImplementedError

    @classmethod
    def check_params(cls, params: Any, options: RunOptions) -> None:
        """Method-specific checks of the parameters and options (override as needed; a
        classmethod, so that a frontend can check before it builds the method)."""

    # ------------------------------------------------------------------ API
    def iter_explain(self, image: Any, **kwargs: Any) -> Iterator[Explanation]:
        """Explain ``image``, yielding :class:`Explanation` snapshots as chunks finish.

        Parameters
        ----------
        image
            ``(H, W)``, ``(C, H, W)``, ``(D, H, W)`` or ``(C, D, H, W)``, numpy or torch.
        target
            The class to explain. Default: all foreground classes for overlap scores, the
            largest foreground class of the reference for segment scores, the predicted
            class for a classifier.
        reference
            Reference segmentation (label image of the input's spatial shape); default: the
            model's own prediction on the unperturbed input.
        params, options
            An instance of the method's parameter dataclass (``self.Params``) and a
            :class:`RunOptions`.
        slices
            For a 2D model on a volume: ``"all"``, one index, or a list of indices.
        voxel_spacing
            Physical voxel size per spatial axis (kept in the result; used by HDM). By
            default the image's own when it has one (a MONAI ``MetaTensor``'s ``pixdim``),
            else 1 per axis.
        progress
            True for a tqdm progress bar, or a callable receiving every snapshot.
        cancel
            A :class:`~maskscope.CancelToken`: ``cancel.cancel()`` from any thread stops the
            run once the chunk in progress is done; the generator then yields a last
            snapshot with ``cancelled=True`` (the map of the finished chunks) and ends.
        normalize
            Intensity normalisation per channel before the model: one of
            ``maskscope.intensity.NORMALIZATIONS`` (``"zscore"``, ``"percentile"``, ...) or
            a callable on the ``(C, *spatial)`` array; the explanation's ``image`` is the
            normalised input.
        roi
            Explain only a region of interest: an :class:`~maskscope.ROI`, a box
            (``"z0:z1,y0:y1,x0:x1"``, a tuple of slices) or a boolean mask; the scores
            see the ROI only. A list explains each from the same forward passes
            (``extras["target_<i>"]``). See the guide "Explain one lesion in a large volume".
        crop
            With one ``roi``: run the model on the ROI's box plus a margin only (True:
            the receptive field, estimated; or a margin in voxels, one or per axis).
            ``"auto"`` (the default) crops for the RISE family (the same map in the
            window, the mean weight instead of noise outside) unless the receptive field
            is unknown or covers the image (``params["crop_skipped"]``). False: never.
        targets
            Several classes from the same forward passes (``extras["target_<class>"]``).
        per_channel
            RISE family: masks drawn per input channel (``extras["channel_<c>"]`` and
            ``extras["channel_importance"]``).
        **overrides
            Any field of ``self.Params`` or :class:`RunOptions` (``n_masks=500, seed=1``).

        Returns
        -------
        Iterator[Explanation]
            Snapshots after the first chunk, then after each chunk (or every
            ``yield_every`` s), and a last one with ``done=True``. Close it to cancel from
            the thread that advances it. Parameters, image, reference and slices are
            checked before it is returned; the model first runs when it is first advanced.
            An exception raised by the model (or a ``KeyboardInterrupt``) carries
            ``exc.partial``: the snapshot of the chunks finished before it, or None. The
            model gets its own copy of the input: a model that works in place changes
            neither the caller's array nor :attr:`Explanation.image`.
        """
        if wants_crop(self, kwargs):
            return iter_crop(self, image, **crop_arguments(kwargs))
        return self._snapshots(self._prepare(image, **kwargs))

    def explain(self, image: Any, **kwargs: Any) -> Explanation:
        """Run :meth:`iter_explain` to the end and return the final explanation.

        Takes the same arguments. Intermediate snapshots are only built when a progress
        callback asks for them (or ``yield_every`` / ``options`` are given).

        Returns the snapshot marked ``cancelled=True`` when a ``cancel`` token stopped the
        run. When the run fails (the model raises, or ``KeyboardInterrupt``), the exception
        is re-raised with ``exc.partial`` set to the snapshot of the chunks finished before
        it (None when none was), so the work done is not lost::

            try:
                expl = SegRISE(model).explain(image, n_masks=4000)
            except Exception as exc:
                expl = exc.partial  # the map of the finished masks, or None
        """
        streamed = callable(kwargs.get("progress")) or {"yield_every", "options"} & set(kwargs)
        if wants_crop(self, kwargs):
            snapshots = iter_crop(self, image, stream=bool(streamed), **crop_arguments(kwargs))
        else:
            run = self._prepare(image, **kwargs)
            if not streamed:
                run = dataclasses.replace(run, yield_every=None)
            snapshots = self._snapshots(run)
        last = None
        for last in snapshots:  # noqa: B007
            pass
        assert last is not None
        return last

    # ------------------------------------------------------------------ the run
    def _prepare(
        self,
        image: Any,
        *,
        target: int | None = None,
        reference: Any = None,
        params: Any = None,
        options: RunOptions | None = None,
        slices: str | int | list[int] = "all",
        voxel_spacing: Any = None,
        progress: bool | Callable[[Explanation], None] = False,
        cancel: CancelToken | None = None,
        normalize: str | Callable[[np.ndarray], np.ndarray] = "none",
        roi: Any = None,
        crop: Any = "auto",
        targets: list[int] | None = None,
        per_channel: bool = False,
        _frame: Any = None,
        **overrides: Any,
    ) -> Prepared:
        """Check everything at the door; what the run needs, before the model runs.

        ``crop`` is handled before (see :func:`~maskscope.methods._crop.iter_crop`).
        """
        if cancel is not None and not isinstance(cancel, CancelToken):
            raise TypeError(f"cancel must be a CancelToken or None, got {type(cancel).__name__}")
        params, options = self._resolve(params, options, overrides)
        self.check_params(params, options)
        inp = prepare_input(self, image, reference, slices, voxel_spacing, normalize, options.seed)
        self._warn_training()
        focus, focus_record = make_focus(
            self, inp, roi=roi, targets=targets, per_channel=per_channel, frame=_frame,
            target=target,
        )  # fmt: skip
        if roi is not None and crop is False:
            focus_record["crop"] = False  # the whole image, as asked
        elif roi is not None and _frame is None:  # a crop setting that runs on the whole image
            auto = isinstance(crop, str) and crop == "auto"
            why = why_not_cropped(self, roi, targets, per_channel) if auto else ""
            given = list(crop) if isinstance(crop, tuple | list) else crop
            focus_record.update(crop=given, crop_skipped=why or SPLIT_RUNS_DO_NOT_CROP)
        n = self.n_perturbations(params, inp.part_spatial, inp.part_spacing)
        record = RunRecord(
            method=self.name,
            params={**run_record(self, params, options, inp, normalize), **focus_record},
            spatial=inp.spatial,
            sliced=inp.sliced,
            image=inp.owned.numpy(),
            voxel_spacing=inp.spacing,
        )
        return Prepared(
            inp=inp,
            params=params,
            options=options,
            runner=ModelRunner(self.model_call, inp.part_spatial),
            n_per_task=n,
            target=target,
            record=record,
            progress=progress,
            cancel=cancel,
            yield_every=options.yield_every,
            focus=focus,
        )

    def _snapshots(self, run: Prepared) -> Iterator[Explanation]:
        """Build each task, run it, stream its snapshots; the last one is ``done``."""
        batch_size, tuner = batch_plan(self, run.options)
        snaps = Snapshots(
            run.record,
            run.runner,
            n_total=run.n_per_task * len(run.inp.indices),
            batch_size=batch_size,
            yield_every=run.yield_every,
            progress=run.progress,
            tuner=tuner,
        )
        target = run.target
        try:
            for i, index in enumerate(run.inp.indices):
                if run.cancel is not None and run.cancel.cancelled:
                    yield snaps.snapshot(cancelled=True)
                    return
                task, target = self._task(run, index, target)
                if task is None:
                    snaps.skip(index, run.n_per_task)
                    continue
                snaps.begin(index, task)
                last = i == len(run.inp.indices) - 1
                for step in run_task(
                    task,
                    run.runner,
                    run.options,
                    batch_size=snaps.batch_size,
                    cancel=run.cancel,
                    tuner=tuner,
                ):
                    snap = snaps.step(step, last_task=last)
                    if snap is not None:
                        yield snap
                    if step.cancelled:
                        return
            if not snaps.canvas.done:
                raise ValueError(
                    "nothing to explain: the reference segmentation is empty for the target "
                    f"in every slice ({len(snaps.skipped)} slices)"
                )
            yield snaps.snapshot(done=True)
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                attach_partial(exc, snaps.finished_work)
            raise
        finally:
            snaps.close()

    def _task(self, run: Prepared, index: int | None, target: int | None):
        """The unperturbed pass and the complete task of one image or slice.

        Returns ``(task, target)``: the task is None for a slice with nothing to explain;
        the target, once resolved, is kept for the slices that follow.
        """
        inp = run.inp
        xi = inp.image if index is None else inp.image[:, index]
        x = xi.unsqueeze(0).to(self.device)
        ref = None if inp.reference is None else inp.reference_of(index)
        ctx = build_context(self, x, run.runner, ref, target, run.options.seed, inp.part_spacing)
        if ctx.reference is not None and not ctx.region().any():
            if index is not None:
                return None, ctx.target
            what = "any foreground class" if ctx.target is None else f"class {ctx.target}"
            if run.focus is not None and run.focus.regions is not None:
                what += " inside the ROI"  # crop mode: the window holds none either
            raise ValueError(
                f"the reference segmentation has no voxel of {what}: nothing to "
                "explain (give another target, or a reference that contains it)"
            )

        def make(c: Context) -> Task:
            return checked_task(self, self.make_task(c, run.params), run.params)

        if run.focus is None:
            task = make(ctx)
            task.target = ctx.target
            return task, ctx.target
        return run.focus.task(self, ctx, index, make)

    def record_extra(self, params: Any, inp: Any) -> dict[str, Any]:
        """What a method adds to a run's ``params`` beyond its settings (none here)."""
        return {}

    def n_perturbations(self, params: Any, spatial: tuple[int, ...], spacing) -> int:
        """Number of perturbed inputs per image or slice."""
        return int(params.n_masks)

    # ------------------------------------------------------------------ helpers
    def _resolve(self, params: Any, options: RunOptions | None, overrides: dict[str, Any]):
        return resolve_settings(self.name, self.Params, params, options, overrides)

    def _warn_training(self) -> None:
        # an exported program's module has a training flag, but its mode was fixed at export
        if getattr(self.model, "training", False) and not is_exported_module(self.model):
            warnings.warn(
                "the model is in training mode (dropout / batch-norm statistics change its "
                "outputs); call model.eval() before explaining it",
                UserWarning,
                stacklevel=4,
            )
