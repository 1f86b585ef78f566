"""The notebook widget's "Evaluate" row: deletion / insertion curves of the last map."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..evaluate.frontend import start_evaluation, summary_html
from ..evaluate.result import FaithfulnessResult
from ..evaluate.substrates import SUBSTRATES
from ..gui import error_line
from ._runner import BackgroundRun

if TYPE_CHECKING:
    from ._widget import ExplainWidget

__all__ = ["EvaluatePanel"]

#: Width of the curves' PNG in pixels.
PLOT_WIDTH = 720


class EvaluatePanel(widgets.VBox):
    """Deletion and insertion curves of the owner's last map, with the random baseline.

    The curves are computed in a background thread and drawn as they fill (at most
    ``owner.max_rate`` updates per second, plus a final one).

    Parameters
    ----------
    owner
        The :class:`~maskscope.notebook.ExplainWidget` whose last explanation is evaluated
        with its model, as the run called it (by sliding window when the run did).

    Attributes
    ----------
    result : FaithfulnessResult or None
        The latest snapshot of the current or last evaluation.
    error : Exception or None
        What ended the last evaluation, or kept it from starting.
    substrate_dropdown, steps_text, random_text : ipywidgets.Widget
        The settings: substrate, steps per curve, random orders in the baseline.
    evaluate_button, stop_button : ipywidgets.Button
        Start and stop (``evaluate_button.click()`` works from code).
    plot : ipywidgets.Image
        The curves as a PNG.
    summary : ipywidgets.HTML
        The AUCs, the random baseline's, and whether the map beats it.
    """

    def __init__(self, owner: ExplainWidget) -> None:
        self.owner = owner
        self.result: FaithfulnessResult | None = None
        self.error: BaseException | None = None
        self._run: BackgroundRun | None = None
        self._lock = threading.Lock()
        short = {"style": {"description_width": "90px"}, "layout": {"width": "200px"}}
        self.substrate_dropdown = widgets.Dropdown(
            options=list(SUBSTRATES), value="zero", description="substrate", **short
        )
        self.steps_text = widgets.BoundedIntText(
            value=50, min=1, max=1000, description="steps", **short
        )
        self.random_text = widgets.BoundedIntText(
            value=1, min=0, max=50, description="random orders", **short
        )
        self.evaluate_button = widgets.Button(description="Evaluate", icon="line-chart")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.plot = widgets.Image(format="png", layout={"width": f"{PLOT_WIDTH}px"})
        self.plot.layout.display = "none"
        self.summary = widgets.HTML(value="")
        self.evaluate_button.on_click(lambda _b: self.evaluate())
        self.stop_button.on_click(lambda _b: self.stop())
        controls = widgets.HBox(
            [
                self.substrate_dropdown,
                self.steps_text,
                self.random_text,
                self.evaluate_button,
                self.stop_button,
            ]
        )
        super().__init__([widgets.HTML("<b>evaluate</b>"), controls, self.plot, self.summary])
        self.add_class("maskscope-evaluate")

    @property
    def running(self) -> bool:
        """Whether an evaluation is in progress."""
        return self._run is not None and self._run.running

    def evaluate(self) -> EvaluatePanel:
        """Start evaluating the owner's last map (what the Evaluate button does).

        Problems do not raise: they show in :attr:`summary` and are kept in :attr:`error`.
        Returns self, so that ``panel.evaluate().wait()`` works.
        """
        if self.running:
            return self
        owner = self.owner
        self.result, self.error = None, None
        try:
            if owner.running:
                raise ValueError("an explanation is running: wait for it (or cancel it) first")
            batch = owner.form.values().get("batch_size") or 16
            results = start_evaluation(
                owner.explanation,
                owner.session.model.model,  # as the last run ran it (a sliding window too)
                slice_index=owner.model_slice() if owner.slicer.is3d else None,
                substrate=self.substrate_dropdown.value,
                steps=int(self.steps_text.value),
                n_random=int(self.random_text.value),
                batch_size=int(batch),
                spatial_dims=owner.spatial_dims,
                **owner.session.model.method_kwargs(),  # outputs, output key, padding
            )
        except Exception as exc:
            self.error = exc
            self.summary.value = f"evaluation cannot start: {error_line(exc)}"
            return self
        self.summary.value = "evaluating…"
        self.evaluate_button.disabled, self.stop_button.disabled = True, False
        self._run = BackgroundRun(
            results, self._show, self._finish, max_rate=owner.max_rate
        ).start()
        return self

    def stop(self) -> None:
        """Stop after the model call in progress; the curves so far stay shown."""
        if self.running:
            self._run.cancel()

    def wait(self, timeout: float | None = None) -> FaithfulnessResult | None:
        """Block until the evaluation ended and is shown; returns :attr:`result`."""
        run = self._run
        if run is not None and not run.wait(timeout):
            raise TimeoutError(f"the evaluation is still going after {timeout} s")
        return self.result

    def _show(self, result: Any) -> None:
        with self._lock:
            self.result = result
            self.plot.value = result.to_png(width=PLOT_WIDTH)
            self.plot.layout.display = ""
            self.summary.value = summary_html(result)

    def _finish(self, run: BackgroundRun) -> None:
        if run.latest is not None:
            self._show(run.latest)
        self.error = run.error
        if run.error is not None:
            self.summary.value = f"evaluation failed: {error_line(run.error)}"
        elif run.latest is None:
            self.summary.value = "stopped before the first curve point"
        self.evaluate_button.disabled, self.stop_button.disabled = False, True
