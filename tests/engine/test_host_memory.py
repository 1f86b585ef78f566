"""Keeping freed memory during CPU runs: the counter, the run loop's use of it, real glibc."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from maskscope import RISE, CancelToken, ModelError
from maskscope._engine import host_memory, loop
from maskscope._engine.host_memory import HostMemory, glibc


class FakeLibc:
    """Records the mallopt / malloc_trim calls a HostMemory makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


KEEP = [
    ("mallopt", host_memory.M_MMAP_THRESHOLD, 32 * 2**20),
    ("mallopt", host_memory.M_TRIM_THRESHOLD, 2**31 - 1),
]
GIVE_BACK = [("mallopt", host_memory.M_TRIM_THRESHOLD, 64 * 2**20), ("malloc_trim", 0)]


def test_the_first_hold_keeps_memory_and_the_last_release_gives_it_back():
    libc = FakeLibc()
    memory = HostMemory(libc)
    assert memory.available
    assert memory.hold() is True
    assert libc.calls == KEEP
    assert memory.hold() is True  # a second run: nothing more to set
    memory.release()
    assert libc.calls == KEEP and memory.holders == 1
    memory.release()
    assert libc.calls == KEEP + GIVE_BACK and memory.holders == 0
    with pytest.raises(RuntimeError, match="without a matching hold"):
        memory.release()


def test_without_glibc_holding_does_nothing():
    memory = HostMemory(None)
    assert not memory.available
    assert memory.hold() is False
    memory.release()
    assert memory.holders == 0


class TinySeg(torch.nn.Module):
    """Two-class logits from a 3×3 convolution (any image size)."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.calls = 0
        self.fail_after = fail_after
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ValueError("the model failed")
        return self.conv(x)


@pytest.fixture
def counter(monkeypatch):
    libc = FakeLibc()
    memory = HostMemory(libc)
    monkeypatch.setattr(loop, "HOST_MEMORY", memory)
    return memory, libc


IMAGE = np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24)
RUN = {"n_masks": 64, "grid": 4, "batch_size": 8}


def test_a_cpu_run_holds_while_it_runs_and_releases_at_the_end(counter):
    memory, libc = counter
    run = RISE(TinySeg()).iter_explain(IMAGE, **RUN)
    next(run)
    assert memory.holders == 1 and libc.calls == KEEP
    for _ in run:
        pass
    assert memory.holders == 0 and libc.calls == KEEP + GIVE_BACK


def test_system_leaves_malloc_alone(counter):
    _, libc = counter
    kept = RISE(TinySeg()).explain(IMAGE, **RUN)
    alone = RISE(TinySeg()).explain(IMAGE, **RUN, host_memory="system")
    assert libc.calls == KEEP + GIVE_BACK  # the first run only
    assert np.array_equal(alone.map, kept.map)


@pytest.mark.parametrize("how", ["cancel", "model fails", "closed"])
def test_a_run_that_stops_early_releases(counter, how):
    memory, libc = counter
    if how == "model fails":
        with pytest.raises(ModelError, match="the model failed"):
            RISE(TinySeg(fail_after=3)).explain(IMAGE, **RUN)
    elif how == "cancel":
        token = CancelToken()
        run = RISE(TinySeg()).iter_explain(IMAGE, **RUN, cancel=token)
        next(run)
        token.cancel()
        assert list(run)[-1].cancelled
    else:
        run = RISE(TinySeg()).iter_explain(IMAGE, **RUN)
        next(run)
        run.close()
    assert memory.holders == 0 and libc.calls == KEEP + GIVE_BACK


def test_a_bad_mode_names_the_field_and_the_choices():
    with pytest.raises(ValueError, match=r"host_memory.*keep.*system"):
        RISE(TinySeg()).explain(IMAGE, **RUN, host_memory="always")


_REAL = textwrap.dedent(
    """
    import resource, sys, torch
    from maskscope._engine.host_memory import HOST_MEMORY

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def resident_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    def again(n):  # page faults of a block allocated again right after it was freed
        a = torch.ones(n)
        del a
        f = faults()
        b = torch.ones(n)
        f = faults() - f
        del b
        return f

    held = sys.argv[1] == "keep" and HOST_MEMORY.hold()
    counts = [again(k * 2**18) for k in (1, 4, 16)]  # 1, 4 and 16 MiB
    blocks = [torch.ones(4 * 2**20) for _ in range(4)]  # 64 MiB in 16 MiB blocks
    del blocks
    before = resident_mib()
    if held:
        HOST_MEMORY.release()
    print(counts[-1], before - resident_mib())
    """
)


@pytest.mark.skipif(glibc() is None, reason="mallopt is glibc's (Linux)")
def test_real_glibc_keeps_freed_blocks_while_held_and_gives_them_back_after():
    out = {}
    for mode in ("keep", "system"):
        res = subprocess.run(
            [sys.executable, "-c", _REAL, mode], capture_output=True, text=True, check=True
        )
        faults, given_back = res.stdout.split()
        out[mode] = (int(faults), float(given_back))
    kept_faults, given_back = out["keep"]
    assert kept_faults <= 64  # 16 MiB is 4096 pages: they stayed mapped
    assert out["system"][0] > 10 * max(kept_faults, 16)  # glibc's own settings fault here
    assert given_back >= 32  # the release trimmed the freed 64 MiB
