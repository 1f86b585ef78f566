"""Model factories for the CLI probes (``tests.fuzz.counting_factory:make``)."""

from __future__ import annotations

from tests.conftest import ThresholdNet

#: Forward calls of every model made here (a probe checks that none happened).
CALLS: list[int] = []


class Counting(ThresholdNet):
    def forward(self, x):
        CALLS.append(x.shape[0])
        return super().forward(x)


def make():
    return Counting(2)
