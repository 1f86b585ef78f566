"""fp32_precision: sets CUDA convolutions' and matrix products' float32 precision for a
block, and puts back exactly what the process had, whichever PyTorch API set it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# each case runs in a fresh interpreter: the settings are process-wide, and some of
# PyTorch's API mixes cannot be undone in one process
SCRIPT = """
import torch
from maskscope._engine.fp32 import fp32_precision

{setup}

def state():
    out = {{}}
    for name, get in [
        ("matmul", lambda: torch.backends.cuda.matmul.fp32_precision),
        ("conv", lambda: torch.backends.cudnn.conv.fp32_precision),
        ("legacy matmul", lambda: torch.backends.cuda.matmul.allow_tf32),
        ("legacy cudnn", lambda: torch.backends.cudnn.allow_tf32),
        ("matmul precision", torch.get_float32_matmul_precision),
    ]:
        try:
            out[name] = repr(get())
        except RuntimeError:
            out[name] = "refused"
    return out

before = state()
with fp32_precision(conv="{conv}", matmul="ieee"):
    inside = state()
    x = torch.ones(3, 3)
    assert torch.equal(x @ x, torch.full((3, 3), 3.0))  # the block runs
assert inside["matmul"] == "'ieee'" and inside["conv"] == "'{conv}'", inside
assert state() == before, (before, state())
try:
    with fp32_precision(conv="ieee"):
        raise KeyError("inside")
except KeyError:
    pass
assert state() == before, (before, state())
print("ok")
"""


@pytest.mark.parametrize(
    "setup",
    [
        "pass",  # PyTorch's defaults: cuDNN on TensorFloat-32, matrix products not
        "torch.set_float32_matmul_precision('high')",  # common in training code
        "torch.set_float32_matmul_precision('medium')",
        "torch.backends.cuda.matmul.allow_tf32 = True",  # the legacy flags
        "torch.backends.fp32_precision = 'tf32'",  # the newer API
    ],
)
@pytest.mark.parametrize("conv", ["ieee", "tf32"])
def test_the_block_sets_what_it_is_asked_and_puts_everything_back(setup, conv):
    code = textwrap.dedent(SCRIPT.format(setup=setup, conv=conv))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
