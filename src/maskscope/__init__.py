"""maskscope: explain image segmentation models by perturbation, in 2D and 3D.

Quick start::

    from maskscope import SegRISE
    expl = SegRISE(model).explain(image, n_masks=1000)
    expl.to_png("segrise.png")

This module is the public face: the methods and their parameters, :class:`RunOptions`,
:class:`Explanation`, model loading, evaluation, and the readers and writers. The engine
(``maskscope._engine``) is internal and may change between releases.
"""

from . import evaluate
from ._engine import CancelToken, RunOptions, describe_params
from ._engine.failures import ModelError
from ._engine.padding import PaddingError, PadToMultiple
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
from .methods.hdm import circle_map
from .models import UntrustedModelError, bundled_models, load_model
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
    "ModelError",
    "PadToMultiple",
    "PaddingError",
    "PixelRISE",
    "PixelRISEParams",
    "RISEParams",
    "RunOptions",
    "SegRISE",
    "SegRISEParams",
    "UntrustedModelError",
    "__version__",
    "bundled_models",
    "check_prediction",
    "circle_map",
    "describe_params",
    "evaluate",
    "faithfulness",
    "load_model",
    "normalize",
    "randomization_check",
    "read_image",
    "seed_agreement",
    "write_map",
]
