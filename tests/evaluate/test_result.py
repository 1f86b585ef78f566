"""The result object: table, JSON and the PNG of the curves."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from maskscope import FaithfulnessResult, faithfulness
from maskscope.evaluate.plot import MAP_COLOUR, RANDOM_COLOUR
from tests.evaluate.cases import image2d, saliency_for
from tests.evaluate.reference import BoxNet


@pytest.fixture(scope="module")
def result() -> FaithfulnessResult:
    img = image2d()
    return faithfulness(saliency_for(img.shape), model=BoxNet(2), image=img, steps=6, n_random=2)


def test_to_dict_is_json_and_holds_the_curves(result, tmp_path):
    d = json.loads(json.dumps(result.to_dict()))
    assert (d["steps"], d["n_random"], d["substrate"], d["done"]) == (6, 2, "zero", True)
    assert set(d["curves"]) == {"deletion", "insertion", "random_deletion", "random_insertion"}
    dele = d["curves"]["deletion"]
    assert dele["fractions"] == result.deletion.fractions.tolist()
    assert dele["dice"]["curve"] == result.deletion.scores("dice").tolist()
    assert dele["probability"]["auc"] == result.auc("deletion", "probability")
    assert d["curves"]["random_insertion"]["dice"]["auc_std"] == result.random_insertion.auc_std()
    assert d["n_forward"] == 1 + 2 * (1 + 2) * 7  # two kinds, the map and two random orders


def test_table_lists_each_curve_and_score(result):
    lines = result.table().splitlines()
    assert lines[0].split() == ["curve", "score", "map", "AUC", "random", "AUC", "better?"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("deletion", "dice"),
        ("deletion", "probability"),
        ("insertion", "dice"),
        ("insertion", "probability"),
    ]
    for r in rows:
        auc, base = result.auc(r[0], r[1]), result.auc(r[0], r[1], random=True)
        assert float(r[2]) == pytest.approx(auc, abs=5e-5)
        assert float(r[3]) == pytest.approx(base, abs=5e-5)
        assert r[4] == "±"  # two random orders: their spread is shown
        better = auc < base if r[0] == "deletion" else auc > base
        assert r[-1] == ("yes" if better else "no")


def test_png_draws_both_curves_in_four_panels(result, tmp_path):
    data = result.to_png(tmp_path / "c.png", width=600)
    assert (tmp_path / "c.png").read_bytes() == data
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert img.shape[1] == 600 and img.shape[0] > 400
    is_map = (img == MAP_COLOUR).all(axis=2)
    is_random = (img == RANDOM_COLOUR).all(axis=2)
    h, w = img.shape[:2]
    for rows in (slice(40, h // 2), slice(h // 2, h)):
        for cols in (slice(0, w // 2), slice(w // 2, w)):
            assert is_map[rows, cols].sum() > 100 and is_random[rows, cols].sum() > 50
    assert result._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_partial_result_plots_and_reports_missing_aucs():
    img = image2d()
    res = faithfulness(
        saliency_for(img.shape),
        model=BoxNet(2),
        image=img,
        steps=6,
        batch_size=4,
        cancel=iter([0, 0, 1]).__next__,  # two model calls: the deletion curve
    )
    assert not res.done and np.isnan(res.auc("insertion"))
    assert res.to_dict()["curves"]["insertion"]["dice"]["auc"] is None
    assert "partial" in repr(res)
    Image.open(io.BytesIO(res.to_png())).verify()
    with pytest.raises(ValueError, match="score must be one of \\['dice', 'probability'\\]"):
        res.deletion.scores("iou")
    with pytest.raises(ValueError, match="kind must be 'deletion' or 'insertion', got 'del'"):
        res.auc("del")
