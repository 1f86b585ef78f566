"""The engine: masks, perturbations, scores, accumulators and the streaming loop.

Only torch and numpy are used here: no GUI package is ever imported by the engine.
"""

from .loop import RunOptions
from .masks import RiseMasks
from .params import ParamSpec, describe_params

__all__ = ["ParamSpec", "RiseMasks", "RunOptions", "describe_params"]
