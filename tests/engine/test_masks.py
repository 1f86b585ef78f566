"""RISE masks: exact against full-size interpolation + crop, chunk-independent, seeded."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from maskscope._engine.masks import BLOCK, RiseMasks, interpolation_matrix


def reference_masks(gen: RiseMasks, start: int, stop: int) -> torch.Tensor:
    """Petsiuk et al.: upsample the whole (s+1)·cell canvas, then crop at the shift."""
    grids, shifts = gen.params(start, stop)
    nd = len(gen.spatial)
    up = tuple((g + 1) * c for g, c in zip(gen.grid, gen.cells, strict=True))
    mode = "bilinear" if nd == 2 else "trilinear"
    out = []
    for g, s in zip(grids, shifts, strict=True):
        big = F.interpolate(g[None, None].double(), size=up, mode=mode, align_corners=False)[0, 0]
        idx = tuple(slice(int(s[a]), int(s[a]) + gen.spatial[a]) for a in range(nd))
        out.append(big[idx])
    return torch.stack(out)[:, None]


@pytest.mark.parametrize(
    ("spatial", "grid"),
    [((16, 16), 4), ((20, 13), (5, 3)), ((8, 8, 8), 3), ((6, 10, 7), (2, 4, 3))],
)
def test_masks_match_full_interpolation_and_crop(spatial, grid):
    gen = RiseMasks(spatial, grid, 0.5, seed=3, dtype=torch.float64)
    got = gen(0, 40)
    want = reference_masks(gen, 0, 40)
    assert got.shape == (40, 1, *spatial)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert got.min() >= 0 and got.max() <= 1


def test_masks_do_not_depend_on_chunking():
    gen = RiseMasks((12, 12), 4, 0.3, seed=7)
    n = BLOCK + 37
    whole = torch.cat([gen(i, min(i + 100, n)) for i in range(0, n, 100)])
    pieces = torch.cat([gen(i, min(i + 3, n)) for i in range(0, n, 3)])
    fresh = RiseMasks((12, 12), 4, 0.3, seed=7)
    assert torch.equal(whole, pieces)
    assert torch.equal(fresh(BLOCK - 2, BLOCK + 2), whole[BLOCK - 2 : BLOCK + 2])


def test_seed_changes_masks_and_keep_probability_holds():
    a = RiseMasks((32, 32), 8, 0.25, seed=0)(0, 400)
    b = RiseMasks((32, 32), 8, 0.25, seed=1)(0, 400)
    assert not torch.equal(a, b)
    grids, _ = RiseMasks((32, 32), 8, 0.25, seed=0).params(0, 400)
    frac = grids.float().mean().item()
    assert abs(frac - 0.25) < 4 * math.sqrt(0.25 * 0.75 / grids.numel())
    assert abs(a.mean().item() - 0.25) < 0.03


def test_shifts_cover_cell_range():
    gen = RiseMasks((30, 30), 3, 0.5, seed=0)
    _, shifts = gen.params(0, 500)
    assert gen.cells == (10, 10)
    assert shifts.min() == 0 and shifts.max() == 9


def test_interpolation_matrix_rows_sum_to_one():
    r = interpolation_matrix(5, 18)
    torch.testing.assert_close(r.sum(1), torch.ones(18, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": 0}, "grid cells must be >= 1"),
        ({"grid": 20}, "larger than the image"),
        ({"grid": (2, 2, 2)}, "one int or 2 ints"),
        ({"p_keep": 0.0}, r"p_keep must be in \(0, 1\)"),
        ({"p_keep": 1.5}, r"p_keep must be in \(0, 1\)"),
        ({"p_keep": 1.0}, r"p_keep must be in \(0, 1\)"),
    ],
)
def test_bad_mask_parameters(kwargs, match):
    args = {"spatial": (16, 16), "grid": 4, "p_keep": 0.5, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        RiseMasks(**args)


@pytest.mark.parametrize("sampling", ["iid", "stratified"])
def test_a_seed_draws_its_masks_on_the_cpu_whatever_the_device(monkeypatch, sampling):
    """A GPU's generator gives other numbers for a seed: the draws are made on the CPU and
    moved, so a seed's masks are the same on every device."""
    import maskscope._engine.masks as masks_mod

    seen = []
    real_rand, real_randint = torch.rand, torch.randint

    def rand(*args, generator=None, **kw):
        seen.append((generator.device.type, kw.get("device")))
        return real_rand(*args, generator=generator, **kw)

    def randint(*args, generator=None, **kw):
        seen.append((generator.device.type, kw.get("device")))
        return real_randint(*args, generator=generator, **kw)

    monkeypatch.setattr(masks_mod.torch, "rand", rand)
    monkeypatch.setattr(masks_mod.torch, "randint", randint)
    on_meta = RiseMasks((20, 18), 4, 0.5, seed=5, device="meta", sampling=sampling)
    grids, shifts = on_meta.params(0, 10)
    assert grids.device.type == "meta" and shifts.device.type == "meta"
    assert seen and set(seen) == {("cpu", None)}
    monkeypatch.undo()
    on_cpu = RiseMasks((20, 18), 4, 0.5, seed=5, sampling=sampling)
    assert on_cpu.params(0, 10)[0].shape == grids.shape
