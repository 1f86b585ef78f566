"""napari plugin: a dock widget that streams saliency maps over 2D images and 3D volumes.

This is the only part of maskscope that imports napari or Qt (``pip install
"maskscope[napari]"``). From a script::

    import napari
    from maskscope.napari import explain_in_viewer

    viewer = napari.Viewer()
    viewer.add_image(volume, scale=(2.0, 1.0, 1.0))
    explain_in_viewer(viewer, model, method="SegRISE", n_masks=500)
    napari.run()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._demo import show_demo_results
from ._model_picker import REGISTERED, ModelEntry
from ._widget import ExplainWidget

__all__ = [
    "ExplainWidget",
    "explain_in_viewer",
    "register_model",
    "registered_models",
    "show_demo_results",
    "unregister_model",
]

#: Title of the dock widget.
WIDGET_TITLE = "Explain segmentation"


def register_model(
    name: str,
    model: Callable,
    *,
    outputs: str = "logits",
    spatial_dims: int | None = None,
) -> None:
    """Offer a model in every maskscope widget's model list, under ``name``.

    maskscope holds the model only by weak reference: it stays listed while your code
    keeps a reference to it (a variable) or a widget that lists it is open, and is freed
    when both are gone. Each widget keeps its own reference to the models it lists, until
    it closes. (A callable that takes no weak reference, such as a builtin, is held.)

    Parameters
    ----------
    name
        The name shown in the list (registering a name again replaces its model).
    model
        Any callable taking ``(B, C, *spatial)``; call ``model.eval()`` first.
    outputs
        ``"logits"`` or ``"probabilities"``.
    spatial_dims
        2 or 3; by default read from the model's first convolution.
    """
    REGISTERED.add(ModelEntry(name, model, outputs, spatial_dims))


def unregister_model(name: str) -> None:
    """Remove a model registered with :func:`register_model`."""
    REGISTERED.remove(name)


def registered_models() -> list[str]:
    """Names of the models registered with :func:`register_model`."""
    return REGISTERED.names()


def explain_in_viewer(
    viewer: Any,
    model: Callable,
    *,
    name: str | None = None,
    outputs: str = "logits",
    spatial_dims: int | None = None,
    image: Any = None,
    method: str | None = None,
    area: str = "right",
    output_key: str | int | None = None,
    pad_multiple: int | tuple[int, ...] | None = None,
    **values: Any,
) -> ExplainWidget:
    """Dock a maskscope widget in ``viewer`` with ``model`` selected.

    The model is offered in this widget only (see :func:`register_model` for all widgets).

    Parameters
    ----------
    viewer
        A ``napari.Viewer``.
    model
        Any callable taking ``(B, C, *spatial)``.
    name
        Name shown in the model list (default: the model's class name).
    outputs, spatial_dims
        See :func:`register_model`.
    image, method, area
        The image layer (or its name) and the method to select; where to dock.
    output_key, pad_multiple
        Fill the "output key" and "pad multiple" fields (see the methods' parameters of
        the same names).
    **values
        Form values to preset, e.g. ``n_masks=500, seed=1``.

    Returns
    -------
    ExplainWidget
        The docked widget; press Run, or call ``widget.run()``.
    """
    widget = ExplainWidget(viewer)
    widget.add_model(
        name or type(model).__name__,
        model,
        outputs=outputs,
        spatial_dims=spatial_dims,
        output_key=output_key,
        pad_multiple=pad_multiple,
    )
    if method is not None:
        widget.set_method(method)
    if values:
        widget.set_values(**values)
    if image is not None:
        widget.inputs.set_image(viewer.layers[image] if isinstance(image, str) else image)
    viewer.window.add_dock_widget(widget, name=WIDGET_TITLE, area=area)
    return widget
