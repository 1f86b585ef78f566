"""``ExplainWidget``: explain a segmentation model in a notebook, watching the map build up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from .. import Explanation
from ..gui import LoadedModel, RunRequest, Session, method_name, reverse_axes, windowed
from ..gui import status as st
from ..gui.inputs import normalize_spacing, prepare_image, spacing_from_image
from ..gui.models import parse_output_key, parse_pad_multiple, to_device
from ..roi import as_roi
from ._checks import data_controls, resolve_normalization, show_prediction
from ._controls import display_controls, feedback, model_controls, run_controls
from ._display import Display
from ._evaluate import EvaluatePanel
from ._form import ParamForm
from ._patches import PatchForm
from ._runner import BackgroundRun
from ._slicer import Slicer
from ._view import ImageView

__all__ = ["ExplainWidget"]


class ExplainWidget(Display, widgets.VBox):
    """Explain a segmentation model in Jupyter while the saliency map is computed.

    The image is shown with the saliency overlay, which updates while the explanation
    runs in a background thread (at most ``max_rate`` updates per second, plus a final
    one); the kernel stays free. Volumes get a slice slider and an axis choice, and only
    the visible slice is sent to the browser.

    Parameters
    ----------
    model
        A callable taking ``(B, C, *spatial)`` and returning ``(B, K, *spatial)``
        (segmentation) or ``(B, K)`` (classification, RISE only). Put it in eval mode.
    image
        ``(H, W)``, ``(C, H, W)``, ``(D, H, W)`` or ``(C, D, H, W)``, numpy or torch.
    reference
        Reference segmentation (default: the model's own prediction).
    method
        A name listed in :data:`maskscope.methods.METHODS` (case-insensitive).
    target
        The class to explain (default: the method's choice, see ``iter_explain``).
    voxel_spacing
        Physical voxel size per spatial axis (display aspect ratio, HDM distances).
    outputs
        ``"logits"`` or ``"probabilities"``.
    spatial_dims
        2 or 3, when the model's dimensionality cannot be inferred.
    output_key, pad_multiple, pad_mode
        What to explain in the model's output, and padding to a multiple per axis (as the
        methods' parameters of the same names); shown as fields.
    axes
        ``"ijk"``: the model takes the image as given; ``"kji"``: with its spatial axes
        reversed (a model trained on SimpleITK's order, given nibabel's). The map is
        shown in the image's order either way; :attr:`explanation` is in the model's.
    cmap, opacity
        Initial colormap and overlay opacity.
    normalize
        Intensity normalisation before the model (:data:`maskscope.intensity.NORMALIZATIONS`),
        or ``"auto"``: none for values already in [0, 1] or z-scored, else percentile. The choice is
        shown and can be changed in the widget.
    max_rate
        Maximum display updates per second while running.
    per_channel
        RISE family: masks drawn per input channel; the explanation then has a map per
        channel and ``extras["channel_importance"]``.
    roi, crop
        Explain only a region of interest: a boolean mask of the image's spatial shape, a
        box ``"z0:z1,y0:y1,x0:x1"`` or an :class:`maskscope.ROI`; ``crop`` as in
        ``iter_explain``: ``"auto"`` (the RISE family runs the model on the ROI's box plus
        the receptive field when that can be estimated), True, a margin, or False (the
        whole image). See the guide "Explain one lesion in a large volume".
    patch_size, patch_overlap, patch_blend, patch_batch
        Run the model by sliding window (:class:`maskscope.SlidingWindow`); shown as fields.
    **params
        Initial values of the method's parameters and run options (``n_masks=500``).

    Attributes
    ----------
    explanation : Explanation or None
        The latest snapshot of the current (or last) run.
    error : Exception or None
        The exception that ended the last run, or that kept it from starting.
    form : ParamForm
        The parameter form of the selected method (``form.fields[name].widget``).
    patches, channel_table : PatchForm, ipywidgets.HTML
        The sliding-window fields; the channels ranked by importance (per-channel runs).
    view : ImageView
        The image view; ``view.widget`` is the ``ipywidgets.Image``.
    slicer : Slicer
        Slice slider and axis buttons (hidden for 2D images).
    run_button, cancel_button, progress, time_label, status : ipywidgets.Widget
        Run controls and feedback (``run_button.click()`` works from code).
    method_dropdown, target_text, slices_dropdown : ipywidgets.Widget
        What to explain (``slices_dropdown`` shows for a 2D model on a volume).
    device_dropdown, output_key_text, pad_multiple_text, pad_mode_dropdown, axes_dropdown
        The model's fields (the same as napari's; ``"auto"`` leaves the model where it is).
    session : maskscope.gui.Session
        The model, the method and the run's cancel token and last snapshot.
    normalize_dropdown, normalization_label : ipywidgets.Widget
        The normalisation used before the model, and what it does to this image.
    prediction_label : ipywidgets.HTML
        The model's own prediction, shown before each run (voxels per class, Dice against
        the reference, a warning when it looks failed).
    prediction_summary : maskscope.prediction.PredictionSummary or None
        The same, as data.
    view_dropdown, cmap_dropdown, opacity_slider, outline_checkbox, channel_slider
        Display controls: which map (``"map"``, ``"stderr"``, the extras), colours,
        opacity, the reference outline, and the image channel drawn underneath.
    evaluation : EvaluatePanel
        The "Evaluate" row: deletion / insertion curves of the last map and their AUCs.

    Raises
    ------
    TypeError, ValueError
        For a model that is not callable, an image of unusable shape, an unknown method,
        parameter name or ``outputs`` kind. Problems found when a run starts go to the
        status line instead.

    Examples
    --------
    >>> w = ExplainWidget(model, image, method="SegRISE", n_masks=500)  # doctest: +SKIP
    >>> w  # shows it: press Run, or from code:                         # doctest: +SKIP
    >>> expl = w.run().wait()                                           # doctest: +SKIP
    """

    #: Whether the last run fed the model the spatial axes reversed (None: no run yet).
    _run_reversed: bool | None = None

    def __init__(
        self,
        model: Callable,
        image: Any,
        reference: Any = None,
        *,
        method: str = "SegRISE",
        target: int | None = None,
        voxel_spacing: Any = None,
        outputs: str = "logits",
        spatial_dims: int | None = None,
        output_key: str | int | None = None,
        pad_multiple: int | tuple[int, ...] | None = None,
        pad_mode: str = "zeros",
        axes: str = "ijk",
        cmap: str = "inferno",
        opacity: float = 0.6,
        normalize: str = "auto",
        max_rate: float = 5.0,
        roi: Any = None,
        crop: Any = "auto",
        per_channel: bool = False,
        **params: Any,
    ) -> None:
        max_rate = st.check_rate(max_rate)
        method = method_name(method, any_case=True)
        mode = resolve_normalization(normalize, image)
        # the method's own view of the model (dimensionality, channels), as used by the runs
        session = Session(method, LoadedModel(model, outputs, spatial_dims, type(model).__name__))
        explainer = session.explainer()
        layout = prepare_image(image, explainer.spatial_dims, explainer.in_channels)
        if voxel_spacing is None:  # a MONAI MetaTensor knows its own
            voxel_spacing = spacing_from_image(image, len(layout.spatial))
        super().__init__()
        self.model, self.image, self.reference = model, image, reference
        self.outputs, self.spatial_dims, self.voxel_spacing = outputs, spatial_dims, voxel_spacing
        self.max_rate, self.session = max_rate, session
        #: The region of interest (``roi=`` of ``iter_explain``, in the image's order) and
        #: crop mode, used by every run.
        self.roi, self.crop = (None if roi is None else as_roi(roi)), crop
        self.per_channel = per_channel
        self._init_run_state(layout)
        self.patches = PatchForm()
        self.form = ParamForm(method, self.patches.take(params), strict=True)
        pixels = layout.image.numpy()
        self.view = ImageView(pixels, normalize_spacing(voxel_spacing, len(self._spatial)))
        self.slicer = Slicer(self._spatial, self._redraw, reference)
        controls = {
            **run_controls(method, target, self._sliced),
            **model_controls(output_key, pad_multiple, pad_mode, axes),
            **display_controls(cmap, opacity, pixels.shape[0]),
            **feedback(),
        }
        for name, control in controls.items():
            setattr(self, name, control)
        self.normalize_dropdown, self.normalization_label, self.prediction_label, row = (
            data_controls(mode, pixels, auto=normalize == "auto")
        )
        self.evaluation = EvaluatePanel(self)
        self._lay_out(row)
        self._set_status(st.describe_input(self._spatial, pixels.shape[0], self._sliced))
        self._redraw()

    def _init_run_state(self, layout) -> None:
        """No run yet: no explanation, error or prediction summary; the input's layout."""
        self.explanation: Explanation | None = None
        self.error: BaseException | None = None
        self.prediction_summary = None
        self._spatial = layout.spatial
        self._sliced = layout.slice_by_slice
        self._lock = threading.RLock()
        self._run: BackgroundRun | None = None
        self._run_id = self._followed = 0  # the current run, and the last one followed
        self._syncing = False

    # ------------------------------------------------------------------ public API
    @property
    def method(self) -> str:
        """The selected method."""
        return self.method_dropdown.value

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._run is not None and self._run.running

    @property
    def last_png(self) -> bytes:
        """The PNG last sent to the image view."""
        return self.view.widget.value

    @property
    def n_updates(self) -> int:
        """Display updates of the current (or last) run, the final one excluded."""
        return 0 if self._run is None else self._run.n_updates

    @property
    def update_times(self) -> list[float]:
        """``time.monotonic()`` of each of those updates."""
        return [] if self._run is None else list(self._run.update_times)

    def set_params(self, **values: Any) -> ExplainWidget:
        """Fill parameter, run-option and sliding-window fields by name (``n_masks=200``)."""
        self.form.set(**self.patches.take(values))
        return self

    def run(self, **values: Any) -> ExplainWidget:
        """Start a run with the form's values (what the Run button does).

        A run in progress is cancelled first, without waiting for it: the new run starts
        calling the model once the old one has finished its chunk, in the background, so
        the kernel is never blocked. The new run replaces :attr:`explanation`. Bad values
        or inputs do not raise: they show in the status line and are kept in
        :attr:`error`, and nothing else changes (the last map stays, a run in progress
        goes on). Returns self, so that ``w.run().wait()`` works.
        """
        if values:
            self.set_params(**values)
        method = self.method
        try:  # everything is checked before anything shown changes
            snapshots, check = self._start(method)
        except Exception as exc:
            self.error = exc  # the last map, and a run in progress, stay as they are
            self._set_status(st.cannot_start(method, exc))
            return self
        old = self._run if self._run is not None and self._run.running else None
        if old is not None:
            old.cancel()  # returns at once; the new run's thread waits for it
        with self._lock:
            self._run_id += 1
            run_id = self._run_id
            self._run_reversed = self.reversed  # the order of the explanations that follow
            self.explanation = None
            self.error = None
        self.progress.value = 0.0
        self.time_label.value = ""
        self._set_status(st.Status(f"{method}: starting…"))
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self._run = BackgroundRun(
            snapshots,
            lambda snap: self._update(run_id, snap),
            lambda run: self._finish(run_id, method, run),
            max_rate=self.max_rate,
            token=self.session.token,
            after=old,
            before=check,
        ).start()
        return self

    def cancel(self) -> None:
        """Stop the run after the chunk in progress; the partial map is kept."""
        if self.running:
            self._run.cancel()
            self._set_status(st.Status(f"{self.method}: cancelling after this chunk…"))

    def close(self) -> None:
        """Close the widget; a run in progress is cancelled (it ends after its chunk)."""
        run = getattr(self, "_run", None)  # also called by __del__, maybe half-built
        if run is not None:
            run.cancel()
        super().close()

    def wait(self, timeout: float | None = None) -> Explanation | None:
        """Block until the run ended and the widget shows its final state.

        Parameters
        ----------
        timeout
            Seconds to wait at most; ``TimeoutError`` if the run is still going then.

        Returns
        -------
        Explanation or None
            :attr:`explanation` (None when the run failed before its first snapshot:
            see :attr:`error`).
        """
        run = self._run
        if run is not None and not run.wait(timeout):
            raise TimeoutError(f"the {self.method} run is still going after {timeout} s")
        return self.explanation

    def show_slice(self, index: int, axis: int = 0) -> None:
        """Show slice ``index`` along spatial ``axis`` (0, 1 or 2) of a volume."""
        self.slicer.show(index, axis)

    # ------------------------------------------------------------------ starting a run
    @property
    def reversed(self) -> bool:
        """Whether the model takes the image's spatial axes reversed (``axes="kji"``)."""
        return self.axes_dropdown.value == "kji"

    def model_slice(self, reversed: bool | None = None) -> int:
        """The shown slice's index along the model's first spatial axis.

        ``reversed``: whether the model takes the axes reversed (default: as the last run
        did, or as the "array order" field says before the first run).
        """
        if reversed is None:
            reversed = self._run_reversed if self._run_reversed is not None else self.reversed
        return self.slicer.index_along(len(self._spatial) - 1 if reversed else 0)

    def _loaded(self) -> LoadedModel:
        """The model with the model fields' values, checked (a sliding window if asked)."""
        patches = self.patches.settings()
        loaded = LoadedModel(
            to_device(self.model, self.device_dropdown.value),
            self.outputs,
            self.spatial_dims,
            type(self.model).__name__,
            output_key=parse_output_key(self.output_key_text.value),
            pad_multiple=parse_pad_multiple(self.pad_multiple_text.value),
            pad_mode=self.pad_mode_dropdown.value,
        )
        return windowed(loaded, patches)

    def _request(self) -> RunRequest:
        """The image, reference and spacing in the model's order, and what to explain."""
        image, reference, spacing = self.image, self.reference, self.voxel_spacing
        if self.reversed:
            n = len(self._spatial)
            image = reverse_axes(image, n)
            reference = None if reference is None else reverse_axes(reference, n)
            spacing = None if spacing is None else tuple(normalize_spacing(spacing, n))[::-1]
        return RunRequest(
            image,
            target=self._target(),
            reference=reference,
            slices=self._slices(self.reversed),
            voxel_spacing=spacing,
            normalize=self.normalize_dropdown.value,
            roi=self.roi.reversed_axes() if self.reversed and self.roi is not None else self.roi,
            crop=self.crop,
            per_channel=self.per_channel,
        )

    def _start(self, method: str) -> tuple[Any, Callable[[], None]]:
        """The run's snapshots, and the prediction check to run in the run's thread."""
        snapshots = self.session.start(
            self._request(),
            self.form.values(),
            # the engine paces its snapshots as napari's widget has them (0.2 s, and at most a
            # tenth of the run); Cancel still acts at the next chunk through the token
            method=method,
            model=self._loaded(),
        )
        check = self.session.check

        def show() -> None:
            self.prediction_summary = show_prediction(self.prediction_label, check)

        return snapshots, show

    def _target(self) -> int | None:
        raw = self.target_text.value.strip()
        if raw.lower() in ("", "auto", "none"):
            return None
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"target must be a class index or empty, got {raw!r}") from None

    def _slices(self, reversed: bool) -> Any:
        if not self._sliced or self.slices_dropdown.value == "all":
            return "all"
        return self.model_slice(reversed)
