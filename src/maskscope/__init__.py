"""maskscope: explain image segmentation models by perturbation, in 2D and 3D.

Quick start::

    from maskscope import SegRISE
    expl = SegRISE(model).explain(image, n_masks=1000)
    expl.to_png("segrise.png")
"""

from . import evaluate, roi
from ._engine import CancelToken, RunOptions, describe_params
from ._engine.crop import receptive_field
from ._engine.sliding import SlidingWindow
from .evaluate import (
    FaithfulnessResult,
    faithfulness,
    randomization_check,
    seed_agreement,
)
from .explanation import Explanation
from .intensity import normalize
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
    "PixelRISE",
    "PixelRISEParams",
    "RISEParams",
    "RunOptions",
    "SegRISE",
    "SegRISEParams",
    "SlidingWindow",
    "__version__",
    "check_prediction",
    "component_at",
    "describe_params",
    "evaluate",
    "faithfulness",
    "inner_border",
    "normalize",
    "outer_border",
    "randomization_check",
    "receptive_field",
    "roi",
    "seed_agreement",
]
