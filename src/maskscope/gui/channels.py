"""The per-channel ranking both GUIs show under a run with a map per input channel.

A run with ``per_channel=True`` has ``extras["channel_importance"]``: each channel map's
mean over the explained segment minus its mean over the image. :func:`channel_ranking`
orders the channels by it (the most important first), and :func:`ranking_html` makes the
table napari's panel and the notebook's output area show (Qt labels and Jupyter both
render this HTML).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["IMPORTANCE_HELP", "ChannelRank", "channel_ranking", "ranking_html", "ranking_text"]

#: What the importance column holds.
IMPORTANCE_HELP = (
    "importance: the channel map's mean over the explained segment minus its mean over the image"
)


@dataclass(frozen=True)
class ChannelRank:
    """One row of the ranking: a channel's place, index and importance."""

    rank: int
    channel: int
    importance: float


def channel_ranking(snap: Any) -> list[ChannelRank]:
    """The channels of a snapshot by importance, the largest first (ties: lower index first).

    An empty list when the snapshot has no per-channel maps (or is None).
    """
    importance = getattr(snap, "extras", {}).get("channel_importance")
    if importance is None:
        return []
    values = np.asarray(importance, dtype=float).reshape(-1)
    order = np.argsort(-values, kind="stable")
    return [ChannelRank(i + 1, int(c), float(values[c])) for i, c in enumerate(order)]


def ranking_text(rows: list[ChannelRank]) -> str:
    """One line: ``channels by importance: 2 (+0.047), 0 (-0.0012), …`` (empty for no rows)."""
    if not rows:
        return ""
    return "channels by importance: " + ", ".join(
        f"{r.channel} ({r.importance:+.3g})" for r in rows
    )


def ranking_html(rows: list[ChannelRank], *, names: list[str] | None = None) -> str:
    """The ranking as an HTML table: rank, channel, importance (empty for no rows).

    Parameters
    ----------
    rows
        From :func:`channel_ranking`.
    names
        A name per channel index (shown beside the index), or None.
    """
    if not rows:
        return ""
    cell = 'style="padding: 1px 10px; text-align: {}"'
    head = "".join(
        f"<th {cell.format(a)}>{t}</th>"
        for t, a in (("rank", "right"), ("channel", "left"), ("importance", "right"))
    )
    body = []
    for r in rows:
        name = f"{r.channel}"
        if names is not None and r.channel < len(names):
            name += f" ({html.escape(str(names[r.channel]))})"
        body.append(
            f"<tr><td {cell.format('right')}>{r.rank}</td><td {cell.format('left')}>{name}</td>"
            f"<td {cell.format('right')}>{r.importance:+.4g}</td></tr>"
        )
    return (
        f'<div class="maskscope-channels" title="{IMPORTANCE_HELP}"><b>channels by '
        f"importance</b><table><tr>{head}</tr>{''.join(body)}</table></div>"
    )
