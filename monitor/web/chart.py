"""The casualty chart of one side, drawn on the server as SVG.

Running totals are lines with filled dots in the upper panel; increments (a report of "14
killed", or the "rose by 36" inside a cumulative report) are thin bars in a lane of their own
below it, on their own scale, so the two are never read as one series and a "+36" beside a
total of 963 is still visible. Only some totals have their figure written (the first, the last,
and new figures with room), so a long series does not bury the chart in numbers. Missing and
captured figures are not plotted (they count people, not deaths or wounds); the watch page lists
them in a table of their own. Every mark carries a ``<title>``: the browser shows it on hover
with no script. Colours are presentation attributes and classes, never ``style=``, so the page's
Content-Security-Policy (no inline styles) does not strip them. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from monitor.web.views import Point, Series, safe_url

WIDTH = 720
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 16, 28
TOTALS_H, LANE_H, LANE_GAP = 150, 56, 14  # heights: running totals, increments lane
LABEL_GAP = 90  # pixels between two written figures of one series
DENSE = 60  # marks in a series beyond which they are drawn smaller
COLOURS = {
    ("military", "killed"): "#b2182b",
    ("military", "wounded"): "#ef8a62",
    ("civilian", "killed"): "#2166ac",
    ("civilian", "wounded"): "#67a9cf",
    ("unknown", "killed"): "#4d4d4d",
    ("unknown", "wounded"): "#999999",
}
GRID = 5  # horizontal grid lines above the axis
QUALIFIERS = {"at_least": "≥", "about": "~"}


def _nice_top(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten), so that
    its fifths, the grid lines, are round too."""
    top = max(value, 1)
    power = 1
    while power * 10 <= top:
        power *= 10
    for step in (1, 2, 5, 10):
        if top <= step * power:
            return int(step * power)
    return top  # unreachable: 10 * power > top


def time_span(sides: Sequence[Sequence[Series]]) -> tuple[datetime, datetime]:
    """The time axis shared by every side's chart, padded when all reports share one moment."""
    times = [p.at for series in sides for s in series for p in (*s.totals, *s.increments)]
    start, end = min(times), max(times)
    if end - start < timedelta(hours=1):
        start, end = start - timedelta(days=1), end + timedelta(days=1)
    pad = (end - start) * 0.04  # keep the first and last marks off the axes
    return start - pad, end + pad


def _point_title(s: Series, p: Point) -> str:
    what = "total" if p.kind == "total" else "reported increment"
    figure = f"{QUALIFIERS.get(p.qualifier, '')}{p.count:,}"
    source = f", {p.outlet}" if p.outlet else ""
    return f"{s.label}: {figure} ({what}) on {p.at:%Y-%m-%d %H:%M}{source}\n{p.quote}"


def _link(url: str, inner: str) -> str:
    href = safe_url(url)
    if not href:
        return inner
    return f'<a href="{escape(href)}">{inner}</a>'


def _labelled(points: Sequence[Point], x: Callable[[datetime], float]) -> set[int]:
    """Which totals get their figure written beside them: the first, the last, and each new
    figure at least ``LABEL_GAP`` pixels after the previous label, so labels never pile up."""
    chosen: set[int] = set()
    last_x: float | None = None
    last_count: int | None = None
    for i, p in enumerate(points):
        px = x(p.at)
        if last_x is None or (p.count != last_count and px - last_x >= LABEL_GAP):
            chosen.add(i)
            last_x, last_count = px, p.count
    final = len(points) - 1
    if points and final not in chosen and points[final].count != last_count:
        if last_x is not None and x(points[final].at) - last_x < LABEL_GAP:
            chosen.discard(max(chosen))  # too close: the latest figure matters most
        chosen.add(final)
    return chosen


def side_chart(side: str, series: Sequence[Series], span: tuple[datetime, datetime]) -> Markup:
    """One side's killed/wounded series over event time, as an ``<svg>`` element: running
    totals in the upper panel, increments as thin bars in a lane of their own below it."""
    start, end = span
    plot_w = WIDTH - LEFT - RIGHT
    has_totals = any(s.totals for s in series)
    has_increments = any(s.increments for s in series)
    totals_h = (TOTALS_H if has_increments else TOTALS_H + LANE_H) if has_totals else 0
    lane_h = (LANE_H if has_totals else TOTALS_H) if has_increments else 0
    lane_top = TOP + totals_h + (LANE_GAP if has_totals and has_increments else 0)
    height = lane_top + lane_h + BOTTOM
    seconds = (end - start).total_seconds()
    top = _nice_top(max((p.count for s in series for p in s.totals), default=1))
    lane_max = _nice_top(max((p.count for s in series for p in s.increments), default=1))
    most = max((len(s.totals) + len(s.increments) for s in series), default=0)
    dense = most > DENSE

    def x(at: datetime) -> float:
        return round(LEFT + plot_w * (at - start).total_seconds() / seconds, 1)

    def y(count: int) -> float:
        return round(TOP + totals_h * (1 - count / top), 1)

    def lane_y(count: int) -> float:
        return round(lane_top + lane_h * (1 - count / lane_max), 1)

    label = escape(f"Casualties reported for the {side} side over event time")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{label}" '
        f'data-side="{escape(side)}">',
        f"<title>{label}</title>",
    ]
    if has_totals:
        for i in range(GRID + 1):
            value = top * i / GRID
            gy = round(TOP + totals_h * (1 - i / GRID), 1)
            out.append(
                f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{gy}" y2="{gy}" '
                f'stroke="#ddd" stroke-width="1"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{gy + 4}" text-anchor="end" '
                f'font-size="11">{value:,.{0 if value == int(value) else 1}f}</text>'
            )
        out.append(
            f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0)}" y2="{y(0)}" '
            f'stroke="#333" stroke-width="1"/>'
        )
    if has_increments:
        out.append(
            f'<rect class="lane" x="{LEFT}" y="{lane_top}" width="{plot_w}" height="{lane_h}" '
            f'fill="#f6f6f6"/>'
            f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{lane_y(0)}" '
            f'y2="{lane_y(0)}" stroke="#333" stroke-width="1"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{lane_top + 9}" text-anchor="end" '
            f'font-size="11">{lane_max:,}</text>'
            f'<text class="tick" x="{LEFT - 6}" y="{lane_y(0) + 4}" text-anchor="end" '
            f'font-size="11">0</text>'
        )
        if has_totals:
            out.append(
                f'<text class="lane-label" x="{WIDTH - RIGHT + 14}" y="{lane_top + 11}" '
                f'font-size="10" fill="#555">&#8592; increments, own scale</text>'
            )
    for i in range(4):
        at = start + (end - start) * i / 3
        anchor = "start" if i == 0 else "end" if i == 3 else "middle"
        out.append(
            f'<text class="tick" x="{x(at)}" y="{height - BOTTOM + 16}" '
            f'text-anchor="{anchor}" font-size="11">{at:%Y-%m-%d}</text>'
        )
    with_bars = [s for s in series if s.increments]
    bar = 1.5 if dense else 4
    radius = 2 if dense else 4
    for n, s in enumerate(series):
        colour = COLOURS.get((s.category, s.outcome), "#666666")
        counts = " ".join(str(p.count) for p in s.totals)
        out.append(
            f'<g class="series" data-series="{escape(s.label)}" data-totals="{counts}" '
            f'data-increments="{" ".join(str(p.count) for p in s.increments)}">'
        )
        if s.increments:
            slot = with_bars.index(s)
            for p in s.increments:
                # side by side when several series report at the same moment
                bx = round(x(p.at) - len(with_bars) * (bar + 1) / 2 + slot * (bar + 1), 1)
                by = lane_y(p.count)
                mark = (
                    f'<rect class="increment" x="{bx}" y="{by}" width="{bar}" '
                    f'height="{max(round(lane_y(0) - by, 1), 1)}" fill="{colour}" '
                    f'fill-opacity="0.7"><title>{escape(_point_title(s, p))}</title></rect>'
                )
                out.append(_link(p.url, mark))
        if len(s.totals) > 1:
            points = " ".join(f"{x(p.at)},{y(p.count)}" for p in s.totals)
            out.append(
                f'<polyline class="total" points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="{1.5 if dense else 2}"/>'
            )
        labelled = _labelled(s.totals, x)
        for i, p in enumerate(s.totals):
            px, py = x(p.at), y(p.count)
            mark = (
                f'<circle class="total" cx="{px}" cy="{py}" r="{radius}" fill="{colour}">'
                f"<title>{escape(_point_title(s, p))}</title></circle>"
            )
            if i in labelled:
                figure = f"{QUALIFIERS.get(p.qualifier, '')}{p.count:,}"
                mark += (
                    f'<text class="value" x="{px + 6}" y="{py - 6}" font-size="11" '
                    f'fill="{colour}">{escape(figure)}</text>'
                )
            out.append(_link(p.url, mark))
        out.append("</g>")
        ly = TOP + 14 + n * 18
        lx = WIDTH - RIGHT + 14
        out.append(
            f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{lx + 24}" y="{ly}" font-size="11">'
            f"{escape(f'{s.category} {s.outcome}')}</text>"
        )
    ly = TOP + 14 + len(series) * 18 + 8
    lx = WIDTH - RIGHT + 14
    out.append(
        f'<text x="{lx}" y="{ly}" font-size="10" fill="#555">line, dots: running totals</text>'
        f'<text x="{lx}" y="{ly + 14}" font-size="10" fill="#555">bars, lower lane: '
        f"increments</text>"
    )
    out.append("</svg>")
    return Markup("".join(out))
