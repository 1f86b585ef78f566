"""The GUI-independent helpers behind the widgets' forms, inputs and messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope.explanation import Explanation
from maskscope.gui import (
    error_line,
    form,
    input_array,
    parse_text,
    progress_text,
    scope_slices,
)
from maskscope.methods import METHODS


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_has_a_form_whose_defaults_are_accepted(method):
    from maskscope.gui import split_values

    fields = form(method)
    options = [f.name for f in fields if f.group == "options"]
    if METHODS[method].stochastic:
        assert options == ["seed", "batch_size", "tol", "min_masks"]
    else:  # a deterministic sweep has no seed and no standard error to stop on
        assert options == ["batch_size"]
    assert all(
        f.kind in ("bool", "int", "float", "choice", "choice-or-number", "text") for f in fields
    )
    values = {f.name: f.check(f.spec.default) for f in fields}
    split_values(method, values)  # raises if a default does not round-trip


def test_field_kinds_follow_the_annotations():
    kinds = {f.name: (f.kind, f.optional) for f in form("PixelRISE")}
    assert kinds["n_masks"] == ("int", False)
    assert kinds["grid"] == ("text", False)  # int or a tuple per axis
    assert kinds["p_keep"] == ("float", False)
    assert kinds["baseline"] == ("choice-or-number", False)  # 'min', 'mean' or a number
    assert kinds["merge"] == ("choice", False)
    assert kinds["max_pixels"] == ("int", True)
    assert kinds["tol"] == ("float", True)


def test_text_entries_parse_and_reject_words_where_numbers_go():
    assert parse_text("8") == 8
    assert parse_text(" 4, 8,8 ") == (4, 8, 8)
    assert parse_text("[2, 3]") == (2, 3)
    assert parse_text("0.5") == 0.5
    assert parse_text("mean") == "mean"
    assert parse_text("none", optional=True) is None
    assert parse_text("") is None
    grid = next(f for f in form("RISE") if f.name == "grid")
    assert grid.check((4, 8)) == (4, 8)
    with pytest.raises(ValueError, match="grid takes a number or numbers separated by commas"):
        grid.check(parse_text("8, x"))


def test_input_array_moves_the_channel_axis_first():
    data = np.arange(2 * 5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7, 2)
    arr = input_array(data, channel_axis=-1)
    assert arr.image.shape == (2, 5, 6, 7) and arr.image.dtype == np.float32
    assert arr.spatial_axes == (0, 1, 2) and arr.channel_axis == 3
    np.testing.assert_array_equal(arr.image[1], data[..., 1])
    assert input_array(np.zeros((6, 7))).image.shape == (1, 6, 7)
    with pytest.raises(ValueError, match="2 or 3 spatial axes"):
        input_array(np.zeros((2, 3, 4, 5)))


def test_scope_slices():
    assert scope_slices("current slice", current=70, start=0, stop=0, depth=64) == 63
    assert scope_slices("all slices", current=3, start=0, stop=0, depth=64) == "all"
    assert scope_slices("range", current=3, start=9, stop=6, depth=64) == [6, 7, 8, 9]
    with pytest.raises(ValueError, match="outside the volume"):
        scope_slices("range", current=0, start=70, stop=80, depth=64)


def test_progress_and_error_lines():
    snap = Explanation(method="RISE", map=np.zeros((2, 2)), n_done=25, n_total=100, elapsed=5.0)
    assert progress_text(snap) == "25/100 · 5.0 s · about 15.0 s left"
    assert progress_text(snap, cancelled=True).startswith("cancelled at 25/100")
    done = snap.with_status(n_done=100, elapsed=130.0, done=True)
    assert progress_text(done) == (
        "done: 100/100 in 2 min 10 s · no reliability: the map is flat, no mask changed the "
        "model's score (check that the image is not blank and that outputs, logits or "
        "probabilities, is what the model returns)"
    )
    shaped = done.with_status(map=np.eye(2), reliability=0.91)
    assert progress_text(shaped).endswith(
        "in 2 min 10 s · reliability 0.91 (mostly stable: "
        "the main regions are reliable, fine detail may change)"
    )
    seen = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # an adaptive sweep's centres
    hdm = Explanation(
        method="HDM", map=np.eye(2), n_done=4, n_total=4, elapsed=1.0, done=True,
        extras={"grid_evaluated": seen},
    )  # fmt: skip
    assert progress_text(hdm).startswith("done: 4/4 in 1.0 s · the model saw 4 of 6 centres")
    assert progress_text(hdm.with_status(done=False)) == "4/4 · 1.0 s"
    all_seen = hdm.with_status(extras={"grid_evaluated": np.ones((2, 3))})
    assert progress_text(all_seen) == "done: 4/4 in 1.0 s"
    flat = all_seen.with_status(map=np.zeros((2, 2)))
    assert progress_text(flat).startswith("done: 4/4 in 1.0 s · exact, and flat: no occluder")
    assert '"distance" = dice' in progress_text(flat)  # the field, not the API's spelling
    assert error_line(ValueError("bad shape\nmore detail")) == "bad shape"
    assert error_line(RuntimeError("boom")) == "RuntimeError: boom"
    oom = error_line(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert oom.startswith("out of memory (CUDA out of memory.") and "batch size" in oom
