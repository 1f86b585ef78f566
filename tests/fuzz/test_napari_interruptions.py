"""napari interruptions: layer removed mid-run, Run twice, Cancel then Run, close, trust box."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.utils.notifications import NotificationSeverity, notification_manager

from maskscope.napari import explain_in_viewer
from maskscope.napari._model_picker import TRUST_LABEL
from tests.crafted import crafted_pt2

from .faults import BOUND, Faulty, Gated

#: Model calls a GUI makes before a run: the prediction it shows first.
CHECK = 1

WAIT_MS = int(BOUND * 1000)
PARAMS = {"method": "SegRISE", "n_masks": 40, "grid": 4, "batch_size": 4}


def square(size: int = 24) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    img[6:15, 5:17] = 1.0
    return img


@pytest.fixture
def errors():
    start = len(notification_manager.records)
    return lambda: [
        str(n.message)
        for n in notification_manager.records[start:]
        if n.severity == NotificationSeverity.ERROR
    ]


def finish(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def run_again_succeeds(qtbot, widget) -> None:
    with qtbot.waitSignal(widget.run_finished, timeout=WAIT_MS) as done:
        assert widget.run() is not None, widget.status.text()
    assert done.args[0] is not None and done.args[0].done


def test_run_twice_and_cancel_then_run(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(square(), name="sq")
    model = Gated(free_calls=CHECK + 2)
    widget = explain_in_viewer(viewer, model, **PARAMS)
    widget.yield_every = 0.0
    assert widget.run() is not None
    assert model.entered.wait(BOUND)
    assert widget.run() is None  # a second Run while running starts nothing
    widget.cancel()
    model.gate.set()
    finish(qtbot, widget)
    assert widget.last_snapshot.cancelled and widget.last_snapshot.n_done == 8
    assert widget.status.text().startswith("cancelled at 8/40")
    assert model.calls == CHECK + 3  # no chunk after the cancel
    run_again_succeeds(qtbot, widget)


def test_layer_removed_mid_run(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(square(), name="sq")
    model = Gated(free_calls=CHECK + 2)
    widget = explain_in_viewer(viewer, model, **PARAMS)
    widget.yield_every = 0.0
    widget.run()
    assert model.entered.wait(BOUND)
    viewer.layers.remove("sq")
    model.gate.set()
    finish(qtbot, widget)
    assert widget.run_button.isEnabled()
    viewer.add_image(square(), name="again")
    run_again_succeeds(qtbot, widget)


@pytest.mark.parametrize("how", ["remove the dock widget", "close the viewer"])
def test_closing_the_widget_cancels_its_run(make_napari_viewer, qtbot, how) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(square(), name="sq")
    model = Gated(free_calls=CHECK + 2)
    widget = explain_in_viewer(viewer, model, **PARAMS)
    widget.run()
    assert model.entered.wait(BOUND)
    token, worker = widget.session.token, widget.worker
    if how == "close the viewer":
        viewer.close()
    else:
        viewer.window.remove_dock_widget(widget.parent())
        widget.deleteLater()
    qtbot.waitUntil(lambda: token.cancelled, timeout=WAIT_MS)
    model.gate.set()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    assert model.calls == CHECK + 3


def test_a_failing_model_keeps_the_partial_and_the_next_run_works(
    make_napari_viewer, qtbot, errors
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(square(), name="sq")
    model = Faulty("raise", n=CHECK + 4)
    widget = explain_in_viewer(viewer, model, **PARAMS)
    widget.yield_every = 0.0
    widget.run()
    finish(qtbot, widget)
    (message,) = errors()
    assert f"broke down at call {CHECK + 4}" in message and "(the partial map is kept)" in message
    assert widget.last_snapshot.n_done == 8
    model.fault = "none"
    run_again_succeeds(qtbot, widget)


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("grid", "", "grid is empty: it takes a number or numbers separated by commas"),
        ("baseline", "median", "\"baseline\" must be a number or one of 'min', 'mean'"),
    ],
)
def test_bad_fields_are_named(make_napari_viewer, qtbot, errors, field, text, message) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(square(), name="sq")
    widget = explain_in_viewer(viewer, Faulty("none"), **PARAMS)
    entry = widget.form.widget(field)
    (entry.setText if hasattr(entry, "setText") else entry.setCurrentText)(text)
    assert widget.run() is None
    assert message in errors()[-1] and "Params" not in errors()[-1]
    widget.set_values(**{field: 4 if field == "grid" else 0.0})
    run_again_succeeds(qtbot, widget)


def test_rgb_layer_for_a_one_channel_model_names_the_channels(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((24, 24, 3), np.uint8), name="photo", rgb=True)
    widget = explain_in_viewer(viewer, Faulty("none"), **PARAMS)
    assert widget.run() is None
    assert (
        "takes 1 input channel(s), but the image layer 'photo' has 3 (RGB colours)"
        in (errors()[-1])
    )


def test_trust_box_guards_pt2_files(make_napari_viewer, tmp_path, errors, caplog) -> None:
    caplog.set_level(logging.CRITICAL, logger="torch._export.serde.serialize")
    marker = tmp_path / "marker.txt"
    path = crafted_pt2(tmp_path, marker)
    viewer = make_napari_viewer()
    viewer.add_image(square(8), name="small")
    widget = explain_in_viewer(viewer, Faulty("none"), **PARAMS)
    widget.models.select(str(path))
    assert widget.models.trust.isVisibleTo(widget) and not widget.models.trust.isChecked()
    assert widget.run() is None
    assert f"allow it with the checkbox {TRUST_LABEL!r}" in errors()[-1]
    assert not marker.exists()
    widget.models.trust.setChecked(True)
    loaded = widget.models.load("cpu")
    assert marker.exists() and loaded.label == str(path)
