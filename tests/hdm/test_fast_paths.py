"""HDM's shortcuts give the full computation's results bit for bit, and are taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import HDM
from maskscope._engine.distances import SkipUnchanged, _rows_differ, make_distance, surface
from maskscope._engine.mask_batch import MaskBatch
from maskscope._engine.occlusion import CentreGrid
from maskscope._engine.perturb import make_perturbation
from maskscope.methods import hdm as hdm_module
from maskscope.methods.hdm import StampedFill


def slow_surface(fg: torch.Tensor) -> torch.Tensor:
    """The original formula: pad a float copy with ones, AND the face-shifted copies."""
    nd = fg.ndim - 1
    f = torch.nn.functional.pad(fg.float().unsqueeze(1), [1, 1] * nd, value=1.0)[:, 0].bool()
    interior = fg.clone()
    for ax in range(1, nd + 1):
        for start in (0, 2):
            sl = [slice(None)] + [slice(1, n + 1) for n in fg.shape[1:]]
            sl[ax] = slice(start, start + fg.shape[ax])
            interior &= f[tuple(sl)]
    return fg & ~interior


def blobs(shape, n, seed):
    """A reference, the unperturbed prediction, and ``n`` predictions: copies, edits, empty."""
    rng = np.random.default_rng(seed)
    grids = np.indices(shape)
    centre = [s // 2 for s in shape]
    ref = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= (min(shape) // 3) ** 2
    known = ref.copy()
    known[tuple(c + 1 for c in centre)] = False
    known.flat[rng.integers(0, known.size, 3)] = True  # stray foreground far away
    preds = []
    for k in range(n):
        p = known.copy()
        if k % 3 == 1:
            p.flat[rng.integers(0, p.size, 4)] ^= True
        elif k % 3 == 2:
            p[tuple(slice(c - 2, c + 1) for c in centre)] = False  # a hole in the segment
        preds.append(p)
    preds.append(np.zeros(shape, bool))  # erased segment
    t = torch.from_numpy
    return t(ref), t(known), t(np.stack(preds))


@pytest.mark.parametrize("name", ["hausdorff", "hd95", "dice"])
@pytest.mark.parametrize(
    ("shape", "spacing"), [((23, 30), (1.0, 1.0)), ((9, 14, 12), (2.0, 0.7, 1.3))]
)
def test_skip_unchanged_equals_full_computation(name, shape, spacing):
    ref, known, preds = blobs(shape, 10, seed=len(shape))
    full = make_distance(name, ref, spacing)
    fast = SkipUnchanged(make_distance(name, ref, spacing), known)
    assert torch.equal(fast.value, full(known[None])[0])
    got = fast(preds)
    want = full(preds)
    assert got.dtype == want.dtype == torch.float64
    assert torch.equal(got, want)
    changed = int((preds.reshape(len(preds), -1) != known.flatten()).any(1).sum())
    assert 0 < changed < len(preds)
    assert fast.n_computed == changed  # copies of the known prediction were not recomputed
    assert torch.equal(fast(known[None].expand(3, *shape)), fast.value.expand(3))
    assert fast.n_computed == changed


def test_skip_unchanged_passes_only_changed_rows():
    _, known, preds = blobs((16, 17), 7, seed=3)
    seen = []

    def spy(pred):
        seen.append(pred.clone())
        return pred.reshape(len(pred), -1).sum(1).double()

    fast = SkipUnchanged(spy, known)
    out = fast(preds)
    changed = (preds.reshape(len(preds), -1) != known.flatten()).any(1)
    assert torch.equal(seen[-1], preds[changed])
    assert torch.equal(out, preds.reshape(len(preds), -1).sum(1).double())


@pytest.mark.parametrize("n", [15, 12, 16, 64])
def test_rows_differ_any_length_and_offset(n):
    rng = np.random.default_rng(n)
    known = torch.from_numpy(rng.random(n) > 0.5)
    rows = known.expand(5, n).clone()
    rows[1, n - 1] ^= True
    rows[3, 0] ^= True
    want = torch.tensor([False, True, False, True, False])
    assert torch.equal(_rows_differ(rows, known), want)
    big = torch.cat([known.new_zeros(5, 1), rows], dim=1)[:, 1:]  # storage offset of 1
    assert torch.equal(_rows_differ(big, known), want)
    assert torch.equal(_rows_differ(rows, torch.cat([known.new_zeros(1), known])[1:]), want)


@pytest.mark.parametrize("shape", [(2, 11, 13), (3, 6, 7, 5)])
def test_surface_equals_padded_formula(shape):
    fg = torch.from_numpy(np.random.default_rng(0).random(shape) > 0.4)
    fg[0] = True
    assert torch.equal(surface(fg), slow_surface(fg))


@pytest.mark.parametrize(
    ("fill", "channel", "channels"),
    [("min", None, 1), ("mean", None, 3), (0.0, None, 2), (0.3, 1, 3), ("image", None, 2)],
)
def test_stamped_fill_equals_fill(fill, channel, channels):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(1, channels, 13, 17)).astype(np.float32))
    if fill == "image":
        fill = torch.from_numpy(rng.normal(size=(channels, 13, 17)).astype(np.float32))
    grid = CentreGrid((13, 17), 5.0, 3.0, (1.3, 0.9))
    fn = make_perturbation(x, fill, channel=channel)
    stamp = StampedFill(x, fn)
    for start, stop in ((0, 5), (5, grid.n_centres)):
        batch = grid.batch(start, stop, x.dtype)
        got = stamp(batch)
        want = fn(x, batch.masks)
        assert batch.holes is not None
        assert got.dtype == want.dtype and torch.equal(got, want)
    other = torch.ones_like(batch.masks)  # a batch without holes: the fill itself
    assert torch.equal(stamp(MaskBatch(0, other)), fn(x, other))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_hdm_fast_paths_match_plain_run(spatial_dims, monkeypatch):
    """A run with every shortcut equals one through a user fill and distance (none taken)."""
    if spatial_dims == 2:
        img = np.zeros((1, 26, 29), np.float32)
        img[0, 8:17, 6:20] = 1.0
        kw = {"diameter": 5.0, "stride": 3.0, "voxel_spacing": (1.0, 1.0)}
    else:
        img = np.zeros((1, 9, 12, 11), np.float32)
        img[0, 2:7, 3:9, 3:8] = 1.0
        kw = {"diameter": 4.5, "stride": (4.0, 2.0, 2.0), "voxel_spacing": (2.0, 1.0, 0.8)}

    def model(x):
        m = x[:, :1] - 0.5
        return torch.cat([-m, m], 1)

    made = []

    class Counting(SkipUnchanged):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(hdm_module, "SkipUnchanged", Counting)
    x = torch.from_numpy(img[None])
    for name in ("hausdorff", "hd95"):
        fast = HDM(model, spatial_dims=spatial_dims).explain(
            img, distance=name, fill="min", batch_size=5, sweep="full", **kw
        )
        spacing = kw["voxel_spacing"]
        plain = HDM(
            model,
            spatial_dims=spatial_dims,
            distance_fn=lambda p, r, name=name, sp=spacing: make_distance(name, r, sp)(p),
            fill_fn=make_perturbation(x, "min"),
        ).explain(img, fill="min", batch_size=5, sweep="full", **kw)
        assert np.array_equal(fast.extras["grid_raw"], plain.extras["grid_raw"])
        assert np.array_equal(fast.map, plain.map)
        assert fast.extras["baseline"] == plain.extras["baseline"]
        # the skip was taken: most occlusions leave the prediction as it was
        assert 0 < made[-1].n_computed < fast.n_total / 2
