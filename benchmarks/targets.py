"""The benchmark targets, as one table, and how each is read from a run's results.

Each :class:`Target` row names a measured figure (a key of ``FIGURES``), how it compares
with its bound and which issue set it. A figure function reads ``results.json`` and yields
one measurement per matching result row (none when the part did not run), so one target row
can check several runs (every snapshot, every peer). :func:`check_rows` gives the report's
"Targets" table.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from common import LABELS, OURS_BATCH1, PEERS, UNBATCHED, by, side_summary

#: A measurement: (fields for the target's name, value compared with the bound, text).
Measured = tuple[dict, float | None, str]

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """One pass/fail target of the benchmark suite.

    Attributes
    ----------
    name : str
        Row text; ``{bound}`` and the figure's fields are filled in (``str.format``).
    figure : str
        Key of ``FIGURES``: the function that reads the measured value(s).
    comparison : str
        ``"<="``, ``"<"`` or ``">="``: measured ``comparison`` bound passes.
    bound : float
        The limit.
    issue : int
        The issue that set the target.
    where : dict
        Which results the figure reads (model, method, peer, …).
    """

    name: str
    figure: str
    comparison: str
    bound: float
    issue: int
    where: dict = field(default_factory=dict)


def _overhead_ratio(res: dict, model: str, method: str) -> Iterator[Measured]:
    x = by(res["overhead"], model=model, method=method)
    if x:
        seg = f" (segment {x[0]['segment_px']} px)" if method == "PixelRISE-max" else ""
        yield {"seg": seg}, x[0]["ratio"], f"{x[0]['ratio']:.3f}×"


def _engine_ms(res: dict, method: str) -> Iterator[Measured]:
    x = by(res["overhead"], model="1x1", method=method)
    if x:
        ms = x[0]["engine_ms_per_mask"]
        yield {}, ms, f"{ms:.3f} ms"


def _speed_up(res: dict, model: str, peer: str, method: str) -> Iterator[Measured]:
    side = side_summary(res["side"])
    theirs, ours = side.get((peer, model)), side.get((f"maskscope:{method}", model))
    if theirs and ours:
        ratio = theirs["wall"] / ours["wall"]
        yield {"what": f" ({method}, {model})"}, ratio, f"{ratio:.2f}×"
    elif ours:
        yield {"what": f" ({model})"}, None, "peer did not run"


def _peak_vs_peers(res: dict, model: str) -> Iterator[Measured]:
    """ours / theirs peak RSS for every peer and its methods (and batch 1 where it is)."""
    side = side_summary(res["side"])
    for peer, mine in PEERS.items():
        theirs = side.get((peer, model))
        for label in mine:
            variants = [label]
            if peer in UNBATCHED and label in OURS_BATCH1:
                variants.append(f"{label}@1")
            for v in variants:
                ours = side.get((f"maskscope:{v}", model))
                if theirs and ours:
                    batch = "batch 1" if v.endswith("@1") else "batched"
                    text = f"{ours['peak_mb']:.0f} vs {theirs['peak_mb']:.0f} MB"
                    fields = {"peer": peer, "what": f"{label} {batch}, {model}"}
                    yield fields, ours["peak_mb"] / theirs["peak_mb"], text


def _flat_in_n(res: dict, method: str) -> Iterator[Measured]:
    xs = {x["n"]: x for x in by(res["n_scaling"], method=method)}
    if 500 in xs and 8000 in xs:
        hi, lo = xs[8000]["peak_mb"], xs[500]["peak_mb"]
        yield {}, hi / lo, f"{hi:.0f} / {lo:.0f} MB = {hi / lo:.3f}"


def _volume_peak(res: dict) -> Iterator[Measured]:
    for x in res["size"]:
        if x.get("target_check"):
            fields = {"size": x["size"], "batch": x["batch_size"]}
            yield fields, x["peak_mb"], f"{x['peak_mb']:.0f} MB peak RSS"


def _first_snapshot(res: dict) -> Iterator[Measured]:
    """Masks in the first snapshot, in chunks (batch sizes)."""
    for x in res["snapshot"]:
        fields = {"method": x["method"], "model": x["model"], "batch": x["batch_size"]}
        text = (
            f"{x['first_n_done']} masks, {x['first_s']:.2f} s "
            f"(1 chunk: {x['one_chunk_floor_s']:.2f} s)"
        )
        yield fields, x["first_n_done"] / x["batch_size"], text


def _default_batch(res: dict, model: str) -> Iterator[Measured]:
    """Each method's time per evaluation at default settings / the best batch's forward."""
    for run in res.get("floor") or []:
        for x in by(run["methods"], model=model):
            yield {"method": x["method"]}, x["ratio"], f"{x['ratio']:.3f}×"


def _at_the_floor(res: dict) -> Iterator[Measured]:
    """maskscope's speed-up over each peer / 0.95 × (the peer's wall ÷ the best-batch floor)."""
    for run in res.get("floor") or []:
        for x in run["peers"]:
            if x.get("speed_up") is None:
                yield {"peer": x["peer"], "method": x["method"]}, None, "did not run"
                continue
            text = f"{x['speed_up']:.2f}× (bound {x['bound']:.2f}×)"
            yield {"peer": x["peer"], "method": x["method"]}, x["speed_up"] / x["bound"], text


FIGURES: dict[str, Callable[..., Iterator[Measured]]] = {
    "overhead ratio": _overhead_ratio,
    "engine ms per mask": _engine_ms,
    "speed-up over a peer": _speed_up,
    "peak RSS ours / a peer's": _peak_vs_peers,
    "peak RSS N=8000 / N=500": _flat_in_n,
    "3D peak RSS (MB)": _volume_peak,
    "chunks before the first snapshot": _first_snapshot,
    "default / best-batch time per evaluation": _default_batch,
    "speed-up / its floor bound": _at_the_floor,
}

_DIMS = {"unet2d": "240² U-Net", "unet3d": "64×96×96 U-Net"}
_FAST = ("RISE", "SegRISE", "PixelRISE-mean")
_VS_PEERS = (
    ("interpret-segmentation:RISE", 3.0),
    ("muppet:SegRISE", 3.0),
    ("interpret-segmentation:HDM", 2.0),
)


def _peer_rows(model: str) -> list[Target]:
    rows = [
        Target(
            f"≥ {need:g}× faster than {peer}{{what}}",
            "speed-up over a peer",
            ">=",
            need,
            7,
            {"model": model, "peer": peer, "method": method},
        )
        for peer, need in _VS_PEERS
        for method in PEERS[peer]
    ]
    name = "lower peak RSS than {peer} ({what})"
    return [*rows, Target(name, "peak RSS ours / a peer's", "<", 1.0, 7, {"model": model})]


#: Every target, in report order.
TARGETS: list[Target] = [
    *(
        Target(
            f"{method} wall ≤ {{bound:.2f}}× floor, {_DIMS[model]}{{seg}}",
            "overhead ratio",
            "<=",
            1.10 if method in _FAST else 1.25,
            7,
            {"model": model, "method": method},
        )
        for model in _DIMS
        for method in LABELS
    ),
    *(
        Target(
            f"{method} engine ≤ {{bound}} ms/mask (1×1 model, 240²)",
            "engine ms per mask",
            "<=",
            0.5 if method in _FAST else 2.0,
            7,
            {"method": method},
        )
        for method in LABELS
    ),
    *_peer_rows("unet2d"),
    *_peer_rows("1x1"),
    *(
        Target(
            f"{method} peak RSS flat in N (8000 / 500 ≤ {{bound:.2f}}, 1×1 model)",
            "peak RSS N=8000 / N=500",
            "<=",
            1.10,
            7,
            {"method": method},
        )
        for method in ("SegRISE", "PixelRISE-max")
    ),
    Target(
        "SegRISE on {size}³ with the 3D U-Net < 2 GB (batch {batch})",
        "3D peak RSS (MB)",
        "<",
        2048,
        7,
    ),
    Target(
        "first snapshot after ≤ 1 chunk: {method} ({model}, batch {batch})",
        "chunks before the first snapshot",
        "<=",
        1.0,
        7,
    ),
    *(
        Target(
            f"{{method}} at default settings ≤ {{bound:.2f}}× the best batch's forward, "
            f"{_DIMS[model]}",
            "default / best-batch time per evaluation",
            "<=",
            1.05,
            17,
            {"model": model},
        )
        for model in _DIMS
    ),
    Target(
        "{method} vs {peer}: speed-up ≥ 0.95 × (peer wall ÷ best-batch floor)",
        "speed-up / its floor bound",
        ">=",
        1.0,
        17,
    ),
]


def check(target: str, measured: str, ok: bool | None) -> list:
    """One row of the report's Targets table."""
    return [target, measured, "–" if ok is None else ("**pass**" if ok else "**FAIL**")]


def check_rows(res: dict, targets: list[Target] = TARGETS) -> list[list]:
    """[target, measured, result] for every measurement of every target that ran."""
    rows = []
    for t in targets:
        for fields, value, text in FIGURES[t.figure](res, **t.where):
            ok = None if value is None else COMPARE[t.comparison](value, t.bound)
            rows.append(check(t.name.format(**{**t.where, **fields, "bound": t.bound}), text, ok))
    return rows
