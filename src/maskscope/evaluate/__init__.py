"""Is a map faithful? Deletion / insertion curves, a random baseline and sanity checks.

- :func:`faithfulness` (streamed: :func:`iter_faithfulness`): deletion and insertion
  curves of a map and of random voxel orders, scored by Dice and by the mean target
  probability, with their AUCs (:class:`FaithfulnessResult`).
- :func:`deletion` / :func:`insertion` (streamed: :func:`iter_deletion`,
  :func:`iter_insertion`): one curve.
- :func:`randomization_check`: cascading model-parameter randomisation.
- :func:`seed_agreement`: correlation of two maps (e.g. two seeds).
"""

from .agreement import Agreement, rank_correlation, seed_agreement
from .curves import (
    deletion,
    faithfulness,
    insertion,
    iter_deletion,
    iter_faithfulness,
    iter_insertion,
    random_orders,
    saliency_order,
    step_counts,
)
from .result import Curve, FaithfulnessResult, trapezoid_auc
from .sanity import RandomizationResult, parametrised_layers, randomization_check
from .substrates import SUBSTRATES, get_substrate

__all__ = [
    "SUBSTRATES",
    "Agreement",
    "Curve",
    "FaithfulnessResult",
    "RandomizationResult",
    "deletion",
    "faithfulness",
    "get_substrate",
    "insertion",
    "iter_deletion",
    "iter_faithfulness",
    "iter_insertion",
    "parametrised_layers",
    "random_orders",
    "randomization_check",
    "rank_correlation",
    "saliency_order",
    "seed_agreement",
    "step_counts",
    "trapezoid_auc",
]
