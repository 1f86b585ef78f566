"""The options of a run that are not a method's parameters (:class:`RunOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

from .host_memory import HOST_MEMORY_MODES
from .params import param, validate_params
from .pipeline import PIPELINE_MODES

__all__ = ["RunOptions"]


@dataclass
class RunOptions:
    """How a run is executed (shared by every method; not part of the method's maths)."""

    seed: int = param(0, help="Seed of the random masks: same seed, same map.", min=0)
    batch_size: int | None = param(
        None,
        help="Perturbed inputs per model call (same masks for any value; the map changes "
        "by float rounding at most). None = measured: the first chunks are timed at "
        "1, 2, 4, ... inputs and the fastest size is kept; later runs of the model in this "
        "process replay the measurement. A number fixes it (maps equal bit for bit across "
        "processes).",
        min=1,
    )
    max_batch_voxels: int | None = param(
        None,
        help="Input voxels per model call at most: large images go in smaller batches "
        "(None = automatic: 2**19 on a CPU, where the model's activations then stay in "
        "the caches, at least 2 inputs; on a CUDA device the free memory over 1024 bytes "
        "per voxel; 2**23 elsewhere, which bounds memory).",
        min=1,
        gui=False,
    )
    tol: float | None = param(
        None,
        help="Stop early once the map's predicted disagreement with another seed's map, "
        "1 − reliability, falls below this value (RISE family; None = never).",
        label="early-stop tolerance",
        min=0.0,
        min_exclusive=True,
        max=1.0,
        step=0.01,
    )
    min_masks: int = param(
        100, help="Masks evaluated before early stopping may stop the run.", min=2
    )
    yield_every: float = param(
        0.0,
        help="Seconds between streamed snapshots (0 = after every chunk); above 0, also at "
        "least 9 times what the last snapshot took to make, so that they take at most a "
        "tenth of the run.",
        min=0.0,
        gui=False,
    )
    host_memory: str = param(
        "keep",
        help="On a CPU under Linux (glibc): 'keep' keeps the memory the model frees between "
        "calls while the run lasts, instead of taking it back from the system, page by page, "
        "at every call; it is given back when the run ends. 'system' leaves malloc's "
        "settings alone.",
        choices=HOST_MEMORY_MODES,
        gui=False,
    )
    pipeline: str = param(
        "auto",
        help="Run the model on the next chunk in a second thread while the engine sums this "
        "one and makes the one after, and share PixelRISE max's final pass among the threads "
        "the free cores hold (the same chunks and parts: the same map). 'auto': on a CPU "
        "where torch's threads leave a core free; 'on': always; 'off': never.",
        choices=PIPELINE_MODES,
        gui=False,
    )

    def __post_init__(self) -> None:
        validate_params(self)
