"""Server-rendered SVG charts: a load curve (kW over time) as inline markup.

No JavaScript and nothing fetched from another host: the page carries the whole chart.
The SVG scales with its container through its ``viewBox`` (readable on a phone), says what
it shows in ``<title>``/``<desc>`` for screen readers, and the page puts a data table under
it as the accessible fallback.

Geometry: the plot area is ``[MARGIN_LEFT, WIDTH - MARGIN_RIGHT]`` by
``[MARGIN_TOP, HEIGHT - MARGIN_BOTTOM]`` in viewBox units. Time maps linearly from the
chart's start to its end (real elapsed time, so a DST day is 23 or 25 hours wide); kW maps
linearly from ``y_min`` (0, or below 0 when a value is negative) at the bottom to
``y_max`` (a round number at or above the largest value) at the top.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
HEIGHT = 320
MARGIN_LEFT = 56
MARGIN_RIGHT = 16
MARGIN_TOP = 28
MARGIN_BOTTOM = 44

EVENT_FILL = "#f4c77c"
ADJUSTMENT_COLOUR = "#5b6575"

Point = tuple[dt.datetime, float | None]


@dataclasses.dataclass(frozen=True)
class Series:
    """One line: a label for the legend, its points (aware datetime, kW or None for a
    missing value; a None breaks the line), and how to stroke it."""

    label: str
    points: Sequence[Point]
    colour: str
    dash: str = ""
    key: str = ""


@dataclasses.dataclass(frozen=True)
class Scale:
    """Maps aware datetimes and kW to viewBox coordinates (see the module docstring)."""

    start: dt.datetime
    end: dt.datetime
    y_min: float
    y_max: float

    @property
    def plot_width(self) -> float:
        return WIDTH - MARGIN_LEFT - MARGIN_RIGHT

    @property
    def plot_height(self) -> float:
        return HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(self, at: dt.datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return MARGIN_LEFT + (at - self.start).total_seconds() / span * self.plot_width

    def y(self, kw: float) -> float:
        return MARGIN_TOP + (self.y_max - kw) / (self.y_max - self.y_min) * self.plot_height


def nice_ceiling(value: float) -> tuple[float, float]:
    """The smallest "round" axis top >= ``value`` (> 0) and its tick step, kW.

    Steps are 1, 2, 2.5 or 5 times a power of ten, chosen for 4 to 6 ticks.
    """
    if value <= 0:
        return 1.0, 0.25
    magnitude = 10 ** math.floor(math.log10(value / 5))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if value / step <= 5:
            return math.ceil(value / step - 1e-9) * step, step
    return math.ceil(value / (10 * magnitude)) * 10 * magnitude, 10 * magnitude  # pragma: no cover


def load_chart(
    *,
    series: Sequence[Series],
    start: dt.datetime,
    end: dt.datetime,
    zone: ZoneInfo,
    title: str,
    description: str,
    event_window: tuple[dt.datetime, dt.datetime] | None = None,
    adjustment_window: tuple[dt.datetime, dt.datetime] | None = None,
    chart_id: str = "load-chart",
) -> SafeString:
    """An inline ``<svg>`` of ``series`` (kW) from ``start`` to ``end`` (aware datetimes).

    ``event_window`` is shaded (a ``rect`` with class ``event-window``);
    ``adjustment_window`` is marked with a bar under the curves between two dashed lines
    (a ``g`` with class ``adjustment-window``). Each series is a ``g`` with class
    ``series`` holding one ``polyline`` per unbroken run of values. Time labels are local
    wall-clock times in ``zone``; the y axis is kW. Every text is escaped.
    """
    values = [kw for line in series for _, kw in line.points if kw is not None]
    top, step = nice_ceiling(max(values, default=0.0))
    low = min(values, default=0.0)
    bottom = 0.0 if low >= 0 else -nice_ceiling(-low)[0]
    scale = Scale(start=start, end=end, y_min=bottom, y_max=top)
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{title_id} {desc_id}" class="load-chart" '
        f'id="{escape(chart_id)}" width="100%" preserveAspectRatio="xMidYMid meet" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(description)}</desc>',
    ]
    plot_top, plot_bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    if event_window is not None:
        left, right = _clip(scale, *event_window)
        parts.append(
            f'<rect class="event-window" x="{_f(left)}" y="{_f(plot_top)}" '
            f'width="{_f(right - left)}" height="{_f(plot_bottom - plot_top)}" '
            f'fill="{EVENT_FILL}" fill-opacity="0.35"><title>Event {_span(event_window, zone)}'
            "</title></rect>"
        )
    parts += _y_axis(scale, step)
    parts += _x_axis(scale, zone)
    if adjustment_window is not None:
        left, right = _clip(scale, *adjustment_window)
        parts.append(
            f'<g class="adjustment-window" data-start="{_f(left)}" data-end="{_f(right)}">'
            f"<title>Adjustment window {_span(adjustment_window, zone)}</title>"
            f'<line x1="{_f(left)}" y1="{_f(plot_top)}" x2="{_f(left)}" y2="{_f(plot_bottom)}" '
            f'stroke="{ADJUSTMENT_COLOUR}" stroke-dasharray="3 3"/>'
            f'<line x1="{_f(right)}" y1="{_f(plot_top)}" x2="{_f(right)}" '
            f'y2="{_f(plot_bottom)}" stroke="{ADJUSTMENT_COLOUR}" stroke-dasharray="3 3"/>'
            f'<rect x="{_f(left)}" y="{_f(plot_bottom - 6)}" width="{_f(right - left)}" '
            f'height="6" fill="{ADJUSTMENT_COLOUR}" fill-opacity="0.6"/>'
            f'<text x="{_f((left + right) / 2)}" y="{_f(plot_bottom - 9)}" '
            f'text-anchor="middle" fill="{ADJUSTMENT_COLOUR}">adjustment</text></g>'
        )
    for line in series:
        parts.append(_series(scale, line))
    parts += _legend(series, event_window is not None)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def _f(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _clip(scale: Scale, start: dt.datetime, end: dt.datetime) -> tuple[float, float]:
    low, high = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    return min(max(scale.x(start), low), high), min(max(scale.x(end), low), high)


def _span(window: tuple[dt.datetime, dt.datetime], zone: ZoneInfo) -> str:
    start, end = (moment.astimezone(zone) for moment in window)
    return f"{start:%H:%M}–{end:%H:%M} {start.tzname()}"


def _y_axis(scale: Scale, step: float) -> list[str]:
    parts = []
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    count = round((scale.y_max - scale.y_min) / step)
    for index in range(count + 1):
        kw = scale.y_min + index * step
        y = scale.y(kw)
        parts.append(
            f'<line class="grid" x1="{left}" y1="{_f(y)}" x2="{right}" y2="{_f(y)}" '
            f'stroke="#d9dee6" stroke-width="{1 if kw else 1.5}"/>'
            f'<text x="{left - 6}" y="{_f(y + 4)}" text-anchor="end" fill="#5b6575">'
            f"{_f(kw)}</text>"
        )
    parts.append(
        f'<text x="12" y="{_f(MARGIN_TOP + scale.plot_height / 2)}" fill="#5b6575" '
        f'text-anchor="middle" transform="rotate(-90 12 {_f(MARGIN_TOP + scale.plot_height / 2)})">'
        "kW</text>"
    )
    return parts


def _x_axis(scale: Scale, zone: ZoneInfo) -> list[str]:
    """Ticks at whole local hours (every 1, 2 or 3 hours by span), placed by real time."""
    hours = (scale.end - scale.start).total_seconds() / 3600
    every = 1 if hours <= 6 else 2 if hours <= 12 else 3
    bottom = HEIGHT - MARGIN_BOTTOM
    first = scale.start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    if first < scale.start:
        first += dt.timedelta(hours=1)
    parts = []
    moment = first
    while moment <= scale.end:
        local = moment.astimezone(zone)
        if local.minute == 0 and local.hour % every == 0:
            x = scale.x(moment)
            parts.append(
                f'<line x1="{_f(x)}" y1="{bottom}" x2="{_f(x)}" y2="{bottom + 4}" '
                f'stroke="#5b6575"/><text x="{_f(x)}" y="{bottom + 16}" text-anchor="middle" '
                f'fill="#5b6575">{local:%H:%M}</text>'
            )
        moment += dt.timedelta(hours=1)
    start_local = scale.start.astimezone(zone)
    parts.append(
        f'<text x="{_f(MARGIN_LEFT + scale.plot_width / 2)}" y="{HEIGHT - 8}" '
        f'text-anchor="middle" fill="#5b6575">Local time ({escape(start_local.tzname() or "")},'
        f" {start_local:%Y-%m-%d})</text>"
    )
    return parts


def _series(scale: Scale, line: Series) -> str:
    runs: list[list[str]] = [[]]
    for at, kw in line.points:
        if kw is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{_f(scale.x(at))},{_f(scale.y(kw))}")
    dash = f' stroke-dasharray="{escape(line.dash)}"' if line.dash else ""
    polylines = "".join(
        f'<polyline points="{" ".join(run)}" fill="none" stroke="{escape(line.colour)}" '
        f'stroke-width="2" stroke-linejoin="round"{dash}/>'
        for run in runs
        if run
    )
    key = f' data-series="{escape(line.key)}"' if line.key else ""
    return f'<g class="series"{key}><title>{escape(line.label)}</title>{polylines}</g>'


def _legend(series: Sequence[Series], has_event: bool) -> list[str]:
    parts, x = [], MARGIN_LEFT
    for line in series:
        dash = f' stroke-dasharray="{escape(line.dash)}"' if line.dash else ""
        parts.append(
            f'<line x1="{x}" y1="12" x2="{x + 18}" y2="12" stroke="{escape(line.colour)}" '
            f'stroke-width="2"{dash}/><text x="{x + 22}" y="16">{escape(line.label)}</text>'
        )
        x += 30 + 6.5 * len(line.label)
    if has_event:
        parts.append(
            f'<rect x="{_f(x)}" y="6" width="18" height="12" fill="{EVENT_FILL}" '
            f'fill-opacity="0.6"/><text x="{_f(x + 22)}" y="16">event</text>'
        )
    return parts
