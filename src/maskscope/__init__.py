"""maskscope: explain image segmentation models by perturbation, in 2D and 3D.

Quick start::

    from maskscope import SegRISE
    expl = SegRISE(model).explain(image, n_masks=1000)
    expl.to_png("segrise.png")
"""

from . import evaluate
from ._engine import CancelToken, RunOptions, describe_params
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

__version__ = "0.1.0"

__all__ = [
    "HDM",
    "METHODS",
    "RISE",
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
    "__version__",
    "check_prediction",
    "describe_params",
    "evaluate",
    "faithfulness",
    "normalize",
    "randomization_check",
    "seed_agreement",
]
