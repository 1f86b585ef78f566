"""The npe2 manifest: valid, importable, and the contributions work in a viewer."""

from __future__ import annotations

import importlib

import numpy as np
from npe2 import PluginManifest

from maskscope.methods import METHODS
from maskscope.napari import ExplainWidget

from .conftest import PACKAGE_MANIFEST, ROOT


def test_manifest_is_valid_and_every_python_name_imports():
    manifest = PluginManifest.from_file(PACKAGE_MANIFEST)
    manifest.validate_imports()
    commands = manifest.contributions.commands
    assert len(commands) == 5
    for command in commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name
    ids = {c.id for c in commands}
    contributions = manifest.contributions
    groups = (contributions.widgets, contributions.sample_data, contributions.readers)
    for group in (*groups, contributions.writers):
        assert group and all(item.command in ids for item in group)


def test_the_manifest_is_a_plain_file_inside_the_package():
    # as the napari plugin template has it: no top-level copy, no symlink, no force-include
    source = ROOT / "src" / "maskscope" / "napari.yaml"
    assert source.is_file() and not source.is_symlink()
    assert PACKAGE_MANIFEST.read_text() == source.read_text()
    assert not (ROOT / "napari.yaml").exists()
    assert "force-include" not in (ROOT / "pyproject.toml").read_text()


def test_widget_docks_from_the_manifest(make_napari_viewer, plugin):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("maskscope", "Explain segmentation")
    assert isinstance(widget, ExplainWidget)
    assert dock.isAncestorOf(widget)
    methods = [widget.method.itemText(i) for i in range(widget.method.count())]
    assert methods == list(METHODS)
    # the form follows the method, and keeps the values both methods share
    widget.set_method("RISE")
    widget.set_values(n_masks=123, seed=7)
    widget.set_method("PixelRISE")
    values = widget.form.values()
    assert values["n_masks"] == 123 and values["seed"] == 7
    assert "merge" in values and values["tol"] is None


def test_sample_data_opens(make_napari_viewer, plugin):
    viewer = make_napari_viewer()
    viewer.open_sample("maskscope", "shapes2d")
    viewer.open_sample("maskscope", "phantom3d")
    names = [layer.name for layer in viewer.layers]
    assert names == ["shapes", "shapes label", "phantom", "phantom lesion"]
    shapes, label, phantom, lesion = viewer.layers
    assert shapes.data.shape == label.data.shape == (240, 240)
    assert phantom.data.shape == lesion.data.shape == (64, 96, 96)
    np.testing.assert_allclose(phantom.scale, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(lesion.scale, (2.0, 1.0, 1.0))
    assert label.data.any() and lesion.data.any()
    assert type(label).__name__ == type(lesion).__name__ == "Labels"
