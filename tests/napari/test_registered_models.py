"""Registered models are held by the widgets that list them, not by maskscope."""

from __future__ import annotations

import gc
import weakref

from maskscope.napari import register_model, registered_models, unregister_model

from .conftest import Threshold


def test_a_widget_keeps_the_registered_models_it_lists(make_napari_viewer, plugin):
    model = Threshold(2)
    gone = weakref.ref(model)
    register_model("held by the widget", model)
    try:
        viewer = make_napari_viewer()
        _, widget = viewer.window.add_plugin_dock_widget("maskscope", "Explain segmentation")
        del model
        gc.collect()
        assert gone() is not None  # the widget lists it, so it stays
        assert "held by the widget" in registered_models()
        widget.models.select("held by the widget")
        assert widget.models.load("cpu").model is gone()
        _, second = viewer.window.add_plugin_dock_widget(
            "maskscope", "Explain segmentation", tabify=True
        )
        items = [second.models.combo.itemText(i) for i in range(second.models.combo.count())]
        assert "held by the widget" in items
    finally:
        unregister_model("held by the widget")
    items = [widget.models.combo.itemText(i) for i in range(widget.models.combo.count())]
    assert "held by the widget" not in items  # unregistering refreshes every widget


def test_a_registered_model_nothing_holds_is_freed():
    model = Threshold(2)
    gone = weakref.ref(model)
    register_model("nobody holds it", model)
    assert "nobody holds it" in registered_models()
    del model
    gc.collect()
    assert gone() is None and "nobody holds it" not in registered_models()
