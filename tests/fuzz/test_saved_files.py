"""Saved explanations: damaged or tampered files fail at load, naming the file and entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskscope import Explanation, SegRISE


@pytest.fixture
def saved(tmp_path: Path, net2d, square2d) -> dict[str, np.ndarray]:
    expl = SegRISE(net2d).explain(square2d, n_masks=8, grid=4, seed=1)
    with np.load(expl.save(tmp_path / "good.npz")) as z:
        return {k: z[k] for k in z.files}


def _meta(entries: dict, **changes) -> np.ndarray:
    meta = json.loads(str(entries["meta"]))
    meta.update(changes)
    return np.array(json.dumps(meta))


TAMPERINGS = {
    "map as text": (lambda e: {**e, "map": e["map"].astype(str)}, r"'map' must hold floats"),
    "map 1D": (lambda e: {**e, "map": e["map"].ravel()}, r"'map' must be \(H, W\)"),
    "reference float": (
        lambda e: {**e, "reference": e["reference"].astype(np.float32)},
        r"'reference' must hold integer labels, got dtype float32",
    ),
    "stderr shape": (
        lambda e: {**e, "stderr": e["stderr"][:3]},
        r"'stderr' must have the map's shape \(16, 16\), got \(3, 16\)",
    ),
    "image shape": (lambda e: {**e, "image": e["image"][0]}, r"'image' must be \(C, \*"),
    "no map": (lambda e: {k: v for k, v in e.items() if k != "map"}, r"missing 'map'"),
    "no meta": (lambda e: {k: v for k, v in e.items() if k != "meta"}, r"missing 'meta'"),
    "meta not JSON": (lambda e: {**e, "meta": np.array("{oops")}, r"'meta' is not valid JSON"),
    "meta a list": (lambda e: {**e, "meta": np.array("[1]")}, r"'meta' must be a JSON object"),
    "meta bytes": (lambda e: {**e, "meta": np.array(b"{}")}, r"'meta' must be a JSON string"),
    "n_done text": (
        lambda e: {**e, "meta": _meta(e, n_done="12")},
        r"'meta.n_done' must be an integer, got '12'",
    ),
    "done int": (lambda e: {**e, "meta": _meta(e, done=1)}, r"'meta.done' must be true or false"),
    "spacing length": (
        lambda e: {**e, "meta": _meta(e, voxel_spacing=[1, 1, 1])},
        r"'meta.voxel_spacing' must have 2 values",
    ),
    "extra as text": (
        lambda e: {**e, "extra__mean": np.array(["a", "b"])},
        r"'extra__mean' must hold numbers, got dtype <U1",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERINGS))
def test_tampered_file_names_file_and_entry(tmp_path: Path, saved: dict, case: str) -> None:
    change, message = TAMPERINGS[case]
    path = tmp_path / "tampered.npz"
    np.savez(path, **change(saved))
    with pytest.raises(ValueError, match=message) as info:
        Explanation.load(path)
    assert str(path) in str(info.value)


def test_object_array_is_refused_not_unpickled(tmp_path: Path, saved: dict) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, **{**saved, "extra__evil": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match=r"objects\.npz: entry 'extra__evil' cannot be read "):
        Explanation.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip", r"not a readable \.npz file"), (None, "no such file")],
)
def test_unreadable_or_missing_file(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "broken.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        Explanation.load(path)
    assert "broken.npz" in str(info.value)


def test_a_single_npy_array_is_not_an_explanation(tmp_path: Path) -> None:
    path = tmp_path / "map.npy"
    np.save(path, np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"map\.npy: not a maskscope explanation"):
        Explanation.load(path)


def test_untampered_file_still_loads(tmp_path: Path, saved: dict) -> None:
    path = tmp_path / "copy.npz"
    np.savez(path, **saved)
    back = Explanation.load(path)
    np.testing.assert_array_equal(back.map, saved["map"])
