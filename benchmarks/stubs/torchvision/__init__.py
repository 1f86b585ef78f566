"""A stand-in for torchvision, used only by the benchmarks' peer runs.

PyPI's torchvision does not import beside a CPU-only torch 2.13. interpret-segmentation's
``hdm`` and muppet-xai import a few transforms at module level; this package provides just
those (written here from their documented behaviour). It is put on ``sys.path`` only in
the processes that run those peers; maskscope never sees it.
"""

__version__ = "0.0-benchmark-stub"
