"""maskscope: explain image segmentation models by perturbation, in 2D and 3D.

Quick start::

    from maskscope import SegRISE
    expl = SegRISE(model).explain(image, n_masks=1000)
    expl.to_png("segrise.png")

This module is the public face: the methods and their parameters, :class:`RunOptions`,
:class:`Explanation`, model loading, evaluation, and the readers and writers. The engine
(``maskscope._engine``) is internal and may change between releases.
"""

from . import evaluate, roi
from ._engine import CancelToken, RunOptions, describe_params
from ._engine.crop import receptive_field
from ._engine.failures import ModelError
from ._engine.padding import PaddingError, PadToMultiple
from ._engine.sliding import SlidingWindow
from .evaluate import (
    FaithfulnessResult,
    faithfulness,
    randomization_check,
    seed_agreement,
)
from .explanation import Explanation
from .intensity import normalize
from .io import read_image, write_map
from .methods import (
    HDM,
    METHODS,
    RISE,
    HDMParams,
    Method,
    PixelRISE,
    PixelRISEParams,
    RISEParams,
    SegRISE,
    SegRISEParams,
)
from .methods._channels import explain_channels
from .methods.hdm import circle_map
from .models import UntrustedModelError, bundled_models, load_model
from .prediction import check_prediction
from .roi import ROI, component_at, inner_border, outer_border

__version__ = "0.1.0"

__all__ = [
    "HDM",
    "METHODS",
    "RISE",
    "ROI",
    "CancelToken",
    "Explanation",
    "FaithfulnessResult",
    "HDMParams",
    "Method",
    "ModelError",
    "PadToMultiple",
    "PaddingError",
    "PixelRISE",
    "PixelRISEParams",
    "RISEParams",
    "RunOptions",
    "SegRISE",
    "SegRISEParams",
    "SlidingWindow",
    "UntrustedModelError",
    "__version__",
    "bundled_models",
    "check_prediction",
    "circle_map",
    "component_at",
    "describe_params",
    "evaluate",
    "explain_channels",
    "faithfulness",
    "inner_border",
    "load_model",
    "normalize",
    "outer_border",
    "randomization_check",
    "read_image",
    "receptive_field",
    "roi",
    "seed_agreement",
    "write_map",
]
