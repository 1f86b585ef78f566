"""Markdown tables of the benchmark reports."""

from __future__ import annotations

import math


def fmt(v, digits: int = 2) -> str:
    """A table cell: floats with ``digits`` decimals, None and nan as a dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A markdown table; ``align`` has one letter per column (``l``, ``r``, ``c``)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
