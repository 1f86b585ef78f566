"""Show finished explanations (e.g. ``maskscope demo --napari``) in a viewer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._layers import Frame, OutputLayers
from ._widget import ExplainWidget

__all__ = ["show_demo_results"]


def show_demo_results(results: Sequence[Any], *, viewer: Any = None, block: bool = True) -> Any:
    """Open the explained samples and their saliency maps as layers, with the widget docked.

    Parameters
    ----------
    results
        Objects with ``label`` (method label), ``sample`` (sample name) and ``explanation``
        (an :class:`~maskscope.explanation.Explanation` that stores its image), such as
        :class:`maskscope.demo.DemoResult`.
    viewer
        A viewer to use; a new one by default.
    block
        Run napari's event loop until the window is closed (for scripts).

    Returns
    -------
    napari.Viewer
        The viewer.
    """
    import napari

    if viewer is None:
        viewer = napari.Viewer(title="maskscope demo")
    offsets: dict[str, float] = {}  # samples side by side along the last axis
    right = 0.0
    shown = []
    for r in results:
        expl = r.explanation
        scale = tuple(expl.voxel_spacing) or (1.0,) * expl.map.ndim
        if r.sample not in offsets:
            offsets[r.sample] = right
            right += expl.map.shape[-1] * scale[-1] * 1.1
        translate = (0.0,) * (len(scale) - 1) + (offsets[r.sample],)
        frame = Frame(scale=scale, translate=translate)
        first = r is next(q for q in results if q.sample == r.sample)
        if first and expl.image is not None:
            viewer.add_image(
                np.asarray(expl.image[0]), name=r.sample, scale=scale, translate=translate
            )
            if expl.reference is not None:
                viewer.add_labels(
                    np.asarray(expl.reference, dtype=np.int32),
                    name=f"{r.sample} reference",
                    scale=scale,
                    translate=translate,
                    opacity=0.3,
                )
        output = OutputLayers(viewer, source=r.sample, method=r.label, frame=frame)
        output.show(expl.with_status(done=True))
        output.finish(partial=False, prediction=False)
        shown.append((output.layers["map"], first))
    for layer, first in shown:  # one map per sample on screen at first
        layer.visible = first
    viewer.window.add_dock_widget(ExplainWidget(viewer), name="Explain segmentation", area="right")
    if block:
        napari.run()
    return viewer
