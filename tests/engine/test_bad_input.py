"""Bad input gets a clear error naming what was expected and what was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskscope import RISE, PixelRISE, SegRISE, SegRISEParams
from tests.conftest import ThresholdNet


def sq(shape=(16, 16)):
    img = np.zeros(shape, np.float32)
    img[..., 4:10, 4:10] = 1
    return img


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_masks": 0}, ValueError, r"n_masks must be in \[1, 1e\+06\], got 0"),
        ({"p_keep": 0.0}, ValueError, r"p_keep must be in \(0, 1\), got 0.0"),
        ({"p_keep": 1.2}, ValueError, r"p_keep must be in \(0, 1\), got 1.2"),
        ({"p_keep": 1.0}, ValueError, r"p_keep must be in \(0, 1\), got 1.0"),
        ({"grid": 17}, ValueError, r"grid \(17, 17\) is larger than the image \(16, 16\)"),
        ({"grid": 0}, ValueError, r"grid must be in \[1, inf\], got 0"),
        ({"batch_size": 0}, ValueError, r"batch_size must be in \[1, inf\], got 0"),
        ({"tol": -0.1}, ValueError, r"tol must be in \(0, 1\], got -0.1"),
        ({"score": "jaccard"}, ValueError, r"score must be one of 'dice', 'iou', got 'jaccard'"),
        ({"baseline": "median"}, ValueError, r"baseline must be a number or one of 'min', 'mean'"),
        ({"n_masks": 2.5}, TypeError, r"n_masks must be an int, got 2.5"),
        ({"n_mask": 5}, TypeError, r"unknown argument\(s\) n_mask; parameters are"),
        ({"target": 2}, ValueError, r"target must be a class index in \[0, 1\] .* got 2"),
        ({"target": "1"}, TypeError, r"target must be an int class index, got '1'"),
        ({"slices": 3}, ValueError, r"slices applies to a 2D model on a volume"),
    ],
)
def test_bad_parameters(net2d, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SegRISE(net2d).explain(sq(), **kwargs)


def test_nan_parameters(net2d):
    with pytest.raises(ValueError, match=r"p_keep must be finite, got nan"):
        SegRISE(net2d).explain(sq(), p_keep=float("nan"))
    with pytest.raises(TypeError, match="n_masks must be an int, got nan"):
        SegRISE(net2d).explain(sq(), n_masks=float("nan"))


@pytest.mark.parametrize(
    ("image", "exc", "match"),
    [
        ([[0, 1], [1, 0]], TypeError, "numpy array or a torch tensor, got list"),
        (np.zeros((2, 2, 2, 2, 2), np.float32), ValueError, r"got an array of shape \(2, 2, 2"),
        (np.zeros(16, np.float32), ValueError, r"\(H, W\), \(C, H, W\)"),
        (np.full((16, 16), np.nan, np.float32), ValueError, "NaN or infinite"),
        (np.zeros((16, 16), bool), TypeError, "real numbers, got dtype torch.bool"),
        (np.zeros((3, 16, 16), np.complex64), TypeError, "real numbers"),
    ],
)
def test_bad_images(net2d, image, exc, match):
    with pytest.raises(exc, match=match):
        SegRISE(net2d).explain(image, n_masks=2)


def test_integer_images_are_accepted(net2d):
    img = (sq() * 255).astype(np.uint8)
    expl = SegRISE(net2d).explain(img, n_masks=4, grid=4)
    assert expl.map.shape == (16, 16)


def test_ambiguous_three_axis_input_needs_spatial_dims():
    def model(x):
        return torch.cat([-x, x], 1)

    with pytest.raises(ValueError, match="pass spatial_dims=2 or spatial_dims=3"):
        SegRISE(model).explain(np.zeros((4, 8, 8), np.float32), n_masks=2)


def test_wrong_channel_count_named(net2d):
    with pytest.raises(ValueError, match="neither"):
        from tests.conftest import ThresholdNet

        SegRISE(ThresholdNet(2, in_channels=3)).explain(np.zeros((2, 8, 8)), n_masks=2)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (lambda x: x[:, :, :4], r"must return \(B, K, \*spatial\) = \(1, K, 16, 16\)"),
        (lambda x: [1, 2], "must return a tensor, got list"),
        (lambda x: torch.cat([x, x * float("nan")], 1), "NaN or infinite"),
        (lambda x: x.flatten(), r"got \(256,\)"),
        (  # a deep-supervision network in training mode: (B, heads, K, *spatial)
            lambda x: torch.stack([torch.cat([x, -x], 1)] * 3, 1),
            r"one axis more, as a deep-supervision network in training mode .* model.eval\(\)",
        ),
    ],
)
def test_bad_model_outputs(model, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SegRISE(model, spatial_dims=2).explain(sq(), n_masks=2)


def test_output_shape_changing_mid_run_is_caught():
    calls = []

    def model(x):
        calls.append(1)
        out = torch.cat([-x, x], 1)
        return out if len(calls) < 3 else torch.cat([out, out], 1)

    with pytest.raises(ValueError, match="returned 4 channels, but 2 on the unperturbed"):
        SegRISE(model, spatial_dims=2).explain(sq(), n_masks=10, batch_size=2)


def test_reference_errors(net2d):
    with pytest.raises(ValueError, match=r"spatial shape \(16, 16\), got \(8, 8\)"):
        SegRISE(net2d).explain(sq(), reference=np.zeros((8, 8), np.uint8), n_masks=2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 1\] .* maximum of 3"):
        SegRISE(net2d).explain(sq(), reference=np.full((16, 16), 3, np.uint8), n_masks=2)
    with pytest.raises(ValueError, match="integer class labels"):
        SegRISE(net2d).explain(sq(), reference=np.full((16, 16), 0.5), n_masks=2)
    with pytest.raises(ValueError, match="no voxel of any foreground class"):
        SegRISE(net2d).explain(sq(), reference=np.zeros((16, 16), np.uint8), n_masks=2)


def test_empty_prediction_is_a_clear_error(net2d):
    with pytest.raises(ValueError, match="no voxel of class 1"):
        RISE(net2d).explain(np.zeros((16, 16), np.float32), n_masks=2)


def test_empty_volume_everywhere(net2d):
    with pytest.raises(ValueError, match="empty for the target in every slice"):
        SegRISE(net2d).explain(np.zeros((3, 16, 16), np.float32), n_masks=2)


def test_params_object_of_wrong_type(net2d):
    with pytest.raises(TypeError, match="params must be a PixelRISEParams, got SegRISEParams"):
        PixelRISE(net2d).explain(sq(), params=SegRISEParams())


def test_bad_method_arguments(net2d):
    with pytest.raises(TypeError, match="model must be callable"):
        SegRISE("model.pt")
    with pytest.raises(ValueError, match="outputs must be one of"):
        SegRISE(net2d, outputs="probs")
    with pytest.raises(ValueError, match="device='meta' holds no data"):
        SegRISE(net2d, device="meta")
    with pytest.raises(ValueError, match="voxel_spacing must be 2 positive numbers"):
        SegRISE(net2d).explain(sq(), n_masks=2, voxel_spacing=(1.0, -1.0))


def test_score_fn_must_return_one_weight_per_mask(net2d):
    with pytest.raises(ValueError, match=r"score_fn must return a \(2,\) tensor, got \(\)"):
        RISE(net2d, score_fn=lambda out: out.mean()).explain(sq(), n_masks=2, batch_size=2)


def test_logits_called_probabilities_are_refused():
    """A model without a softmax, run with outputs='probabilities': its values say so."""
    from maskscope import SegRISE, faithfulness
    from tests.conftest import ThresholdNet

    img = np.zeros((16, 16), np.float32)
    img[4:10, 4:10] = 1.0
    match = r"outputs='probabilities' expects values in \[0, 1\], .* set outputs='logits'"
    with pytest.raises(ValueError, match=match):
        SegRISE(ThresholdNet(2), outputs="probabilities").explain(img, n_masks=4, grid=4)
    with pytest.raises(ValueError, match=match):
        faithfulness(img, model=ThresholdNet(2), image=img, outputs="probabilities", steps=2)
    soft = torch.nn.Sequential(ThresholdNet(2), torch.nn.Softmax(dim=1)).eval()
    expl = SegRISE(soft, outputs="probabilities", spatial_dims=2).explain(img, n_masks=4, grid=4)
    assert expl.map.shape == (16, 16)


@pytest.mark.parametrize(
    ("shape", "hint"),
    [((1, 1, 6, 8, 8), True), ((2, 1, 6, 8, 8), False), ((16,), False)],
)
def test_an_image_of_another_rank_names_the_shapes_and_a_batch_of_one(shape, hint):
    from tests.conftest import ThresholdNet

    with pytest.raises(ValueError) as err:
        SegRISE(ThresholdNet(3)).explain(np.zeros(shape, np.float32), n_masks=2)
    message = str(err.value)
    assert message.startswith(
        f"image must be (H, W), (C, H, W), (D, H, W) or (C, D, H, W), got an array of shape {shape}"
    )
    assert ("a batch of one (a DataLoader's (B, C, *spatial)): give its image" in message) == hint


def test_nan_voxels_are_counted_and_a_reference_with_a_channel_axis_of_one_is_taken(square2d):
    img = square2d.copy()
    img[:3, :5] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(15 of 256 voxels; NaN"):
        SegRISE(ThresholdNet(2)).explain(img, n_masks=4)
    ref = (square2d > 0.5)[None]  # (1, H, W): a channel axis of one
    a = SegRISE(ThresholdNet(2)).explain(square2d, reference=ref, n_masks=8, grid=4, seed=1)
    b = SegRISE(ThresholdNet(2)).explain(square2d, reference=ref[0], n_masks=8, grid=4, seed=1)
    np.testing.assert_array_equal(a.map, b.map)
    with pytest.raises(ValueError, match=r"spatial shape \(16, 16\), got \(2, 16, 16\)"):
        SegRISE(ThresholdNet(2)).explain(square2d, reference=np.stack([ref[0]] * 2), n_masks=4)
