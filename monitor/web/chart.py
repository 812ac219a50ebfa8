"""The casualty chart of one side, drawn on the server as SVG.

Running totals are lines with filled dots; increments (a report of "14 killed", or the "rose
by 36" inside a cumulative report) are bars rising from the axis, so the two are never read as
one series. Every mark carries a ``<title>``: the browser shows it on hover with no script.
Colours are presentation attributes and classes, never ``style=``, so the page's
Content-Security-Policy (no inline styles) does not strip them. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from monitor.web.views import Point, Series, safe_url

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 16, 36
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


def side_chart(side: str, series: Sequence[Series], span: tuple[datetime, datetime]) -> Markup:
    """One side's killed/wounded series over event time, as an ``<svg>`` element."""
    start, end = span
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_top(max(p.count for s in series for p in (*s.totals, *s.increments)))
    seconds = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return round(LEFT + plot_w * (at - start).total_seconds() / seconds, 1)

    def y(count: int) -> float:
        return round(TOP + plot_h * (1 - count / top), 1)

    label = escape(f"Casualties reported for the {side} side over event time")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}" '
        f'data-side="{escape(side)}">',
        f"<title>{label}</title>",
    ]
    # axes and grid
    for i in range(GRID + 1):
        value = top * i / GRID
        gy = round(TOP + plot_h * (1 - i / GRID), 1)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{gy}" y2="{gy}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{gy + 4}" text-anchor="end" font-size="11">'
            f"{value:,.{0 if value == int(value) else 1}f}</text>"
        )
    for i in range(4):
        at = start + (end - start) * i / 3
        tx = x(at)
        anchor = "start" if i == 0 else "end" if i == 3 else "middle"
        out.append(
            f'<text class="tick" x="{tx}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" '
            f'font-size="11">{at:%Y-%m-%d}</text>'
        )
    out.append(
        f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0)}" y2="{y(0)}" '
        f'stroke="#333" stroke-width="1"/>'
    )
    bar = 6
    for n, s in enumerate(series):
        colour = COLOURS.get((s.category, s.outcome), "#666666")
        counts = " ".join(str(p.count) for p in s.totals)
        out.append(
            f'<g class="series" data-series="{escape(s.label)}" data-totals="{counts}" '
            f'data-increments="{" ".join(str(p.count) for p in s.increments)}">'
        )
        for p in s.increments:
            # side by side when several series report at the same moment
            bx = x(p.at) - len(series) * (bar + 1) / 2 + n * (bar + 1)
            by = y(p.count)
            mark = (
                f'<rect class="increment" x="{bx}" y="{by}" width="{bar}" '
                f'height="{round(y(0) - by, 1)}" fill="{colour}" fill-opacity="0.45" '
                f'stroke="{colour}" stroke-dasharray="2 1">'
                f"<title>{escape(_point_title(s, p))}</title></rect>"
            )
            out.append(_link(p.url, mark))
        if len(s.totals) > 1:
            points = " ".join(f"{x(p.at)},{y(p.count)}" for p in s.totals)
            out.append(
                f'<polyline class="total" points="{points}" fill="none" stroke="{colour}" '
                f'stroke-width="2"/>'
            )
        for p in s.totals:
            px, py = x(p.at), y(p.count)
            figure = f"{QUALIFIERS.get(p.qualifier, '')}{p.count:,}"
            mark = (
                f'<circle class="total" cx="{px}" cy="{py}" r="4" fill="{colour}">'
                f"<title>{escape(_point_title(s, p))}</title></circle>"
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
        f'<text x="{lx}" y="{ly + 14}" font-size="10" fill="#555">bars: increments</text>'
    )
    out.append("</svg>")
    return Markup("".join(out))
