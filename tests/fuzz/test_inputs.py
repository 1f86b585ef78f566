"""Bad images, references and spacings: one clear message each, before the model runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import HDM, SegRISE
from tests.conftest import Spy, ThresholdNet


def image(shape=(16, 16)) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    img[..., 4:10, 5:12] = 1.0
    return img


RUN = {"n_masks": 8, "grid": 4, "seed": 0}


@pytest.mark.parametrize(
    ("dims", "channels", "data", "exc", "message"),
    [
        (2, 1, np.zeros((0, 16), np.float32), ValueError, r"image is empty: .* \(0, 16\)"),
        (2, 1, torch.zeros(16, 16, device="meta"), ValueError, "meta device"),
        (2, 1, np.zeros((16, 16), object), TypeError, "object array"),
        (2, 1, np.zeros((20, 16, 3), np.uint8), ValueError, r"looks like RGB .* colours last"),
        (2, 3, np.zeros((20, 16, 4), np.uint8), ValueError, r"looks like RGBA"),
        (
            3,
            1,
            np.zeros((2, 8, 8, 8), np.float32),
            ValueError,
            r"takes 1 input .*, the image has 2",
        ),
        (2, 3, np.zeros((16, 16), np.float32), ValueError, r"3 input .*image has 1"),
        (3, 2, np.zeros((8, 8, 8), np.float32), ValueError, r"2 input .*image has 1"),
    ],
)
def test_bad_image_is_refused_before_the_model_runs(dims, channels, data, exc, message) -> None:
    spy = Spy(ThresholdNet(dims, in_channels=channels))
    spy.in_channels = channels  # declared: checked at the door
    with pytest.raises(exc, match=message):
        SegRISE(spy).explain(data, **RUN)
    assert spy.calls == 0


@pytest.mark.parametrize("order", [">f4", ">i2", "<f8"])
def test_any_byte_order_gives_the_native_result(order) -> None:
    want = SegRISE(ThresholdNet(2)).explain(image(), **RUN)
    got = SegRISE(ThresholdNet(2)).explain(image().astype(order), **RUN)
    np.testing.assert_allclose(got.map, want.map, rtol=1e-6)
    assert got.image.dtype.isnative


def test_boolean_reference_equals_integer_labels() -> None:
    ref = image() > 0
    a = SegRISE(ThresholdNet(2)).explain(image(), reference=ref, **RUN)
    b = SegRISE(ThresholdNet(2)).explain(image(), reference=ref.astype(np.int64), **RUN)
    np.testing.assert_array_equal(a.map, b.map)
    np.testing.assert_array_equal(a.reference, ref)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: np.where(r > 0, np.nan, 0.0), r"reference contains NaN .* \(42 voxels\)"),
        (lambda r: r - 1, r"class indices >= 0, got values in \[-1, 0\]"),
        (lambda r: r * 3, r"labels must be in \[0, 1\] for a model with 2 output channels, got"),
        (lambda r: r + 0.5, "fractional values"),
        (lambda r: r[:4], r"spatial shape \(16, 16\), got \(4, 16\)"),
    ],
)
def test_bad_reference_says_what_is_wrong(change, message) -> None:
    ref = (image() > 0).astype(np.float32)
    with pytest.raises(ValueError, match=message) as info:
        SegRISE(ThresholdNet(2)).explain(image(), reference=change(ref), **RUN)
    assert "2147483646" not in str(info.value)


@pytest.mark.parametrize(
    ("spacing", "message"),
    [
        ((1.0, 1.0, 1.0), r"voxel_spacing must be 2 positive numbers .* got \(1.0, 1.0, 1.0\)"),
        ((1.0,), r"must be 2 positive numbers"),
        ((1.0, float("nan")), r"must be 2 positive numbers"),
        (("a", "b"), r"got \('a', 'b'\)"),
        (object(), r"must be 2 positive numbers"),
    ],
)
def test_bad_spacing(spacing, message) -> None:
    with pytest.raises(ValueError, match=message):
        HDM(ThresholdNet(2)).explain(image(), diameter=4, stride=4, voxel_spacing=spacing)


def test_scalar_and_numpy_spacing_are_accepted() -> None:
    a = HDM(ThresholdNet(2)).explain(image(), diameter=4, stride=4, voxel_spacing=2.0)
    b = HDM(ThresholdNet(2)).explain(
        image(), diameter=4, stride=4, voxel_spacing=np.array([2.0, 2.0], np.float32)
    )
    assert a.voxel_spacing == b.voxel_spacing == (2.0, 2.0)
    np.testing.assert_array_equal(a.map, b.map)
