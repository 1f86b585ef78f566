"""Cancel keeps the partial map; errors become one-line notifications, nothing crashes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from maskscope.napari import explain_in_viewer

from .conftest import FailsAfter, Slow, run_to_end, saliency_layers, square_image


def test_cancel_stops_the_worker_and_keeps_the_partial_map(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    slow = Slow(model2d, seconds=0.02)
    widget = explain_in_viewer(viewer, slow, method="RISE", n_masks=4000, batch_size=4)
    widget.yield_every = 0.0
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.n_updates >= 1, timeout=10_000)
    assert widget.cancel_button.isEnabled() and not widget.run_button.isEnabled()
    assert widget.status.text().endswith("left")  # e.g. "8/4000 · 0.1 s · about 12 s left"
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        widget.cancel()

    assert not worker.is_running and widget.worker is None
    (layer,) = saliency_layers(viewer)
    assert layer.name == "sq RISE (partial)"
    meta = layer.metadata["maskscope"]
    assert meta["partial"] is True and 0 < meta["n_done"] < meta["n_total"] == 4000
    assert np.ptp(layer.data) > 0
    assert widget.status.text().startswith("cancelled at")
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_a_bad_model_file_is_a_notification(make_napari_viewer, plugin, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a TorchScript archive")
    _, widget = viewer.window.add_plugin_dock_widget("maskscope", "Explain segmentation")
    widget.models.select(str(bad))
    assert widget.models.spec.isVisibleTo(widget)
    assert widget.run() is None  # a model file needs the trust box ticked
    (message,) = errors()
    assert "TorchScript file is a program" in message
    assert "allow it with the checkbox 'trust this model file (it can run code)'" in message
    widget.models.trust.setChecked(True)

    assert widget.run() is None
    message = errors()[-1]
    assert "broken.pt" in message and "not a TorchScript archive" in message
    assert "\n" not in message
    assert widget.status.text().startswith("failed:")
    assert widget.run_button.isEnabled() and widget.worker is None
    assert saliency_layers(viewer) == []


def test_a_model_raising_mid_run_keeps_what_was_computed(
    make_napari_viewer, plugin, qtbot, model2d, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    # the prediction shown first, the unperturbed pass, two chunks, then it raises
    failing = FailsAfter(model2d, n=5)
    widget = explain_in_viewer(viewer, failing, method="RISE", n_masks=40, batch_size=4)
    widget.yield_every = 0.0
    run_to_end(qtbot, widget)

    (message,) = errors()
    assert message.startswith(
        "maskscope: the model failed on an input batch of shape (4, 1, 48, 48): "
        "RuntimeError: the model broke down"
    )
    assert "second line" not in message
    (layer,) = saliency_layers(viewer)
    assert layer.name == "sq RISE (partial)" and layer.metadata["maskscope"]["n_done"] == 8
    assert np.ptp(layer.data) > 0

    # the widget is still usable: the next run (a working model) completes
    widget.add_model("working", model2d)
    run_to_end(qtbot, widget)
    assert layer.name == "sq RISE" and layer.metadata["maskscope"]["partial"] is False


def test_bad_settings_are_notifications(make_napari_viewer, qtbot, model2d, errors):
    viewer = make_napari_viewer()
    widget = explain_in_viewer(viewer, model2d, method="PixelRISE", merge="max", baseline="median")
    assert widget.run() is None  # no image yet
    viewer.add_image(square_image(), name="sq")
    assert widget.run() is None  # not a baseline
    widget.set_values(baseline="0", grid="8, x")
    assert widget.run() is None  # not a number
    widget.set_values(grid=8)
    viewer.add_labels(np.zeros((20, 20), np.int32), name="small")
    widget.inputs.set_reference(viewer.layers["small"])
    assert widget.run() is None  # a reference of another shape
    first, second, third, fourth = errors()
    assert "no image layer" in first
    assert "baseline" in second and "'min', 'mean'" in second
    assert "grid takes a number" in third
    assert "reference layer 'small' has shape (20, 20)" in fourth
    assert saliency_layers(viewer) == [] and widget.run_button.isEnabled()


def test_set_values_refuses_numbers_a_spin_box_would_clamp(make_napari_viewer, model2d):
    viewer = make_napari_viewer()
    widget = explain_in_viewer(viewer, model2d, method="SegRISE", n_masks=40)
    for bad, message in [
        ({"n_masks": -5}, '"n masks" must be in [1, 1e+06], got -5'),
        ({"p_keep": 1.5}, '"p keep" must be in (0, 1), got 1.5'),
        ({"p_keep": 1.0}, '"p keep" must be in (0, 1), got 1.0'),
        ({"batch_size": -3}, '"batch size" must be in [1, inf], got -3'),
        ({"tol": 0.0}, '"early-stop tolerance" must be in (0, 1], got 0.0'),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            widget.set_values(**bad)
    for bad, message in [
        ({"tol": 0.0004}, "takes at most 3 decimals here, got 0.0004"),  # would read "none"
        ({"p_keep": 0.12345}, "takes at most"),
        ({"n_masks": 2.7}, '"n masks" takes a whole number, got 2.7'),
        ({"n_masks": 7, "p_keep": 1.5}, '"p keep" must be in (0, 1)'),  # n_masks not set
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            widget.set_values(**bad)
    values = widget.form.values()
    assert values["n_masks"] == 40 and values["p_keep"] == 0.5 and values["tol"] is None
    widget.set_values(n_masks=7, tol=0.1, batch_size=None)
    values = widget.form.values()
    assert values["n_masks"] == 7 and values["tol"] == 0.1 and values["batch_size"] is None


def test_the_legend_states_the_map_layers_colour_range(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    widget = explain_in_viewer(viewer, model2d, method="RISE", n_masks=64, batch_size=4)
    widget.yield_every = 0.0  # a snapshot per chunk: the range moves as the map does
    run_to_end(qtbot, widget)
    (layer,) = saliency_layers(viewer)

    def numbers() -> tuple[float, float]:
        found = re.findall(r"at (-?[0-9.e+-]+)", widget.legend.text())
        return float(found[0]), float(found[1])

    lo, hi = layer.contrast_limits
    assert numbers() == (float(f"{lo:.3g}"), float(f"{hi:.3g}"))
    layer.contrast_limits = (lo - 1.0, hi + 2.0)  # set by the user in the layer's controls
    assert numbers() == (float(f"{lo - 1.0:.3g}"), float(f"{hi + 2.0:.3g}"))


def test_the_old_form_is_hidden_at_once_when_the_method_changes(make_napari_viewer, model2d):
    viewer = make_napari_viewer()
    widget = explain_in_viewer(viewer, model2d, method="SegRISE")
    old = widget.form
    widget.method.setCurrentText("HDM")
    assert widget.form is not old and old.isHidden() and widget.form.method == "HDM"
