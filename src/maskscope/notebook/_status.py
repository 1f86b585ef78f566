"""What the status line, the time label and the progress bar say (plain text, no widgets)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..explanation import Explanation
from ..wording import for_gui
from ._runner import BackgroundRun

__all__ = [
    "Status",
    "cannot_start",
    "describe_input",
    "finished",
    "progress_text",
    "running",
    "seconds",
    "status_html",
]

GRAY, GREEN, ORANGE, RED = "#444", "#080", "#a60", "#c00"


@dataclass(frozen=True)
class Status:
    """A status message, its colour, and the progress bar style that goes with it."""

    text: str
    color: str = GRAY
    bar_style: str = ""


def seconds(t: float) -> str:
    """``"4.2 s"``, or ``"3 min 05 s"`` from two minutes on."""
    return f"{t:.1f} s" if t < 120 else f"{int(t // 60)} min {int(t % 60):02d} s"


def status_html(status: Status) -> str:
    """The message as escaped, coloured HTML."""
    return f'<span style="color:{status.color}">{html.escape(status.text)}</span>'


def progress_text(snap: Explanation) -> str:
    """Elapsed time and, while running, an estimate of the time left."""
    text = f"{seconds(snap.elapsed)} elapsed"
    if not snap.done and 0 < snap.n_done < snap.n_total:
        left = snap.elapsed * (snap.n_total - snap.n_done) / snap.n_done
        text += f" · ~{seconds(left)} left"
    return text


def running(snap: Explanation) -> Status:
    """While a run goes on."""
    rel = "" if snap.reliability is None else f" · reliability {snap.reliability:.2f}"
    return Status(f"{snap.method}: {snap.n_done}/{snap.n_total} perturbations{rel}")


def cannot_start(method: str, exc: BaseException) -> Status:
    """Bad parameters or inputs, found before the run started."""
    return Status(
        f"Cannot start {method}: {type(exc).__name__}: {for_gui(str(exc))}", RED, "danger"
    )


def finished(method: str, run: BackgroundRun) -> Status:
    """How a run ended: failed, cancelled, stopped early or done."""
    snap, err = run.latest, run.error
    if err is not None:
        where = "" if snap is None else f" at {snap.n_done}/{snap.n_total}"
        return Status(f"{method} failed{where}: {type(err).__name__}: {err}", RED, "danger")
    if snap is None:
        return Status(f"{method} cancelled before the first chunk", ORANGE, "warning")
    if run.cancelled:
        trust = "" if snap.reliability is None else f" ({snap.reliability_text()})"
        return Status(
            f"{snap.method} cancelled at {snap.n_done}/{snap.n_total} perturbations after "
            f"{seconds(snap.elapsed)}; the partial map is kept{trust}",
            ORANGE,
            "warning",
        )
    early = ", stopped early: reliability target reached" if snap.stopped_early else ""
    trust = "" if snap.reliability is None else f"; {snap.reliability_text()}"
    return Status(
        f"{snap.method} done: {snap.n_done} perturbations in {seconds(snap.elapsed)}{early}{trust}",
        GREEN,
        "success",
    )


def describe_input(spatial: tuple[int, ...], channels: int, sliced: bool) -> Status:
    """The message shown before the first run."""
    shape = " × ".join(map(str, spatial))
    what = "volume" if len(spatial) == 3 else "image"
    how = ", explained slice by slice by a 2D model" if sliced else ""
    plural = "s" if channels > 1 else ""
    return Status(f"Ready: {what} {shape}, {channels} channel{plural}{how}. Press Run.")
