"""The float32 precision of CUDA convolutions and matrix products, for a block of code.

On Ampere and later GPUs PyTorch may run float32 convolutions and matrix products on
TensorFloat-32 tensor cores, which round their inputs to 10 bits of mantissa. It does so
by default for cuDNN convolutions, and for matrix products when a user asks for it
(``torch.set_float32_matmul_precision("high")``, common in training code). A map computed
that way is not the CPU's map of the same seed (the bundled 3D U-Net's HDM map correlated
0.88 with it on an H200), and the engine's own float32 products (mask rendering, sums)
would lose precision too. :func:`fp32_precision` sets both for the block and puts back
exactly what was there: through PyTorch's ``fp32_precision`` settings where they exist
(2.9 and later: they can be read and restored whatever API the user set them with), else
through the ``allow_tf32`` flags. The settings are process-wide.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["fp32_precision"]


def _settings() -> list[tuple[object, str, dict[str, object]]]:
    """(object, attribute, {precision name: value}) of the convolutions' and the matrix
    products' setting, in the API this PyTorch has."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision"):
        names = {"ieee": "ieee", "tf32": "tf32"}
        return [(conv, "fp32_precision", names), (matmul, "fp32_precision", names)]
    flags = {"ieee": False, "tf32": True}
    return [(torch.backends.cudnn, "allow_tf32", flags), (matmul, "allow_tf32", flags)]


@contextmanager
def fp32_precision(conv: str | None = None, matmul: str | None = None) -> Iterator[None]:
    """Convolutions and / or matrix products in ``"ieee"`` float32 or ``"tf32"`` for the
    block (None: left as it is); the settings are put back after it."""
    changed = []
    try:
        for (obj, attr, values), want in zip(_settings(), (conv, matmul), strict=True):
            if want is None:
                continue
            before = getattr(obj, attr)
            if before != values[want]:
                setattr(obj, attr, values[want])
                changed.append((obj, attr, before))
        yield
    finally:
        for obj, attr, before in reversed(changed):
            setattr(obj, attr, before)
