"""Model-randomisation check on a real small conv net; seed agreement against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from maskscope import Explanation, SegRISE, randomization_check, seed_agreement
from maskscope.evaluate import parametrised_layers


def blob_images(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bright rectangles on noise, with their masks."""
    x = 0.3 * rng.random((n, 1, size, size))
    y = np.zeros((n, size, size), np.int64)
    for i in range(n):
        r, c = rng.integers(2, size - 10, 2)
        h, w = rng.integers(5, 9, 2)
        x[i, 0, r : r + h, c : c + w] += 0.6
        y[i, r : r + h, c : c + w] = 1
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def trained_net() -> nn.Module:
    """A three-layer conv net trained for a few steps to segment the rectangles."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 2, 1),
        )
        x, y = blob_images(32, 24, np.random.default_rng(0))
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(80):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
    return net.eval()


def test_randomised_maps_change_and_the_users_model_is_untouched(trained_net):
    image, label = blob_images(1, 24, np.random.default_rng(7))
    image = image[0]
    pred = trained_net(torch.from_numpy(image[None])).argmax(1)[0].numpy()
    assert (pred == label[0]).mean() > 0.95  # the net really segments
    before = {k: v.clone() for k, v in trained_net.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    method = SegRISE(trained_net)
    kw = {"n_masks": 96, "grid": 4, "seed": 3, "batch_size": 16}
    res = randomization_check(method, image, keep_maps=True, **kw)
    assert res.layers == ["4", "2", "0"]  # output end first
    assert res.n_randomised == [1, 2, 3] and len(res.maps) == 3
    for k, v in trained_net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert method.model is trained_net
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    np.testing.assert_array_equal(res.original.map, method.explain(image, **kw).map)
    # each randomised map, recomputed here on a copy re-initialised the same way
    for rho, m in zip(res.spearman, res.maps, strict=True):
        assert not np.allclose(m, res.original.map)
        if np.ptp(m) == 0:  # the model no longer reacts to the masks: undefined, NaN
            assert np.isnan(rho)
        else:
            assert rho == pytest.approx(stats.spearmanr(res.original.map.ravel(), m.ravel())[0])
    for rho_abs, m in zip(res.spearman_abs, res.maps, strict=True):
        if np.ptp(np.abs(m)) > 0:
            want = stats.spearmanr(np.abs(res.original.map).ravel(), np.abs(m).ravel())[0]
            assert rho_abs == pytest.approx(want)
    assert res.spearman[-1] < 0.5  # measured: 0.14 with every layer re-initialised
    again = randomization_check(method, image, **kw)
    np.testing.assert_array_equal(again.spearman, res.spearman)
    fewer = randomization_check(method, image, steps=2, **kw)
    assert fewer.n_randomised == [1, 3]
    assert fewer.spearman[1] == pytest.approx(res.spearman[2], nan_ok=True)
    assert "Spearman" in res.table() and res.to_dict()["layers"] == ["4", "2", "0"]


def test_parametrised_layers_skip_modules_without_weights(trained_net):
    names = [n for n, _ in parametrised_layers(trained_net)]
    assert names == ["4", "2", "0"]


def test_seed_agreement_matches_numpy_and_scipy():
    rng = np.random.default_rng(1)
    a = rng.random((9, 10))
    b = a + 0.5 * rng.random((9, 10))
    got = seed_agreement(a, b)
    assert got.pearson == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert got.spearman == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0])
    assert got.n_voxels == 90
    region = np.zeros((9, 10), bool)
    region[2:6, 3:8] = True
    inside = seed_agreement(a, b, region=region)
    assert inside.n_voxels == 20
    assert inside.spearman == pytest.approx(stats.spearmanr(a[region], b[region])[0])
    ref = region.astype(np.int32)
    ea = Explanation("SegRISE", a, reference=ref)
    assert seed_agreement(ea, Explanation("SegRISE", b), region="reference") == inside
    two = ref.copy()
    two[7:9, 0:4] = 2  # another class: not the explained segment when a target is set
    et = Explanation("SegRISE", a, reference=two, target=1)
    assert seed_agreement(et, Explanation("SegRISE", b), region="reference") == inside
    every = seed_agreement(Explanation("SegRISE", a, reference=two), b, region="reference")
    assert every.n_voxels == 28
    assert np.isnan(seed_agreement(a, np.ones((9, 10))).spearman)
    assert seed_agreement(a, b).to_dict()["n_voxels"] == 90


def test_seed_agreement_uses_the_slices_computed_in_both():
    rng = np.random.default_rng(2)
    a, b = rng.random((4, 5, 6)), rng.random((4, 5, 6))
    a[0] = b[0] = 0.0  # a slice computed by neither: zeros would inflate the correlation
    got = seed_agreement(
        Explanation("SegRISE", a, slices=(1, 2, 3)), Explanation("SegRISE", b, slices=(2, 3))
    )
    assert got.n_voxels == 60
    assert got.pearson == pytest.approx(np.corrcoef(a[2:].ravel(), b[2:].ravel())[0, 1])
