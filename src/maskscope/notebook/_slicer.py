"""Slice navigation for volumes: an axis choice and a slider that remembers each axis."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np

__all__ = ["Slicer"]

#: The array's axes by number, as napari's dims sliders name them: letters would say
#: z / y / x for a nibabel (i, j, k) array, whose first axis is x.
_AXES = (("0", 0), ("1", 1), ("2", 2))


class Slicer:
    """Axis buttons and a slice slider (hidden for 2D images).

    Parameters
    ----------
    spatial
        The spatial shape, ``(H, W)`` or ``(D, H, W)``.
    on_change
        Called (from the thread that made the change) when the user picks another slice
        or axis.
    reference
        A label image of shape ``spatial``: the first slices shown go through its centre.

    Attributes
    ----------
    axis_buttons, slider
        The controls.
    touched
        Whether the user has moved the slider (then :meth:`follow` leaves it alone).
    """

    def __init__(
        self,
        spatial: tuple[int, ...],
        on_change: Callable[[], None],
        reference: Any = None,
    ) -> None:
        self.spatial = tuple(spatial)
        self.is3d = len(self.spatial) == 3
        self._on_change = on_change
        self._local = threading.local()
        self.touched = False
        self._index = {a: n // 2 for a, n in enumerate(self.spatial)}
        if reference is not None and np.shape(reference) == self.spatial:
            self._center_on(np.asarray(reference))
        hidden = {} if self.is3d else {"display": "none"}
        self.axis_buttons = widgets.ToggleButtons(
            options=list(_AXES),
            value=0,
            description="axis",
            tooltips=["slices across the array's axis 0", "axis 1", "axis 2"],
            style={"button_width": "40px"},
            layout=hidden,
        )
        self.slider = widgets.IntSlider(
            value=self._index[0],
            min=0,
            max=self.spatial[0] - 1,
            description="slice",
            continuous_update=True,
            layout={"width": "380px", **hidden},
        )
        self.axis_buttons.observe(self._axis_changed, names="value")
        self.slider.observe(self._slider_moved, names="value")

    @property
    def axis(self) -> int | None:
        """The axis across which slices are shown (None for a 2D image)."""
        return self.axis_buttons.value if self.is3d else None

    @property
    def index(self) -> int | None:
        """The shown slice along :attr:`axis` (None for a 2D image)."""
        return self._index[self.axis_buttons.value] if self.is3d else None

    def index_along(self, axis: int) -> int:
        """The remembered slice along ``axis``."""
        return self._index[axis]

    def show(self, index: int, axis: int = 0) -> None:
        """Show slice ``index`` along ``axis`` (a user choice: :meth:`follow` stops)."""
        if not self.is3d:
            raise ValueError("slices apply to volumes; this image is 2D")
        if axis not in (0, 1, 2) or not 0 <= index < self.spatial[axis]:
            raise ValueError(
                f"slice {index} along axis {axis} is outside the volume {self.spatial}"
            )
        self.touched = True
        self._index[axis] = int(index)
        with self._quietly():
            self.axis_buttons.value = axis
            self._sync_slider()
        self._on_change()

    def follow(self, reference: np.ndarray | None) -> bool:
        """Centre the slices on a segmentation unless the user chose a slice; True if moved."""
        if self.touched or not self.is3d or reference is None or not np.any(reference):
            return False
        self._center_on(reference)
        with self._quietly():
            self._sync_slider()
        return True

    # ------------------------------------------------------------------ internals
    def _center_on(self, labels: np.ndarray) -> None:
        fg = np.nonzero(labels)
        if fg[0].size:
            for axis in range(len(self.spatial)):
                self._index[axis] = int(np.round(fg[axis].mean()))

    def _sync_slider(self) -> None:
        axis = self.axis_buttons.value
        value, top = self._index[axis], self.spatial[axis] - 1
        if value > self.slider.max:  # keep value within [min, max] at every step
            self.slider.max = top
            self.slider.value = value
        else:
            self.slider.value = value
            self.slider.max = top

    def _axis_changed(self, change: dict) -> None:
        if self._is_quiet():
            return
        with self._quietly():
            self._sync_slider()
        self._on_change()

    def _slider_moved(self, change: dict) -> None:
        if self._is_quiet():
            return
        self.touched = True
        self._index[self.axis_buttons.value] = int(change["new"])
        self._on_change()

    def _is_quiet(self) -> bool:
        return getattr(self._local, "quiet", False)

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change the controls from code without calling back."""
        before = self._is_quiet()
        self._local.quiet = True
        try:
            yield
        finally:
            self._local.quiet = before
