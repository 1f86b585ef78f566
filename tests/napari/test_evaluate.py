"""The dock's "evaluate" section: curves of the last map in a thread, drawn in the dock."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from maskscope.evaluate import faithfulness
from maskscope.napari import explain_in_viewer

from .conftest import Slow, Threshold, run_to_end, square_image


def evaluate_to_end(qtbot, panel, timeout: int = 30_000):
    with qtbot.waitSignal(panel.evaluation_finished, timeout=timeout):
        panel.evaluate_button.click()
        assert panel.worker is not None, panel.summary.text()
    return panel.result


def test_evaluate_draws_the_curves_of_the_last_map(make_napari_viewer, qtbot, model2d, errors):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    widget = explain_in_viewer(viewer, model2d, method="SegRISE", n_masks=32, batch_size=8)
    panel = widget.evaluation
    panel.steps.setValue(10)
    panel.n_random.setValue(2)
    panel.substrate.setCurrentText("blur")
    run_to_end(qtbot, widget)
    result = evaluate_to_end(qtbot, panel)

    assert result.done and result.n_forward == 1 + 2 * 3 * 11
    want = faithfulness(
        widget.last_snapshot, model=model2d, steps=10, n_random=2, substrate="blur", batch_size=8
    )
    for name, curve in want.curves().items():
        np.testing.assert_array_equal(result.curves()[name].runs["dice"], curve.runs["dice"])
        np.testing.assert_allclose(
            result.curves()[name].runs["probability"], curve.runs["probability"], rtol=1e-6
        )
    pixmap = panel.plot.pixmap()
    assert pixmap is not None and not pixmap.isNull() and pixmap.width() >= 300
    text = panel.summary.text()
    assert "better than random" in text and f"{want.auc('deletion'):.3f}" in text
    assert panel.evaluate_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert errors() == []


def test_errors_are_notifications_and_the_panel_stays_usable(
    make_napari_viewer, qtbot, model2d, errors
):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    widget = explain_in_viewer(viewer, model2d, method="SegRISE", n_masks=16)
    panel = widget.evaluation
    assert panel.evaluate() is None
    assert errors() == ["maskscope: there is no map to evaluate yet: run an explanation first"]
    assert panel.summary.text().startswith("evaluation failed: there is no map")
    assert panel.evaluate_button.isEnabled()

    run_to_end(qtbot, widget)
    loaded = widget.last_model
    widget.last_model = replace(loaded, model=Threshold(3))  # sees the image as a volume
    evaluate_to_end(qtbot, panel)  # the error comes from the worker thread
    assert errors()[1:] == [
        "maskscope: map must have the image's spatial shape (1, 48, 48), got (48, 48)"
    ]
    assert panel.summary.text().startswith("evaluation failed: map must have")
    widget.last_model = loaded
    panel.steps.setValue(4)
    assert evaluate_to_end(qtbot, panel).done


def test_stop_keeps_the_partial_curves(make_napari_viewer, qtbot, model2d):
    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    slow = Slow(model2d, seconds=0.03)
    widget = explain_in_viewer(viewer, slow, method="SegRISE", n_masks=8, batch_size=2)
    run_to_end(qtbot, widget)
    panel = widget.evaluation
    panel.steps.setValue(400)
    worker = panel.evaluate()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=10_000)
    with qtbot.waitSignal(panel.evaluation_finished, timeout=10_000):
        panel.cancel_button.click()
    assert not worker.is_running and panel.worker is None
    assert not panel.result.done and 0 < panel.result.deletion.n_done < 401
    assert "(in progress)" in panel.summary.text()
    assert not panel.plot.pixmap().isNull()


def test_evaluate_calls_the_model_as_the_run_did(make_napari_viewer, qtbot, errors):
    from tests.cli.threshold_factory import DictThreshold
    from tests.conftest import ThresholdNet

    viewer = make_napari_viewer()
    viewer.add_image(square_image(), name="sq")
    model = DictThreshold(2)  # a dict of two entries: the output key says which
    widget = explain_in_viewer(
        viewer, model, method="SegRISE", n_masks=24, batch_size=8, output_key="seg"
    )
    widget.evaluation.steps.setValue(6)
    run_to_end(qtbot, widget)
    result = evaluate_to_end(qtbot, widget.evaluation)
    assert result.done and errors() == []
    want = faithfulness(widget.last_snapshot, model=ThresholdNet(2), steps=6, batch_size=8)
    np.testing.assert_array_equal(
        result.curves()["deletion"].runs["dice"], want.curves()["deletion"].runs["dice"]
    )
