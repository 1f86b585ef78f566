"""One normalisation function: each mode against slow reference code, per channel, errors."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope import SegRISE
from maskscope.intensity import (
    NORMALIZATIONS,
    Normalizer,
    describe_normalization,
    normalize,
    suggest_normalization,
)
from tests.conftest import ThresholdNet


def _reference(x: np.ndarray, mode: str, lo=0.5, hi=99.5) -> np.ndarray:
    """Element by element, with Python floats."""
    flat = [float(v) for v in x.ravel()]
    if mode == "zscore":
        m = sum(flat) / len(flat)
        s = (sum((v - m) ** 2 for v in flat) / len(flat)) ** 0.5
        out = [(v - m) / s for v in flat]
    elif mode == "zscore-nonzero":
        nz = [v for v in flat if v != 0]
        m = sum(nz) / len(nz)
        s = (sum((v - m) ** 2 for v in nz) / len(nz)) ** 0.5
        out = [0.0 if v == 0 else (v - m) / s for v in flat]
    elif mode == "percentile":
        a, b = np.percentile(flat, [lo, hi])
        out = [min(max((v - a) / (b - a), 0.0), 1.0) for v in flat]
    elif mode == "minmax":
        a, b = min(flat), max(flat)
        out = [(v - a) / (b - a) for v in flat]
    else:
        out = flat
    return np.array(out).reshape(x.shape)


@pytest.mark.parametrize("mode", NORMALIZATIONS)
def test_each_mode_matches_reference_code(mode):
    rng = np.random.default_rng(1)
    x = rng.normal(300.0, 80.0, (6, 7, 5)).astype(">i2")  # big-endian ints, as in NIfTI files
    x[:2] = 0  # background for the nonzero mode
    got = normalize(x, mode)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, _reference(x, mode), rtol=1e-5, atol=1e-5)


def test_channels_are_normalised_separately():
    rng = np.random.default_rng(2)
    x = np.stack([rng.normal(0, 1, (8, 8)), rng.normal(500, 50, (8, 8))])
    got = normalize(x, "zscore", channel_axis=0)
    for c in range(2):
        np.testing.assert_allclose(got[c], _reference(x[c], "zscore"), rtol=1e-5, atol=1e-5)
    moved = normalize(np.moveaxis(x, 0, -1), "zscore", channel_axis=-1)
    np.testing.assert_allclose(np.moveaxis(moved, -1, 0), got, rtol=1e-6)


def test_percentiles_can_be_chosen_and_constant_images_do_not_divide_by_zero():
    x = np.arange(101, dtype=np.float64)
    np.testing.assert_allclose(
        normalize(x, "percentile", percentiles=(10, 90))[[0, 50, 100]], [0.0, 0.5, 1.0]
    )
    assert str(Normalizer("percentile", (10, 90))) == "percentile(10, 90)"
    for mode in NORMALIZATIONS:
        assert np.isfinite(normalize(np.full((3, 3), 7.0), mode)).all()


def test_bad_modes_and_percentiles_are_named():
    with pytest.raises(ValueError, match=r"normalize must be one of 'none', 'zscore'.* got 'z'"):
        normalize(np.zeros(3), "z")
    with pytest.raises(ValueError, match=r"0 <= low < high <= 100, got \(90.0, 10.0\)"):
        normalize(np.zeros(3), "percentile", percentiles=(90, 10))
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalize(np.array([1.0, np.nan]), "minmax")


def test_suggestion_and_description():
    assert suggest_normalization(np.array([0.0, 0.3, 1.0])) == "none"
    assert suggest_normalization(np.array([-610, 30393], dtype=">i2")) == "percentile"
    # a volume a pipeline z-scored already: rescaling it would shift the model's input
    raw = np.random.default_rng(0).gamma(2.0, 300.0, (16, 20, 12))
    assert suggest_normalization(raw) == "percentile"
    assert suggest_normalization(normalize(raw, "zscore")) == "none"
    brain = raw.copy()
    brain[:4] = 0  # background outside the brain, z-scored over the brain only
    assert suggest_normalization(normalize(brain, "zscore-nonzero")) == "none"
    assert suggest_normalization(normalize(raw, "zscore") * 3) == "percentile"
    text = describe_normalization("percentile", np.array([-610.0, 30393.0]))
    assert text == (
        "percentile: clip to the 0.5–99.5th percentiles, rescale to [0, 1] "
        "(input range -610 … 3.039e+04)"
    )


def test_explain_takes_normalize_and_records_it():
    rng = np.random.default_rng(3)
    raw = rng.uniform(0, 1, (16, 16)).astype(np.float32)
    raw[4:12, 4:12] += 2.0
    raw = raw * 1000.0 + 200.0  # scanner-like values
    net = ThresholdNet(2)
    by_name = SegRISE(net).explain(raw, n_masks=12, grid=4, seed=0, normalize="minmax")
    by_hand = SegRISE(net).explain(normalize(raw, "minmax"), n_masks=12, grid=4, seed=0)
    np.testing.assert_array_equal(by_name.map, by_hand.map)
    np.testing.assert_allclose(by_name.image[0], normalize(raw, "minmax"))
    assert by_name.params["normalize"] == "minmax"
    with pytest.raises(ValueError, match="normalize must be one of"):
        SegRISE(net).explain(raw, n_masks=4, normalize="bogus")
