"""The session layer's sliding-window fields and per-channel ranking, without any GUI."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from maskscope import SegRISE, SlidingWindow
from maskscope.gui import (
    LoadedModel,
    RunRequest,
    Session,
    SlidingSettings,
    channel_ranking,
    patch_form,
    ranking_html,
    ranking_text,
    read_patches,
    split_patch_values,
    windowed,
)
from tests.conftest import ThresholdNet

from .patch_only import PatchOnly


def _image() -> np.ndarray:
    img = np.zeros((24, 26), np.float32)
    img[3:9, 3:10] = 1.0
    img[14:21, 15:23] = 1.0
    return img


def test_the_fields_have_the_kinds_the_forms_show():
    kinds = {f.name: (f.kind, f.optional, f.spec.label) for f in patch_form()}
    assert kinds == {
        "patch_size": ("text", True, "patch size"),
        "patch_overlap": ("float", False, "patch overlap"),
        "patch_blend": ("choice", False, "patch blending"),
        "patch_batch": ("int", False, "patches per call"),
    }
    assert next(f for f in patch_form() if f.name == "patch_blend").spec.choices == (
        "constant",
        "gaussian",
    )
    size = next(f for f in patch_form() if f.name == "patch_size")
    assert size.read("") is None and size.read("16, 16, 8") == (16, 16, 8)


def test_read_patches_empty_is_off_and_values_pass_through():
    assert read_patches({}) is None
    assert read_patches({"patch_size": None, "patch_overlap": 0.5}) is None
    got = read_patches(
        {"patch_size": (16, 8), "patch_overlap": 0.5, "patch_blend": "gaussian", "patch_batch": 3}
    )
    assert got == SlidingSettings((16, 8), 0.5, "gaussian", 3)
    assert read_patches({"patch_size": 32}) == SlidingSettings(32, 0.25, "constant", 4)
    split = split_patch_values({"patch_size": 8, "n_masks": 5})
    assert split == ({"patch_size": 8}, {"n_masks": 5})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"patch_size": 0}, "patch size takes a positive int, or one per axis separated by "
         "commas (64, or 64, 64, 32), got 0"),
        ({"patch_size": (16, -2)}, "patch size takes a positive int, or one per axis separated "
         "by commas (64, or 64, 64, 32), got 16, -2"),
        ({"patch_size": 16.5}, "got 16.5"),
        ({"patch_size": True}, "got True"),
        ({"patch_size": "big"}, "got 'big'"),
        ({"patch_size": 16, "patch_overlap": 1.0},
         "patch overlap takes a number in [0, 1), got 1.0"),
        ({"patch_overlap": -0.1}, "patch overlap takes a number in [0, 1), got -0.1"),
        ({"patch_overlap": float("nan")}, "patch overlap takes a number in [0, 1), got nan"),
        ({"patch_blend": "max"}, "patch blending must be one of constant / gaussian, got 'max'"),
        ({"patch_batch": 0}, "patches per call takes an int ≥ 1, got 0"),
        ({"patch_batch": 2.5}, "patches per call takes an int ≥ 1, got 2.5"),
    ],
)  # fmt: skip
def test_bad_values_name_the_field_and_what_was_given(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        read_patches(values)


def test_a_session_run_records_the_window_as_the_api_run_does():
    model = PatchOnly(ThresholdNet(2), (16, 16))
    settings = read_patches({"patch_size": 16, "patch_overlap": 0.5, "patch_batch": 3})
    loaded = windowed(LoadedModel(model), settings)
    assert isinstance(loaded.model, SlidingWindow) and loaded.model.model is model
    values = {"n_masks": 12, "grid": 4, "batch_size": 4}
    *_, last = Session("SegRISE").start(RunRequest(_image()), values, model=loaded)
    assert set(model.sizes) <= {1, 2, 3} and max(model.sizes) == 3
    window = SlidingWindow(model, 16, overlap=0.5, patch_batch=3)
    want = SegRISE(window).explain(_image(), **values)
    np.testing.assert_allclose(last.map, want.map, rtol=1e-6, atol=1e-7)
    patch = {k: v for k, v in last.params.items() if k.startswith("patch_")}
    assert patch == {"patch_size": 16, "patch_overlap": 0.5, "patch_blend": "constant",
                     "patch_batch": 3}  # fmt: skip
    assert patch == {k: v for k, v in want.params.items() if k.startswith("patch_")}
    assert windowed(LoadedModel(model), None).model is model


def test_a_patch_size_per_axis_must_match_the_model_before_any_work():
    model = PatchOnly(ThresholdNet(2), (16, 16))
    loaded = windowed(LoadedModel(model), SlidingSettings((16, 16, 16)))
    with pytest.raises(ValueError, match=re.escape(
        "patch size has 3 values (16, 16, 16), but the model runs on 2 spatial axes: give one "
        "value, or 2"
    )):  # fmt: skip
        Session("SegRISE").start(RunRequest(_image()), {"n_masks": 4}, model=loaded)
    assert model.sizes == []


def test_the_ranking_orders_channels_by_importance():
    snap = SimpleNamespace(extras={"channel_importance": np.array([0.01, -0.02, 0.3, 0.01])})
    rows = channel_ranking(snap)
    assert [(r.rank, r.channel) for r in rows] == [(1, 2), (2, 0), (3, 3), (4, 1)]
    assert rows[0].importance == pytest.approx(0.3)
    assert ranking_text(rows) == "channels by importance: 2 (+0.3), 0 (+0.01), 3 (+0.01), 1 (-0.02)"
    table = ranking_html(rows, names=["T1", "T1ce", "<T2>"])
    cells = re.findall(r"<td[^>]*>(.*?)</td>", table)
    assert cells == ["1", "2 (&lt;T2&gt;)", "+0.3", "2", "0 (T1)", "+0.01", "3", "3", "+0.01",
                     "4", "1 (T1ce)", "-0.02"]  # fmt: skip
    assert channel_ranking(SimpleNamespace(extras={})) == [] and channel_ranking(None) == []
    assert ranking_html([]) == "" and ranking_text([]) == ""
