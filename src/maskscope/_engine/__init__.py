"""The engine: masks, perturbations, scores, accumulators and the streaming loop.

Only torch and numpy are used here: no GUI package is ever imported by the engine.
"""

from .cancel import CancelToken
from .loop import RunOptions
from .masks import RiseMasks
from .params import ParamSpec, describe_params

__all__ = ["CancelToken", "ParamSpec", "RiseMasks", "RunOptions", "describe_params"]
