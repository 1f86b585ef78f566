"""Curves scored inside a region of interest, as the methods' ``roi=`` scores."""

from __future__ import annotations

import numpy as np
import pytest

from maskscope import ROI, Explanation, SegRISE, faithfulness
from maskscope.evaluate import deletion
from tests.evaluate.cases import saliency_for
from tests.evaluate.reference import (
    THRESHOLD,
    BoxNet,
    box_mean,
    perturbed_inputs,
    ref_auc,
    window_order,
)

STEPS = 6


def two_blocks(dims: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Two bright blocks on a faint texture, and a box around the first one only."""
    rng = np.random.default_rng(4)
    if dims == 2:
        img = 0.2 * rng.random((12, 14))
        img[2:6, 2:6] += 0.8
        img[7:11, 8:13] += 0.8
        return img.astype(np.float32), (slice(1, 7), slice(1, 7))
    img = 0.2 * rng.random((7, 9, 10))
    img[1:4, 1:4, 1:4] += 0.8
    img[4:7, 5:8, 6:9] += 0.8
    return img.astype(np.float32), (slice(0, 5), slice(0, 5), slice(0, 5))


def ref_roi_curve(image, saliency, box, kind, order=None):
    """The Dice curve by the slow route, with prediction and reference cut to the box."""
    inside = np.zeros(saliency.shape, bool)
    inside[box] = True
    reference = (box_mean(image[None]) > THRESHOLD) & inside
    dice = []
    for x in perturbed_inputs(image[None], saliency, kind, STEPS, "zero", order):
        pred = (box_mean(x) > THRESHOLD) & inside
        dice.append(2.0 * (pred & reference).sum() / (pred.sum() + reference.sum()))
    return np.array(dice)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_curve_inside_an_roi_matches_the_reference(dims, kind):
    img, box = two_blocks(dims)
    sal = saliency_for(img.shape, seed=dims)
    roi = ",".join(f"{s.start}:{s.stop}" for s in box)
    res = faithfulness(sal, model=BoxNet(dims), image=img, roi=roi, steps=STEPS, n_random=0)
    want = ref_roi_curve(img, sal, box, kind)
    curve = getattr(res, kind)
    np.testing.assert_allclose(curve.scores("dice"), want, rtol=0, atol=1e-12)
    assert curve.auc("dice") == pytest.approx(ref_auc(curve.fractions, want), abs=1e-12)
    whole = faithfulness(sal, model=BoxNet(dims), image=img, steps=STEPS, n_random=0)
    assert not np.allclose(getattr(whole, kind).scores("dice"), want)  # the ROI matters


@pytest.mark.parametrize("crop", ["auto", False])
def test_an_roi_explanation_is_scored_inside_its_roi(tmp_path, crop):
    """The other block, which the model also segments, is no false positive."""
    img, box = two_blocks(2)
    expl = SegRISE(BoxNet(2)).explain(img, roi=ROI.from_box(box), crop=crop, n_masks=40, grid=3)
    inside = np.zeros(img.shape, bool)
    inside[box] = True
    assert expl.roi is not None and np.array_equal(expl.roi, inside)
    res = faithfulness(expl, model=BoxNet(2), steps=STEPS, n_random=0)
    assert res.deletion.scores("dice")[0] == pytest.approx(1.0)  # the intact image
    if crop:  # the curves order the voxels of the crop window, where the map is saliency
        window = tuple(slice(a, b) for a, b in expl.params["crop_window"])
        assert window != (slice(0, 12), slice(0, 14))
        assert res.window == [[s.start, s.stop] for s in window]
        assert res.n_voxels == int(np.prod([s.stop - s.start for s in window]))
        want = ref_roi_curve(img, expl.map, box, "deletion", window_order(expl.map, window))
    else:
        assert (res.window, res.n_voxels) == (None, img.size)
        want = ref_roi_curve(img, expl.map, box, "deletion")
        assert res.insertion.scores("dice")[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(res.deletion.scores("dice"), want, rtol=0, atol=1e-12)
    loaded = Explanation.load(expl.save(tmp_path / "e.npz"))
    assert np.array_equal(loaded.roi, inside)
    again = deletion(loaded, model=BoxNet(2), steps=STEPS)
    np.testing.assert_array_equal(again.scores("dice"), res.deletion.scores("dice"))


@pytest.mark.parametrize("dims", [2, 3])
def test_a_window_limits_the_voxels_ordered(dims):
    """Only the window's voxels are removed or inserted, in saliency order; fractions of them."""
    img, box = two_blocks(dims)
    sal = saliency_for(img.shape, seed=dims + 3)
    window = tuple(slice(s.start, s.stop + 1) for s in box)
    text = ",".join(f"{s.start}:{s.stop}" for s in window)
    order = window_order(sal, window)
    for given in (text, window, np.isin(np.arange(sal.size), order).reshape(sal.shape)):
        res = faithfulness(
            sal,
            model=BoxNet(dims),
            image=img,
            roi=box,
            window=given,
            steps=STEPS,
            n_random=2,
            seed=3,
        )
        assert res.window == [[s.start, s.stop] for s in window]
        assert res.n_voxels == len(order) and res.to_dict()["n_voxels"] == len(order)
        assert res.window_text().startswith(f"the {len(order)} voxels of the window ")
        for kind in ("deletion", "insertion"):
            want = ref_roi_curve(img, sal, box, kind, order)
            np.testing.assert_allclose(getattr(res, kind).scores("dice"), want, atol=1e-12)
            rng = np.random.default_rng(3)
            flat = np.flatnonzero(np.isin(np.arange(sal.size), order))
            rand = [flat[rng.permutation(flat.size)] for _ in range(2)]
            base = np.mean([ref_roi_curve(img, sal, box, kind, r) for r in rand], axis=0)
            np.testing.assert_allclose(
                getattr(res, f"random_{kind}").scores("dice"), base, atol=1e-12
            )
    whole = faithfulness(
        sal, model=BoxNet(dims), image=img, roi=box, window=None, steps=STEPS, n_random=0
    )
    assert (whole.window, whole.n_voxels) == (None, sal.size)
    assert not np.allclose(whole.deletion.scores("dice"), res.deletion.scores("dice"))


def test_a_mask_window_is_said_to_be_a_mask_in_its_box():
    img, box = two_blocks(2)
    sal = saliency_for(img.shape)
    mask = np.zeros(img.shape, bool)
    mask[1:7, 1:7] = True
    mask[1, 1] = False
    res = faithfulness(sal, model=BoxNet(2), image=img, roi=box, window=mask, steps=4)
    assert res.window == [[1, 7], [1, 7]] and res.n_voxels == 35
    assert res.window_text() == "the 35 voxels of a mask within the box 1:7,1:7"


def test_a_window_away_from_the_segment_is_said():
    import warnings

    img, box = two_blocks(2)
    sal = saliency_for(img.shape)
    with pytest.warns(UserWarning, match=r"the window 8:12,0:4 holds none of the 16 voxels scored"):
        faithfulness(sal, model=BoxNet(2), image=img, roi=box, window="8:12,0:4", steps=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # half the segment: no warning
        faithfulness(sal, model=BoxNet(2), image=img, roi=box, window="0:4,0:12", steps=4)


def test_a_bad_window_is_refused():
    img, _ = two_blocks(2)
    sal = saliency_for(img.shape)
    with pytest.raises(ValueError, match=r"window: the window box 0:5,0:40 must lie inside the"):
        faithfulness(sal, model=BoxNet(2), image=img, window="0:5,0:40")
    with pytest.raises(ValueError, match="window holds no voxel"):
        faithfulness(sal, model=BoxNet(2), image=img, window=np.zeros(img.shape, bool))
    with pytest.raises(ValueError, match=r"at most the 4 voxels \(of the window\)"):
        faithfulness(sal, model=BoxNet(2), image=img, window="2:4,2:4", steps=5)


def test_roi_scoring_refuses_the_background_and_several_rois():
    img, box = two_blocks(2)
    sal = saliency_for(img.shape)
    with pytest.raises(ValueError, match="target=0"):
        faithfulness(sal, model=BoxNet(2), image=img, roi=ROI.from_box(box), target=0)
    other = ROI.from_box("6:12,7:14")
    expl = SegRISE(BoxNet(2)).explain(img, roi=[ROI.from_box(box), other], n_masks=8, grid=3)
    with pytest.raises(ValueError, match="explained 2 ROIs: evaluate one at a time"):
        faithfulness(expl, model=BoxNet(2), steps=STEPS)
    res = faithfulness(expl, model=BoxNet(2), roi=other, steps=STEPS, n_random=0)
    assert res.deletion.scores("dice")[0] == pytest.approx(1.0)


def test_a_gui_evaluates_one_slice_of_a_sliced_roi_run_inside_the_roi():
    """A 2D model on a volume with an ROI: the slice's part of the ROI scores the slice, its
    part of the crop window is ordered; the API takes the slice as the GUIs give it."""
    from maskscope.evaluate.frontend import evaluation_inputs, summary_html
    from tests.conftest import ThresholdNet

    vol = np.zeros((4, 20, 22), np.float32)
    vol[:, 2:8, 2:8] = 1.0
    vol[:, 12:18, 12:20] = 1.0
    expl = SegRISE(ThresholdNet(2)).explain(vol, roi="1:3,0:10,0:10", n_masks=12, grid=3)
    inputs = evaluation_inputs(expl, slice_index=1)
    assert inputs == {"source": expl, "slice_index": 1}
    res = faithfulness(expl, model=ThresholdNet(2), slice_index=1, steps=4, n_random=0)
    assert res.deletion.scores("dice")[0] == pytest.approx(1.0)
    window = expl.params["crop_window"][1:]  # the slice's part of the crop window
    assert (res.window, res.n_voxels) == (window, np.prod([b - a for a, b in window]))
    assert res.slice_index == 1 and res.to_dict()["slice_index"] == 1
    assert f"slice 1; over the {res.n_voxels} voxels of the crop window" in summary_html(res)
    # the same curves from the slice's arrays by hand
    inside = np.zeros((20, 22), bool)
    inside[0:10, 0:10] = True
    box = tuple(slice(a, b) for a, b in window)
    by_hand = faithfulness(expl.map[1], model=ThresholdNet(2), image=expl.image[:, 1],
                           roi=inside, window=box, steps=4, n_random=0)  # fmt: skip
    np.testing.assert_array_equal(by_hand.deletion.scores("dice"), res.deletion.scores("dice"))
    volume_roi = faithfulness(expl, model=ThresholdNet(2), slice_index=1, roi=expl.roi,
                              reference=expl.reference, steps=4, n_random=0)  # fmt: skip
    np.testing.assert_array_equal(volume_roi.deletion.scores("dice"), res.deletion.scores("dice"))
    whole = faithfulness(expl, model=ThresholdNet(2), slice_index=1, window="full", steps=4,
                         n_random=0)  # fmt: skip
    assert (whole.window, whole.n_voxels) == (None, 20 * 22)
    with pytest.raises(ValueError, match=r"with slice_index= one of the explained slices \(1, 2\)"):
        faithfulness(expl, model=ThresholdNet(2))
    with pytest.raises(ValueError, match="slice 0 was not explained"):
        faithfulness(expl, model=ThresholdNet(2), slice_index=0)
    with pytest.raises(ValueError, match="slice 0 was not explained: show one of the"):
        evaluation_inputs(expl, slice_index=0)


def test_a_flat_map_is_said_to_order_nothing():
    img, _ = two_blocks(2)
    with pytest.warns(
        UserWarning, match=r"the map is flat over the voxels the curves order \(every value 0\)"
    ):
        faithfulness(np.zeros(img.shape), model=BoxNet(2), image=img, steps=4, n_random=0)
