"""The notebook's sliding-window fields reach the run, and its per-channel ranking table."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from maskscope import RISE, SegRISE, SlidingWindow
from maskscope.gui import channel_ranking, ranking_html
from maskscope.notebook import ExplainWidget
from tests.conftest import OneChannel, ThresholdNet
from tests.gui.patch_only import PatchOnly


def _image() -> np.ndarray:
    img = np.zeros((24, 26), np.float32)
    img[3:9, 3:10] = 1.0
    img[14:21, 15:23] = 1.0
    return img


def test_the_model_runs_on_patches_of_the_given_size():
    model = PatchOnly(ThresholdNet(2), (16, 16))
    w = ExplainWidget(model, _image(), n_masks=12, grid=4, batch_size=4, patch_size=16)
    w.set_params(patch_overlap=0.5, patch_blend="gaussian", patch_batch=3)
    assert w.patches.fields["patch_size"].widget.value == "16"
    expl = w.run().wait(timeout=60)
    assert w.error is None, w.error
    assert max(model.sizes) == 3
    window = SlidingWindow(model, 16, overlap=0.5, blend="gaussian", patch_batch=3)
    want = SegRISE(window).explain(_image(), n_masks=12, grid=4, batch_size=4)
    np.testing.assert_allclose(expl.map, want.map, rtol=1e-6, atol=1e-7)
    patch = {k: v for k, v in expl.params.items() if k.startswith("patch_")}
    assert patch == {k: v for k, v in want.params.items() if k.startswith("patch_")}
    assert patch["patch_blend"] == "gaussian" and patch["patch_overlap"] == 0.5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patch_size", "16, x", "patch size takes a number or numbers separated by commas"),
        ("patch_size", "-4", "patch size takes a positive int, or one per axis"),
        ("patch_overlap", 1.5, "patch overlap takes a number in [0, 1), got 1.5"),
        ("patch_batch", 0, "patches per call takes an int ≥ 1, got 0"),
    ],
)
def test_bad_values_are_shown_and_the_next_run_works(field, value, message):
    model = PatchOnly(ThresholdNet(2), (16, 16))
    w = ExplainWidget(model, _image(), n_masks=8, grid=4, patch_size=16)
    w.patches.fields[field].widget.value = value
    w.run().wait(timeout=30)
    assert message in str(w.error)
    assert message.replace("'", "&#x27;") in w.status.value
    assert model.sizes == [] and not w.run_button.disabled
    w.set_params(**{field: {"patch_size": 16, "patch_overlap": 0.25, "patch_batch": 4}[field]})
    w.run().wait(timeout=60)
    assert w.error is None and w.explanation.done


def test_a_per_channel_run_shows_the_channels_ranked_in_a_table():
    rng = np.random.default_rng(3)
    img = rng.random((4, 24, 24)).astype(np.float32) * 0.3
    img[:, 6:16, 5:15] += 0.6
    model = OneChannel()  # one model: the API run replays the widget's measured batches
    w = ExplainWidget(model, img, method="RISE", per_channel=True, n_masks=150, grid=4)
    assert w.channel_table.value == ""
    expl = w.run().wait(timeout=60)
    assert w.error is None, w.error
    want = RISE(model).explain(img, per_channel=True, n_masks=150, grid=4)
    order = np.argsort(-want.extras["channel_importance"], kind="stable").tolist()
    assert order[0] == 2
    assert w.channel_table.value == ranking_html(channel_ranking(expl))  # napari's table
    cells = re.findall(r"<td[^>]*>(.*?)</td>", w.channel_table.value)
    assert [int(c) for c in cells[1::3]] == order and cells[0::3] == ["1", "2", "3", "4"]
    assert w.channel_table in w.children


def test_the_evaluation_runs_the_model_as_the_run_did():
    model = PatchOnly(ThresholdNet(2), (16, 16))
    w = ExplainWidget(model, _image(), n_masks=8, grid=4, patch_size=16)
    w.run().wait(timeout=60)
    assert w.error is None, w.error
    calls = len(model.sizes)
    w.evaluation.steps_text.value = 4
    w.evaluation.random_text.value = 0
    result = w.evaluation.evaluate().wait(timeout=60)
    assert w.evaluation.error is None, w.evaluation.error  # the whole image would be refused
    assert result is not None and len(model.sizes) > calls
