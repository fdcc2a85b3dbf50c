"""The queue page's charts: runs submitted over the last day by status, and how long runs
waited between submission and start. Counted here, drawn as plain SVG shapes by the
template (no script, no chart library, nothing fetched): the shapes are classed, the
colours come from the served style sheet (the page's CSP allows no inline style). Every
number drawn is also in a table beside the chart, for a screen reader and for copying.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from qwex_remote.server.state import ServerState
from qwex_remote.server.store import now

HOURS = 24
"""The window: the last 24 hours (the current one included), one bar an hour, UTC."""
STATUSES = ["succeeded", "failed", "cancelled", "lost", "running", "queued", "pending"]
"""The stacking order, bottom up: final statuses first, what still goes on on top."""
WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP = 56, 24, 8
"""The plot's box in the SVG's own units: room on the left for the scale, below for hours."""


@dataclass
class Hour:
    """One hour of the window: runs submitted in it by their status now, and the waits of
    the runs that started in it (seconds from submission to start)."""

    start: datetime
    counts: dict[str, int] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)

    @property
    def submitted(self) -> int:
        return sum(self.counts.values())

    @property
    def median_wait(self) -> float | None:
        return statistics.median(self.waits) if self.waits else None

    @property
    def longest_wait(self) -> float | None:
        return max(self.waits) if self.waits else None


@dataclass(frozen=True)
class Shape:
    """A bar (or a tick of the longest wait: `height` 0) of a chart, with what it shows."""

    x: float
    y: float
    width: float
    height: float
    css: str
    label: str
    hour: str
    key: str
    value: float


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass
class Chart:
    """An SVG chart as the template draws it: shapes, the scale and the hours below."""

    id: str
    title: str
    desc: str
    shapes: list[Shape]
    scale: list[Tick]
    hours: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT


@dataclass
class Activity:
    start: datetime
    hours: list[Hour]
    runs: Chart
    waits: Chart
    statuses: list[str]
    """The statuses that occur in the window, in stacking order (the legend and table)."""


def _nice(most: float, steps: tuple[int, ...] = (1, 2, 5, 10), least: float = 0.0) -> float:
    """The scale's top: one of `steps` times a power of ten, at least `most` and `least`
    (and above 0)."""
    most = max(most, least)
    if most <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= most:
        power *= 10
    while power > most:
        power /= 10
    tops = (step * p for p in (power / 10, power, power * 10) for step in steps)
    return next(top for top in tops if top >= most)


COUNT_STEPS = (2, 4, 6, 8, 10)
"""A count's scale ends on an even number from 2 up: its middle mark is a whole run too."""


def seconds_text(value: float) -> str:
    """`0.25 s`, `4.2 s`, `42 s`, `3.5 min`, `2.1 h`: a wait, short enough for a chart's scale."""
    if value < 1:
        return f"{value:.2g} s"
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _plot() -> tuple[float, float, float]:
    """The width of one hour's column, and the plot's height and bottom, in SVG units."""
    return (WIDTH - LEFT) / HOURS, HEIGHT - BOTTOM - TOP, HEIGHT - BOTTOM


def _axes(
    hours: list[Hour], top: float, show: Callable[[float], str]
) -> tuple[list[Tick], list[Tick]]:
    """The scale on the left (0, half, top) and every hour's label below its column."""
    column, tall, base = _plot()
    scale = [Tick(base - tall * f, show(top * f)) for f in (0.0, 0.5, 1.0)]
    below = [Tick(LEFT + column * (i + 0.5), h.start.strftime("%H")) for i, h in enumerate(hours)]
    return scale, below


def _runs_chart(hours: list[Hour], statuses: list[str]) -> Chart:
    column, tall, base = _plot()
    top = _nice(max((h.submitted for h in hours), default=0), COUNT_STEPS, least=2)
    shapes = []
    for i, hour in enumerate(hours):
        y = base
        name = hour.start.strftime("%H:00")
        for status in statuses:
            count = hour.counts.get(status, 0)
            if not count:
                continue
            height = tall * count / top
            y -= height
            label = f"{name} UTC: {count} submitted, {status} now"
            shapes.append(
                Shape(
                    LEFT + column * i + 1,
                    y,
                    column - 2,
                    height,
                    f"bar status-{status}",
                    label,
                    name,
                    status,
                    count,
                )
            )
    scale, ticks = _axes(hours, top, lambda v: f"{v:g}")
    total = sum(h.submitted for h in hours)
    by_status = ", ".join(f"{sum(h.counts.get(s, 0) for h in hours)} {s}" for s in statuses)
    busiest = max(hours, key=lambda h: h.submitted)
    desc = f"{total} runs submitted in the last {HOURS} hours" + (
        f" ({by_status}); the most in one hour: {busiest.submitted}, at {busiest.start:%H:00} UTC."
        if total
        else "."
    )
    return Chart("chart-runs", "Runs submitted per hour, by status now", desc, shapes, scale, ticks)


def _waits_chart(hours: list[Hour]) -> Chart:
    column, tall, base = _plot()
    top = _nice(max((h.longest_wait or 0.0 for h in hours), default=0.0))
    shapes = []
    for i, hour in enumerate(hours):
        median, longest = hour.median_wait, hour.longest_wait
        if median is None or longest is None:
            continue
        name = hour.start.strftime("%H:00")
        x = LEFT + column * i + 1
        height = tall * median / top
        label = f"{name} UTC: {len(hour.waits)} started, median wait {seconds_text(median)}"
        shapes.append(
            Shape(x, base - height, column - 2, height, "bar wait", label, name, "median", median)
        )
        label = f"{name} UTC: longest wait {seconds_text(longest)}"
        shapes.append(
            Shape(
                x,
                base - tall * longest / top,
                column - 2,
                0,
                "tick wait-longest",
                label,
                name,
                "longest",
                longest,
            )
        )
    scale, ticks = _axes(hours, top, seconds_text)
    started = [w for h in hours for w in h.waits]
    desc = (
        f"{len(started)} runs started in the last {HOURS} hours; they waited "
        f"{seconds_text(statistics.median(started))} in the median, "
        f"{seconds_text(max(started))} at the longest."
        if started
        else f"No run started in the last {HOURS} hours."
    )
    return Chart(
        "chart-waits",
        "Queue wait (submitted to running) per hour started",
        desc,
        shapes,
        scale,
        ticks,
    )


def activity(state: ServerState, at: datetime | None = None) -> Activity:
    """The last `HOURS` hours of the server's runs, counted for the charts."""
    at = at or now()
    start = at.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    hours = [Hour(start + timedelta(hours=i)) for i in range(HOURS)]

    by_hour = {h.start.strftime("%H"): h for h in hours}
    counted, waited = state.store.hourly(start, start + timedelta(hours=HOURS))
    for name, status, count in counted:
        by_hour[name].counts[status] = count
    for name, seconds in waited:
        by_hour[name].waits.append(max(seconds, 0.0))
    seen = {s for h in hours for s in h.counts}
    statuses = [s for s in STATUSES if s in seen] + sorted(seen - set(STATUSES))
    return Activity(start, hours, _runs_chart(hours, statuses), _waits_chart(hours), statuses)
