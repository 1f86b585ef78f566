"""A model factory importable as ``tests.cli.threshold_factory:make`` (for ``--model``)."""

from tests.conftest import ThresholdNet


def make():
    return ThresholdNet(2)


def make3d():
    return ThresholdNet(3)


class DictThreshold(ThresholdNet):
    """ThresholdNet whose output is a dict with two entries (neither a default key)."""

    def forward(self, x):
        out = super().forward(x)
        return {"seg": out, "aux": out[:, :1] * 0.0}


def make_dict():
    return DictThreshold(2)


def make_rgb():
    return ThresholdNet(2, in_channels=3)
