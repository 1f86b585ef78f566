"""Synthetic sample data: a 2D shapes set and a 3D phantom scan, deterministic from a seed."""

from maskscope.data.phantom import PHANTOM_SPACING, PhantomSample, phantom3d, phantom3d_batch
from maskscope.data.shapes import RIGHT_SHAPES, ShapesSample, shapes2d, shapes2d_batch

__all__ = [
    "PHANTOM_SPACING",
    "RIGHT_SHAPES",
    "PhantomSample",
    "ShapesSample",
    "phantom3d",
    "phantom3d_batch",
    "shapes2d",
    "shapes2d_batch",
]
