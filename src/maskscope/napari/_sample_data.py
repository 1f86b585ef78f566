"""Sample data for napari's File > Open Sample menu."""

from __future__ import annotations

from typing import Any

from ..data import phantom3d, shapes2d

__all__ = ["phantom_sample", "shapes_sample"]

LayerData = tuple[Any, dict[str, Any], str]


def shapes_sample() -> list[LayerData]:
    """The 2D shapes image (cross, triangle, circle or square) and its label."""
    sample = shapes2d(0)
    scale = tuple(sample.voxel_spacing)
    return [
        (sample.image[0], {"name": "shapes", "scale": scale, "colormap": "gray"}, "image"),
        (sample.label, {"name": "shapes label", "scale": scale, "opacity": 0.4}, "labels"),
    ]


def phantom_sample() -> list[LayerData]:
    """The 3D phantom scan and its lesion label, with the voxel spacing as scale."""
    sample = phantom3d(0)
    scale = tuple(sample.voxel_spacing)
    meta = {"voxel_spacing": list(scale), "units": "mm"}
    return [
        (
            sample.image[0],
            {"name": "phantom", "scale": scale, "colormap": "gray", "metadata": meta},
            "image",
        ),
        (sample.label, {"name": "phantom lesion", "scale": scale, "opacity": 0.4}, "labels"),
    ]
