"""The perturbation methods and their parameter dataclasses."""

from .base import Method
from .hdm import HDM, HDMParams
from .pixel_rise import PixelRISE, PixelRISEParams
from .rise import RISE, RISEParams
from .segrise import SegRISE, SegRISEParams

#: Methods by name, in the order the GUIs list them.
METHODS: dict[str, type[Method]] = {
    "RISE": RISE,
    "PixelRISE": PixelRISE,
    "SegRISE": SegRISE,
    "HDM": HDM,
}

__all__ = [
    "HDM",
    "METHODS",
    "RISE",
    "HDMParams",
    "Method",
    "PixelRISE",
    "PixelRISEParams",
    "RISEParams",
    "SegRISE",
    "SegRISEParams",
]
