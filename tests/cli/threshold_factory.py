"""A model factory importable as ``tests.cli.threshold_factory:make`` (for ``--model``)."""

from tests.conftest import ThresholdNet


def make():
    return ThresholdNet(2)


def make3d():
    return ThresholdNet(3)
