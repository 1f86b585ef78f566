"""Jupyter frontend: :class:`ExplainWidget` streams the saliency map into a notebook.

The only part of maskscope that imports ``ipywidgets`` (install ``maskscope[notebook]``).

Examples
--------
>>> from maskscope.notebook import ExplainWidget  # doctest: +SKIP
>>> w = ExplainWidget(model, image, method="SegRISE", n_masks=500)  # doctest: +SKIP
>>> w  # doctest: +SKIP
"""

from ._runner import BackgroundRun
from ._widget import ExplainWidget

__all__ = ["BackgroundRun", "ExplainWidget"]
