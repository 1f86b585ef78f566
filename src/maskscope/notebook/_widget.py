"""``ExplainWidget``: explain a segmentation model in a notebook, watching the map build up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from .._engine.cancel import CancelToken
from .._engine.inputs import normalize_spacing, prepare_image
from ..explanation import Explanation
from ..frontend import method_class, start_run
from ..methods import METHODS
from . import _status as st
from ._checks import data_controls, resolve_normalization, show_prediction
from ._evaluate import EvaluatePanel
from ._form import FIELD_STYLE, FIELD_WIDTH, ParamForm
from ._runner import BackgroundRun
from ._slicer import Slicer
from ._view import COLORMAPS, ImageView, views_of

__all__ = ["ExplainWidget"]


def _method_name(name: str) -> str:
    for key in METHODS:
        if key.lower() == str(name).lower():
            return key
    raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {name!r}")


class ExplainWidget(widgets.VBox):
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
    cmap, opacity
        Initial colormap and overlay opacity.
    normalize
        Intensity normalisation before the model (:data:`maskscope.intensity.NORMALIZATIONS`),
        or ``"auto"``: none for values already in [0, 1], else percentile. The choice is
        shown and can be changed in the widget.
    max_rate
        Maximum display updates per second while running.
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
    view : ImageView
        The image view; ``view.widget`` is the ``ipywidgets.Image``.
    slicer : Slicer
        Slice slider and axis buttons (hidden for 2D images).
    run_button, cancel_button, progress, time_label, status : ipywidgets.Widget
        Run controls and feedback (``run_button.click()`` works from code).
    method_dropdown, target_text, slices_dropdown : ipywidgets.Widget
        What to explain (``slices_dropdown`` shows for a 2D model on a volume).
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
        cmap: str = "inferno",
        opacity: float = 0.6,
        normalize: str = "auto",
        max_rate: float = 5.0,
        **params: Any,
    ) -> None:
        if max_rate <= 0:
            raise ValueError(f"max_rate must be > 0 updates per second, got {max_rate!r}")
        method = _method_name(method)
        mode = resolve_normalization(normalize, image)
        # the method's own view of the model (dimensionality, channels), as used by the runs
        explainer = method_class(method)(model, outputs=outputs, spatial_dims=spatial_dims)
        layout = prepare_image(image, explainer.spatial_dims, explainer.in_channels)
        super().__init__()
        self.model, self.image, self.reference = model, image, reference
        self.outputs, self.spatial_dims, self.voxel_spacing = outputs, spatial_dims, voxel_spacing
        self.max_rate = float(max_rate)
        self.explanation: Explanation | None = None
        self.error: BaseException | None = None
        self.prediction_summary = None
        self._spatial = layout.spatial
        self._sliced = layout.slice_by_slice
        self._lock = threading.RLock()
        self._run: BackgroundRun | None = None
        self._run_id = 0
        self._followed = 0
        self._syncing = False

        self.form = ParamForm(method, params)
        unknown = sorted(set(params) - set(self.form.fields))
        if unknown:
            raise TypeError(
                f"unknown parameter(s) {', '.join(unknown)} for {method}; valid names are "
                f"{', '.join(self.form.fields)}"
            )
        pixels = layout.image.numpy()
        self.view = ImageView(pixels, normalize_spacing(voxel_spacing, len(self._spatial)))
        self.slicer = Slicer(self._spatial, self._redraw, reference)
        self._build_controls(method, target, cmap, opacity, pixels.shape[0])
        self.normalize_dropdown, self.normalization_label, self.prediction_label, row = (
            data_controls(mode, pixels, auto=normalize == "auto")
        )
        self.children = [*self.children[:-1], row, self.prediction_label, self.children[-1]]
        self.evaluation = EvaluatePanel(self)
        self.children = (*self.children, self.evaluation)
        self._set_status(st.describe_input(self._spatial, pixels.shape[0], self._sliced))
        self._redraw()

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
        """Fill parameter and run-option fields by name (``n_masks=200, seed=1``)."""
        self.form.set(**values)
        return self

    def run(self, **values: Any) -> ExplainWidget:
        """Start a run with the form's values (what the Run button does).

        A run in progress is cancelled first, without waiting for it: the new run starts
        calling the model once the old one has finished its chunk, in the background, so
        the kernel is never blocked. The new run replaces :attr:`explanation`. Bad values
        or inputs do not raise: they show in the status line and are kept in
        :attr:`error`.

        Parameters
        ----------
        **values
            Values to put in the form first (``n_masks=200``).

        Returns
        -------
        ExplainWidget
            self, so that ``w.run().wait()`` works.
        """
        if values:
            self.form.set(**values)
        old = self._run
        if old is not None and old.running:
            old.cancel()  # returns at once; the new run's thread waits for it
        else:
            old = None
        with self._lock:
            self._run_id += 1
            run_id, method = self._run_id, self.method
            self.explanation = None
            self.error = None
        self.progress.value = 0.0
        self.time_label.value = ""
        token = CancelToken()
        try:
            check = self._prediction_check(method)  # runs the model: in the run's thread
            snapshots = start_run(
                self.model,
                method,
                self.image,
                values=self.form.values(),
                target=self._target(),
                reference=self.reference,
                slices=self._slices(),
                voxel_spacing=self.voxel_spacing,
                outputs=self.outputs,
                spatial_dims=self.spatial_dims,
                yield_every=0.0,  # a snapshot per chunk: Cancel acts at the next chunk
                cancel=token,
                normalize=self.normalize_dropdown.value,
            )
        except Exception as exc:
            self.error = exc
            self._set_status(st.cannot_start(method, exc))
            self._redraw()
            return self
        self._set_status(st.Status(f"{method}: starting…"))
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self._run = BackgroundRun(
            snapshots,
            lambda snap: self._update(run_id, snap),
            lambda run: self._finish(run_id, method, run),
            max_rate=self.max_rate,
            token=token,
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

    def _prediction_check(self, method: str) -> Callable[[], None]:
        """What shows the model's segmentation (a warning if it looks failed), to run later.

        The form's values are read now; the model runs when the returned function is
        called, in the run's own thread, so that the kernel never waits on the model.
        """
        explainer = method_class(method)(
            self.model, outputs=self.outputs, spatial_dims=self.spatial_dims
        )
        target, slices = self._target(), self._slices()
        normalize = self.normalize_dropdown.value

        def check() -> None:
            self.prediction_summary = show_prediction(
                self.prediction_label,
                explainer,
                self.image,
                reference=self.reference,
                target=target,
                normalize=normalize,
                slices=slices,
            )

        return check

    # ------------------------------------------------------------------ run callbacks
    def _update(self, run_id: int, snap: Explanation) -> None:
        with self._lock:
            if run_id != self._run_id:
                return
            self._show(snap)
            self._set_status(st.running(snap))

    def _finish(self, run_id: int, method: str, run: BackgroundRun) -> None:
        with self._lock:
            if run_id != self._run_id:
                return
            if run.latest is not None:
                self._show(run.latest)
            else:
                self._redraw()
            self.error = run.error
            self.run_button.disabled, self.cancel_button.disabled = False, True
            self._set_status(st.finished(method, run))

    def _show(self, snap: Explanation) -> None:
        self.explanation = snap
        if self._followed != self._run_id:
            self._followed = self._run_id
            self.slicer.follow(snap.reference)
        options = views_of(snap)
        if list(self.view_dropdown.options) != options:
            current = self.view_dropdown.value
            self._syncing = True  # no redraw for each of these two changes
            try:
                self.view_dropdown.options = options
                self.view_dropdown.value = current if current in options else "map"
            finally:
                self._syncing = False
        self._redraw()
        self.progress.value = snap.progress
        self.time_label.value = st.progress_text(snap)

    # ------------------------------------------------------------------ display
    def _redraw(self, _change: Any = None) -> None:
        with self._lock:
            if self._syncing:
                return
            self.view.show(
                self.explanation,
                view=self.view_dropdown.value,
                axis=self.slicer.axis,
                index=self.slicer.index,
                cmap=self.cmap_dropdown.value,
                alpha=self.opacity_slider.value,
                contour=self.outline_checkbox.value,
                channel=self.channel_slider.value,
            )

    def _set_status(self, status: st.Status) -> None:
        self.status.value = st.status_html(status)
        self.progress.bar_style = status.bar_style

    def _method_changed(self, change: dict) -> None:
        self.form = ParamForm(change["new"], self.form.changed())
        self._form_box.children = [self.form.widget]

    def _target(self) -> int | None:
        raw = self.target_text.value.strip()
        if raw.lower() in ("", "auto", "none"):
            return None
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"target must be a class index or empty, got {raw!r}") from None

    def _slices(self) -> Any:
        if not self._sliced or self.slices_dropdown.value == "all":
            return "all"
        return self.slicer.index_along(0)

    # ------------------------------------------------------------------ layout
    def _build_controls(
        self, method: str, target: int | None, cmap: str, opacity: float, channels: int
    ) -> None:
        row: dict[str, Any] = {"style": FIELD_STYLE, "layout": {"width": FIELD_WIDTH}}
        short = {"style": {"description_width": "50px"}}
        self.method_dropdown = widgets.Dropdown(
            options=list(METHODS), value=method, description="method", layout={"width": "210px"}
        )
        self.target_text = widgets.Text(
            value="" if target is None else str(target),
            placeholder="auto",
            description="target",
            tooltip="Class to explain (empty: the method's default)",
            layout={"width": "150px"},
            **short,
        )
        self.slices_dropdown = widgets.Dropdown(
            options=[("current slice", "current"), ("all slices", "all")],
            description="slices",
            tooltip="A 2D model on a volume: explain the shown slice, or every slice",
            layout={"width": "200px", "display": "" if self._sliced else "none"},
            **short,
        )
        self.run_button = widgets.Button(description="Run", icon="play", button_style="primary")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        for b, name in ((self.run_button, "run"), (self.cancel_button, "cancel")):
            b.layout.width = "100px"
            b.add_class(f"maskscope-{name}")
        self.channel_slider = widgets.IntSlider(
            value=0,
            min=0,
            max=max(channels - 1, 0),
            description="channel",
            layout={"width": "380px", "display": "" if channels > 1 else "none"},
        )
        self.view_dropdown = widgets.Dropdown(
            options=["map"], value="map", description="show", **row
        )
        self.cmap_dropdown = widgets.Dropdown(
            options=list(COLORMAPS) if cmap in COLORMAPS else [cmap, *COLORMAPS],
            value=cmap,
            description="colormap",
            **row,
        )
        self.opacity_slider = widgets.FloatSlider(
            value=opacity, min=0.0, max=1.0, step=0.05, description="opacity", **row
        )
        self.outline_checkbox = widgets.Checkbox(
            value=True, description="outline reference", indent=False
        )
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0)
        self.progress.layout.width = "380px"
        self.progress.add_class("maskscope-progress")
        self.time_label = widgets.Label(value="")
        self.status = widgets.HTML(value="")
        self.status.add_class("maskscope-status")
        self._form_box = widgets.VBox([self.form.widget])

        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.method_dropdown.observe(self._method_changed, names="value")
        for w in (
            self.channel_slider,
            self.view_dropdown,
            self.cmap_dropdown,
            self.opacity_slider,
            self.outline_checkbox,
        ):
            w.observe(self._redraw, names="value")

        header = widgets.HBox(
            [
                self.method_dropdown,
                self.target_text,
                self.slices_dropdown,
                self.run_button,
                self.cancel_button,
            ]
        )
        left = widgets.VBox(
            [self.view.widget, self.slicer.axis_buttons, self.slicer.slider, self.channel_slider]
        )
        display = widgets.VBox(
            [
                widgets.HTML("<b>display</b>"),
                self.view_dropdown,
                self.cmap_dropdown,
                self.opacity_slider,
                self.outline_checkbox,
            ]
        )
        right = widgets.VBox([self._form_box, display], layout={"margin": "0 0 0 12px"})
        self.children = [
            header,
            widgets.HBox([left, right]),
            widgets.HBox([self.progress, self.time_label]),
            self.status,
        ]
        self.add_class("maskscope-explain")
