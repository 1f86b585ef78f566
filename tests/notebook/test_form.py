"""The parameter form is built from the same dataclasses as the napari widget."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from maskscope.gui import form_fields
from maskscope.methods import METHODS
from maskscope.notebook._form import ParamForm


@pytest.mark.parametrize("method", list(METHODS))
def test_every_gui_field_gets_an_entry_with_its_default(method):
    params, options = form_fields(method)
    form = ParamForm(method)
    assert list(form.fields) == [s.name for s in (*params, *options)]
    assert form.values() == {s.name: s.default for s in (*params, *options)}
    for spec in params:
        widget = form.fields[spec.name].widget
        assert widget.description == spec.label and spec.help in widget.tooltip


def test_text_fields_read_numbers_tuples_none_and_choices():
    form = ParamForm("PixelRISE")
    form.fields["grid"].widget.value = "6, 4"
    form.fields["baseline"].widget.value = "mean"
    form.fields["max_pixels"].widget.value = ""
    form.fields["tol"].widget.value = "0.02"
    values = form.values()
    assert values["grid"] == (6, 4) and values["baseline"] == "mean"
    assert values["max_pixels"] is None and values["tol"] == 0.02
    form.fields["baseline"].widget.value = "-1.5"
    assert form.values()["baseline"] == -1.5
    form.fields["grid"].widget.value = "fine"
    with pytest.raises(ValueError, match="grid takes a number or numbers separated by commas"):
        form.values()


def test_changed_values_and_set():
    form = ParamForm("SegRISE", {"n_masks": 50})
    assert form.changed() == {"n_masks": 50}
    form.set(score="iou", grid=(4, 4))
    assert form.changed() == {"n_masks": 50, "score": "iou", "grid": (4, 4)}
    with pytest.raises(TypeError, match="unknown parameter"):
        form.set(masks=3)
    with pytest.raises(TypeError, match="score"):
        form.set(score="jaccard")
