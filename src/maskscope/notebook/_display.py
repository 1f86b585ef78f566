"""What the notebook widget shows: the snapshots of a run, its status, the layout."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .. import Explanation
from ..gui import channel_ranking, ranking_html
from ..gui import status as st
from ..gui.inputs import reverse_explanation
from ._form import ParamForm
from ._runner import BackgroundRun
from ._view import views_of

__all__ = ["Display"]


class Display:
    """The display half of :class:`~maskscope.notebook.ExplainWidget` (a mixin)."""

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
                self.time_label.value = st.time_text(run.latest, running=False)
            else:
                self._redraw()
            self.error = run.error
            self.run_button.disabled, self.cancel_button.disabled = False, True
            self._set_status(st.finished(method, run.latest, run.error, run.cancelled))

    def _shown(self, snap: Explanation | None) -> Explanation | None:
        """A snapshot in the image's array order (the run's is in the model's)."""
        if snap is None or not self._run_reversed:
            return snap
        return reverse_explanation(snap, len(self._spatial))

    def _show(self, snap: Explanation) -> None:
        self.explanation = snap
        self.session.record(snap)
        if self._followed != self._run_id:
            self._followed = self._run_id
            self.slicer.follow(self._shown(snap).reference)
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
        self.time_label.value = st.time_text(snap)
        self.channel_table.value = ranking_html(channel_ranking(snap))

    # ------------------------------------------------------------------ display
    def _redraw(self, _change: Any = None) -> None:
        with self._lock:
            if self._syncing:
                return
            self.view.show(
                self._shown(self.explanation),
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

    # ------------------------------------------------------------------ layout
    def _lay_out(self, data_row: widgets.Widget) -> None:
        """Place the controls, and connect the buttons and display controls."""
        self._form_box = widgets.VBox([self.form.widget])
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.method_dropdown.observe(self._method_changed, names="value")
        display = [
            self.view_dropdown,
            self.cmap_dropdown,
            self.opacity_slider,
            self.outline_checkbox,
        ]
        for w in (self.channel_slider, *display):
            w.observe(self._redraw, names="value")
        header = [
            self.method_dropdown,
            self.target_text,
            self.slices_dropdown,
            self.run_button,
            self.cancel_button,
        ]
        left = [self.view.widget, self.slicer.axis_buttons, self.slicer.slider]
        model = [
            widgets.HTML("<b>model</b>"),
            self.device_dropdown,
            self.output_key_text,
            self.pad_multiple_text,
            self.pad_mode_dropdown,
            self.axes_dropdown,
            self.patches.widget,
        ]
        right = widgets.VBox(
            [
                widgets.VBox(model),
                self._form_box,
                widgets.VBox([widgets.HTML("<b>display</b>"), *display]),
            ],
            layout={"margin": "0 0 0 12px"},
        )
        self.children = [
            widgets.HBox(header),
            widgets.HBox([widgets.VBox([*left, self.channel_slider]), right]),
            data_row,
            self.prediction_label,
            widgets.HBox([self.progress, self.time_label]),
            self.status,
            self.channel_table,
            self.evaluation,
        ]
        self.add_class("maskscope-explain")
