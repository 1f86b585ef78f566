"""What the GUIs say about a run: durations, progress, how it ended, why it failed.

Plain text only (the notebook colours it, napari shows it in a label and a notification).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from .. import Explanation
from ..wording import failure_line, for_gui

__all__ = [
    "Status",
    "cannot_start",
    "check_rate",
    "crop_note",
    "describe_input",
    "error_line",
    "finished",
    "format_duration",
    "progress_text",
    "running",
    "status_html",
    "time_left",
    "time_text",
]

GRAY, GREEN, ORANGE, RED = "#444", "#080", "#a60", "#c00"


def check_rate(max_rate: float) -> float:
    """``max_rate`` (display updates per second) as a float; ``ValueError`` unless > 0."""
    if not isinstance(max_rate, int | float) or isinstance(max_rate, bool) or max_rate <= 0:
        raise ValueError(f"max_rate must be > 0 updates per second, got {max_rate!r}")
    return float(max_rate)


def format_duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def time_left(snap: Explanation) -> float | None:
    """Seconds left at the rate so far, or None when done or nothing is done yet."""
    if snap.done or not 0 < snap.n_done < snap.n_total:
        return None
    return snap.elapsed * (snap.n_total - snap.n_done) / snap.n_done


def _trust(snap: Explanation, before: str) -> str:
    if snap.reliability is not None:
        return f"{before}{snap.reliability_text()}"
    if snap.done and (snap.method != "HDM" or not snap.map.any()):  # why there is no figure
        return f"{before}{for_gui(snap.reliability_text())}"
    note = snap.coverage_text()
    return "" if note is None else f"{before}{for_gui(note)}"


def progress_text(snap: Explanation, *, cancelled: bool = False) -> str:
    """One line on a run's progress: done / total, elapsed, and time left or the outcome."""
    count = f"{snap.n_done}/{snap.n_total}"
    took = format_duration(snap.elapsed)
    if snap.done:
        if snap.stopped_early:
            return f"stopped early (reliability target reached) after {count} in {took}" + _trust(
                snap, " · "
            )
        return f"done: {count} in {took}{_trust(snap, ' · ')}"
    if cancelled:
        return f"cancelled at {count} after {took}: partial map kept{_trust(snap, ' · ')}"
    rel = "" if snap.reliability is None else f" · reliability {snap.reliability:.2f}"
    left = time_left(snap)
    if snap.n_done <= 0 or left is None:
        return f"{count} · {took}{rel}"
    return f"{count} · {took}{rel} · about {format_duration(left)} left"


def time_text(snap: Explanation, *, running: bool = True) -> str:
    """Elapsed time and, while ``running``, an estimate of the time left.

    ``running=False`` for a run that ended (a cancelled or failed run's last snapshot is
    not done, but nothing is left to wait for).
    """
    left = time_left(snap) if running else None
    more = "" if left is None else f" · ~{format_duration(left)} left"
    return f"{format_duration(snap.elapsed)} elapsed{more}"


def error_line(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason for a failure, fit for a notification.

    The same text as the command line prints (:func:`maskscope.wording.failure_line`),
    with form field labels instead of flags.
    """
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    name = type(exc).__name__
    if "OutOfMemoryError" in name or isinstance(exc, MemoryError):
        return (
            f"out of memory ({first or name}): lower the batch size, the number of slices "
            "or the image size, or use another device"
        )
    line = failure_line(exc, frontend="gui")
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class Status:
    """A status message, its colour, and the progress bar style that goes with it."""

    text: str
    color: str = GRAY
    bar_style: str = ""


def status_html(status: Status) -> str:
    """The message as escaped, coloured HTML."""
    return f'<span style="color:{status.color}">{html.escape(status.text)}</span>'


def running(snap: Explanation) -> Status:
    """While a run goes on."""
    rel = "" if snap.reliability is None else f" · reliability {snap.reliability:.2f}"
    return Status(f"{snap.method}: {snap.n_done}/{snap.n_total} perturbations{rel}")


def cannot_start(method: str, exc: BaseException) -> Status:
    """Bad parameters or inputs, found before the run started."""
    return Status(f"Cannot start {method}: {error_line(exc)}", RED, "danger")


def crop_note(snap: Explanation) -> str:
    """What an ROI run's crop did, when the user should know: skipped, or a margin given
    that leaves the map off the whole-image map; else ``""``."""
    from ..methods._crop_check import MARGIN_TOLERANCE

    params = snap.params
    if params.get("crop_skipped") and params.get("crop") not in (False, None):
        return f"; not cropped: {params['crop_skipped']}"
    difference = params.get("crop_margin_difference")
    if isinstance(difference, int | float) and difference > MARGIN_TOLERANCE:
        return (
            f"; the crop margin is too small for this model (in the ROI its outputs differ "
            f"from the whole image's by up to {difference:.3g}): the map is not the "
            "whole-image map, give a larger margin or crop to the region"
        )
    return ""


def finished(
    method: str, snap: Explanation | None, error: BaseException | None, cancelled: bool
) -> Status:
    """How a run ended: failed, cancelled, stopped early or done."""
    if error is not None:
        where = "" if snap is None else f" at {snap.n_done}/{snap.n_total}"
        kept = ""
        if snap is not None and snap.n_done > 0:
            kept = f"; the map shown is the partial one of {snap.n_done} perturbations"
        return Status(f"{method} failed{where}: {error_line(error)}{kept}", RED, "danger")
    if snap is None:
        return Status(f"{method} cancelled before the first chunk", ORANGE, "warning")
    took = format_duration(snap.elapsed)
    if cancelled:
        return Status(
            f"{snap.method} cancelled at {snap.n_done}/{snap.n_total} perturbations after "
            f"{took}; the partial map is kept{_trust(snap, ' (')}"
            + ("" if snap.reliability is None else ")"),
            ORANGE,
            "warning",
        )
    early = ", stopped early: reliability target reached" if snap.stopped_early else ""
    note = crop_note(snap)
    return Status(
        f"{snap.method} done: {snap.n_done} perturbations in {took}{early}"
        f"{_trust(snap, '; ')}{note}",
        ORANGE if "too small" in note else GREEN,
        "warning" if "too small" in note else "success",
    )


def describe_input(spatial: tuple[int, ...], channels: int, sliced: bool) -> Status:
    """The message shown before the first run."""
    shape = " × ".join(map(str, spatial))
    what = "volume" if len(spatial) == 3 else "image"
    how = ", explained slice by slice by a 2D model" if sliced else ""
    plural = "s" if channels > 1 else ""
    return Status(f"Ready: {what} {shape}, {channels} channel{plural}{how}. Press Run.")
