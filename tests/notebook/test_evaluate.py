"""The notebook widget's Evaluate row, without a browser: click, wait, check what is shown."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from PIL import Image

from maskscope.evaluate import faithfulness
from maskscope.notebook import ExplainWidget
from tests.conftest import ThresholdNet
from tests.notebook.test_widget import Slow, wait_until


@pytest.fixture
def image2d() -> np.ndarray:
    img = np.zeros((40, 44), np.float32)
    img[10:26, 8:30] = 1.0
    return img


def test_evaluate_shows_the_curves_and_the_aucs(image2d):
    net = ThresholdNet(2)
    w = ExplainWidget(net, image2d, method="SegRISE", n_masks=32, batch_size=8)
    w.run().wait(30)
    panel = w.evaluation
    panel.steps_text.value = 12
    panel.random_text.value = 2
    panel.substrate_dropdown.value = "min"
    panel.evaluate_button.click()
    result = panel.wait(30)

    assert result is not None and result.done and panel.error is None
    want = faithfulness(w.explanation, model=net, steps=12, n_random=2, substrate="min")
    for name, curve in want.curves().items():
        np.testing.assert_array_equal(result.curves()[name].runs["dice"], curve.runs["dice"])
        np.testing.assert_allclose(
            result.curves()[name].runs["probability"], curve.runs["probability"], rtol=1e-6
        )
    png = Image.open(io.BytesIO(panel.plot.value))
    assert png.size[0] == 720 and panel.plot.layout.display == ""
    for kind in ("deletion", "insertion"):
        assert f"<td>{want.auc(kind):.3f}</td>" in panel.summary.value
        assert f"<td>{want.auc(kind, random=True):.3f}</td>" in panel.summary.value
    assert "better than random" in panel.summary.value
    assert not panel.evaluate_button.disabled and panel.stop_button.disabled


def test_no_map_yet_is_a_message_not_an_exception(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, method="SegRISE", n_masks=16)
    assert w.evaluation.evaluate().result is None
    assert "evaluation cannot start: there is no map to evaluate yet" in w.evaluation.summary.value
    assert isinstance(w.evaluation.error, ValueError)
    assert w.evaluation.plot.layout.display == "none"


def test_stop_keeps_the_partial_curves(image2d):
    slow = Slow(ThresholdNet(2), delay=0.03)
    w = ExplainWidget(slow, image2d, method="SegRISE", n_masks=8, batch_size=2)
    w.run().wait(30)
    panel = w.evaluation
    panel.steps_text.value = 400
    panel.evaluate()
    wait_until(lambda: panel.result is not None)
    calls = slow.calls
    panel.stop()
    result = panel.wait(10)
    assert not result.done and 0 < result.deletion.n_done < 401
    assert slow.calls <= calls + 2  # at most the call in progress and one more started
    assert "(in progress)" in panel.summary.value
    assert not panel.evaluate_button.disabled


def test_a_volume_explained_slice_by_slice_is_evaluated_on_the_shown_slice():
    vol = np.zeros((5, 24, 28), np.float32)
    vol[1:4, 6:16, 8:20] = 1.0
    net = ThresholdNet(2)
    w = ExplainWidget(net, vol, method="SegRISE", n_masks=16, spatial_dims=2)
    w.slices_dropdown.value = "current"
    w.show_slice(2)
    w.run().wait(30)
    panel = w.evaluation
    panel.steps_text.value = 6
    result = panel.evaluate().wait(30)
    snap = w.explanation
    want = faithfulness(
        snap.map[2], model=net, image=snap.image[:, 2], reference=snap.reference[2], steps=6
    )
    np.testing.assert_array_equal(result.deletion.runs["dice"], want.deletion.runs["dice"])
    w.show_slice(0)
    panel.evaluate()
    assert "slice 0 was not explained: show one of the explained slices (2)" in (
        panel.summary.value
    )


def test_evaluate_calls_the_model_as_the_run_did(image2d):
    from tests.cli.threshold_factory import DictThreshold

    w = ExplainWidget(DictThreshold(2), image2d, method="SegRISE", n_masks=24, batch_size=8)
    w.output_key_text.value = "seg"  # a dict of two entries: the key says which
    w.run().wait(30)
    assert w.explanation is not None and w.explanation.done
    w.evaluation.steps_text.value = 6
    w.evaluation.evaluate_button.click()
    result = w.evaluation.wait(30)
    assert result is not None and result.done and w.evaluation.error is None
    want = faithfulness(w.explanation, model=ThresholdNet(2), steps=6)
    np.testing.assert_array_equal(
        result.curves()["deletion"].runs["dice"], want.curves()["deletion"].runs["dice"]
    )
