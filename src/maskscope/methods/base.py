"""What every perturbation method shares: inputs, reference, target, slices, the run."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from .._engine.cancel import CancelToken
from .._engine.custom import checked_fill, checked_score, function_name
from .._engine.devices import check_device
from .._engine.inputs import (
    model_device_dtype,
    model_layout,
    normalize_spacing,
    prepare_image,
    prepare_reference,
    resolve_slices,
)
from .._engine.loop import ModelRunner, Part, RunOptions, Task, run_parts
from .._engine.model_call import ModelCall, is_exported_module
from .._engine.params import replace_params, validate_params
from .._engine.scores import OUTPUT_KINDS, segmentation
from ..explanation import Explanation
from ..intensity import apply_normalization

__all__ = ["Context", "Method"]


@dataclasses.dataclass
class Context:
    """Everything a method needs to build the task for one image or slice.

    Attributes
    ----------
    x
        The input ``(1, C, *spatial)`` on the device, in the model's dtype.
    output
        The model's output on the unperturbed input, ``(1, K, *spatial)`` or ``(1, K)``.
    reference
        Reference label image ``(*spatial)`` (given, or the model's prediction), or None
        for a classifier.
    prediction
        The model's own segmentation ``(*spatial)``, or None for a classifier.
    target
        The explained class; None means "all foreground classes" (overlap scores only).
    kind
        ``"logits"`` or ``"probabilities"``.
    seed
        The run's seed.
    device
        Where the work happens.
    voxel_spacing
        Physical voxel size per spatial axis of ``x``.
    """

    x: torch.Tensor
    output: torch.Tensor
    reference: torch.Tensor | None
    prediction: torch.Tensor | None
    target: int | None
    kind: str
    seed: int
    device: torch.device
    voxel_spacing: tuple[float, ...]

    @property
    def spatial(self) -> tuple[int, ...]:
        """Spatial shape of the input."""
        return tuple(self.x.shape[2:])

    @property
    def n_classes(self) -> int:
        """K, the number of output channels."""
        return int(self.output.shape[1])

    @property
    def is_segmentation(self) -> bool:
        """Whether the model returns a map per class."""
        return self.output.ndim > 2

    def foreground_classes(self) -> list[int]:
        """Classes 1 .. K-1 (just 1 for a one-channel model)."""
        return list(range(1, max(self.n_classes, 2)))

    def classes(self) -> list[int]:
        """The target as a list of classes (all foreground classes when None)."""
        return self.foreground_classes() if self.target is None else [self.target]

    def region(self) -> torch.Tensor:
        """Boolean mask of the reference voxels of the explained class(es)."""
        assert self.reference is not None
        if self.target is None:
            return self.reference > 0
        return self.reference == self.target


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
    output
        Instead of ``output_key``: a callable ``output(raw) -> tensor``.
    pad_multiple
        Pad every input to a multiple of this per spatial axis (one int, or one per axis;
        U-Nets need 2**levels) and crop the outputs back. None: no padding.
    pad_mode
        ``"zeros"``, ``"replicate"`` or ``"reflect"`` (with ``pad_multiple``).
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

    def check_params(self, params: Any, options: RunOptions) -> None:
        """Method-specific checks of the parameters and options (override as needed)."""

    # ------------------------------------------------------------------ API
    def iter_explain(
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
        **overrides: Any,
    ) -> Iterator[Explanation]:
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
        params
            An instance of the method's parameter dataclass (``self.Params``).
        options
            A :class:`RunOptions`.
        slices
            For a 2D model on a volume: ``"all"``, one index, or a list of indices.
        voxel_spacing
            Physical voxel size per spatial axis (kept in the result; used by HDM).
        progress
            True for a tqdm progress bar, or a callable receiving every snapshot.
        cancel
            A :class:`~maskscope._engine.cancel.CancelToken`: ``cancel.cancel()`` from any
            thread stops the run once the chunk in progress is done; the generator then
            yields a last snapshot with ``cancelled=True`` (the map of the finished chunks)
            and ends.
        normalize
            Intensity normalisation per channel before the model, one of
            :data:`maskscope.intensity.NORMALIZATIONS` (``"zscore"``, ``"percentile"``, ...),
            or a callable on the ``(C, *spatial)`` array such as
            :class:`maskscope.intensity.Normalizer`; the explanation's ``image`` is the
            normalised input.
        **overrides
            Any field of ``self.Params`` or :class:`RunOptions` (``n_masks=500, seed=1``).

        Returns
        -------
        Iterator[Explanation]
            A generator of snapshots: after the first chunk, then after each chunk (or
            every ``yield_every`` s), and a last one with ``done=True``. Close it to cancel
            from the thread that advances it, or use ``cancel`` from any thread.
            Parameters, image, reference and slices are checked before it is returned; the
            model first runs when the generator is first advanced. An exception raised by
            the model (or a ``KeyboardInterrupt``) leaves the generator with
            ``exc.partial``: the snapshot of the chunks finished before it, or None.

        Notes
        -----
        The model gets its own copy of the input: a model that works in place changes
        neither the caller's array nor :attr:`Explanation.image`.
        """
        if cancel is not None and not isinstance(cancel, CancelToken):
            raise TypeError(f"cancel must be a CancelToken or None, got {type(cancel).__name__}")
        params, options = self._resolve(params, options, overrides)
        self.check_params(params, options)
        declared = getattr(self.model, "in_channels", None)
        if isinstance(declared, bool) or not isinstance(declared, int):
            declared = None  # only a declared count is refused at the door, not a guess
        layout = prepare_image(
            image, self.spatial_dims, self.in_channels, declared_channels=declared
        )
        if callable(normalize) or normalize != "none":
            normed = apply_normalization(normalize, layout.image)
            layout = dataclasses.replace(layout, image=torch.from_numpy(normed))
        spatial = layout.spatial
        if not layout.slice_by_slice and not (isinstance(slices, str) and slices == "all"):
            raise ValueError(
                f"slices applies to a 2D model on a volume; this input is explained whole "
                f"({layout.spatial_dims}D model, spatial shape {spatial}), got slices={slices!r}"
            )
        spacing = normalize_spacing(voxel_spacing, len(spatial))
        ref_full = None
        if reference is not None:
            ref_full = prepare_reference(reference, spatial, n_classes=None)
        owned = layout.image.clone()  # never a view of the caller's memory
        img = owned.to(self.dtype)
        part_spacing = spacing[1:] if layout.slice_by_slice else spacing
        part_spatial = spatial[1:] if layout.slice_by_slice else spatial
        runner = ModelRunner(self.model_call, part_spatial)
        state: dict[str, Any] = {"target": target}
        self._warn_training()

        def make_prepare(z: int | None) -> Callable[[], Task | None]:
            def prepare() -> Task | None:
                xi = img if z is None else img[:, z]
                x = xi.unsqueeze(0).to(self.device)
                ref = None if ref_full is None else (ref_full if z is None else ref_full[z])
                ctx = self._context(x, runner, ref, state, options.seed, part_spacing)
                if ctx.reference is not None and not ctx.region().any():
                    if z is not None:
                        return None
                    what = "any foreground class" if ctx.target is None else f"class {ctx.target}"
                    raise ValueError(
                        f"the reference segmentation has no voxel of {what}: nothing to "
                        "explain (give another target, or a reference that contains it)"
                    )
                return self._checked(self.make_task(ctx, params), params)

            return prepare

        n = self.n_perturbations(params, part_spatial, part_spacing)
        if layout.slice_by_slice:
            zs = resolve_slices(slices, spatial[0])
            parts = [Part(z, n, make_prepare(z)) for z in zs]
        else:
            parts = [Part(None, n, make_prepare(None))]
        record = {
            **dataclasses.asdict(params),
            **dataclasses.asdict(options),
            "outputs": self.outputs,
            "device": str(self.device),
            "spatial_dims": layout.spatial_dims,
            "slice_by_slice": layout.slice_by_slice,
            "normalize": str(normalize),
            **self._model_record(),
        }
        return run_parts(
            parts,
            runner,
            options,
            method=self.name,
            params=_jsonable(record),
            spatial=spatial,
            sliced=layout.slice_by_slice,
            image=owned.numpy(),
            voxel_spacing=spacing,
            target_of=lambda: state["target"],
            progress=progress,
            cancel=cancel,
        )

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
        if not callable(kwargs.get("progress")) and not {"yield_every", "options"} & set(kwargs):
            kwargs["yield_every"] = 1e9
        last = None
        for last in self.iter_explain(image, **kwargs):  # noqa: B007
            pass
        assert last is not None
        return last

    def _checked(self, task: Task, params: Any) -> Task:
        """Check the outputs of user-given score, distance and fill functions."""
        custom = [
            (name, fn)
            for name, fn in (
                ("score_fn", getattr(self, "score_fn", None)),
                ("distance_fn", getattr(self, "distance_fn", None)),
                ("score", getattr(params, "score", None)),
                ("distance", getattr(params, "distance", None)),
            )
            if callable(fn)
        ]
        if custom:
            name, fn = custom[0]
            task.score = checked_score(task.score, f"the {name} function {function_name(fn)}")
        fill = getattr(self, "fill_fn", None)
        if callable(fill):
            task.perturb = checked_fill(task.perturb, f"the fill_fn {function_name(fill)}")
        return task

    def n_perturbations(self, params: Any, spatial: tuple[int, ...], spacing) -> int:
        """Number of perturbed inputs per image or slice."""
        return int(params.n_masks)

    # ------------------------------------------------------------------ helpers
    def _resolve(self, params: Any, options: RunOptions | None, overrides: dict[str, Any]):
        if params is None:
            params = self.Params()
        elif not isinstance(params, self.Params):
            raise TypeError(f"params must be a {self.Params.__name__}, got {type(params).__name__}")
        options = options or RunOptions()
        p_names = {f.name for f in dataclasses.fields(self.Params)}
        o_names = {f.name for f in dataclasses.fields(RunOptions)}
        unknown = sorted(set(overrides) - p_names - o_names)
        if unknown:
            raise TypeError(
                f"{self.name} got unknown argument(s) {', '.join(unknown)}; parameters are "
                f"{', '.join(sorted(p_names))}; run options are {', '.join(sorted(o_names))}"
            )
        p_over = {k: v for k, v in overrides.items() if k in p_names}
        o_over = {k: v for k, v in overrides.items() if k in o_names}
        if p_over:
            params = replace_params(params, **p_over)
        if o_over:
            options = replace_params(options, **o_over)
        validate_params(params)
        validate_params(options)
        return params, options

    def _context(self, x, runner, ref, state, seed, spacing) -> Context:
        out = runner(x.clone())  # the model's own copy: an in-place model changes nothing
        is_seg = out.ndim > 2
        if self.needs_segmentation and not is_seg:
            raise ValueError(
                f"{self.name} explains segmentations: the model must return (B, K, *spatial), "
                f"got {tuple(out.shape)} (a classifier output; use RISE instead)"
            )
        k = int(out.shape[1])
        prediction = segmentation(out, self.outputs)[0] if is_seg else None
        if ref is not None and not is_seg:
            raise ValueError("a reference segmentation was given, but the model is a classifier")
        if ref is not None:
            hi = int(ref.max())
            if hi >= max(k, 2):
                raise ValueError(
                    f"reference labels must be in [0, {max(k, 2) - 1}] for a model with "
                    f"{k} output channels, got a maximum of {hi}"
                )
            ref = ref.to(self.device)
        reference = ref if ref is not None else prediction
        state["target"] = self._resolve_target(state["target"], out, reference, k)
        return Context(
            x=x,
            output=out,
            reference=reference,
            prediction=prediction,
            target=state["target"],
            kind=self.outputs,
            seed=seed,
            device=self.device,
            voxel_spacing=tuple(spacing),
        )

    def _resolve_target(self, target, out, reference, k) -> int | None:
        hi = max(k, 2) - 1
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
                raise TypeError(f"target must be an int class index, got {target!r}")
            if not 0 <= int(target) <= hi:
                raise ValueError(
                    f"target must be a class index in [0, {hi}] for a model with {k} output "
                    f"channel(s), got {target}"
                )
            return int(target)
        if out.ndim == 2:
            return int(out[0].argmax()) if k > 1 else 1
        if self.target_none_means_all:
            return None
        if k <= 2:
            return 1
        counts = torch.bincount(reference.flatten(), minlength=k)[1:]
        return int(counts.argmax()) + 1

    def _model_record(self) -> dict[str, Any]:
        call = self.model_call
        out: dict[str, Any] = {}
        if call.output_key is not None:
            out["output_key"] = call.output_key
        if call.output is not None:
            out["output"] = call.output
        if call.pad_multiple is not None:
            out["pad_multiple"] = call.pad_multiple
            out["pad_mode"] = call.pad_mode
        return out

    def _warn_training(self) -> None:
        # an exported program's module has a training flag, but its mode was fixed at export
        if getattr(self.model, "training", False) and not is_exported_module(self.model):
            warnings.warn(
                "the model is in training mode (dropout / batch-norm statistics change its "
                "outputs); call model.eval() before explaining it",
                UserWarning,
                stacklevel=3,
            )


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (tuple, list)) and all(isinstance(i, (int, float, str)) for i in v):
            out[k] = list(v)
        elif callable(v):
            out[k] = getattr(v, "__name__", repr(v))
        elif isinstance(v, (np.ndarray, torch.Tensor)):
            out[k] = f"array{tuple(v.shape)}"
        else:
            out[k] = repr(v)
    return out
