"""The dashboard's pages and the one-file report, rendered from package templates.

Its own Jinja2 environment, separate from the rules' sandbox: templates ship in the package
(trusted), every value is autoescaped (titles and quotes come from feeds), and undefined names
fail loudly. The same section macros make the served pages and the report, so the two never
disagree; only links differ (paths on the server, anchors in the file) and the report inlines
its stylesheet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from monitor.config import FeedConfig
from monitor.store.log import EventStore
from monitor.timeline import Toll
from monitor.web import chart, views

REPORT_FACTS = 2000  # facts per watch in a report file; the page says when there are more


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("monitor.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, figure=figure, age=age, percent=percent, link=views.safe_url)
    return env


@cache
def stylesheet() -> str:
    return resources.files("monitor.web").joinpath("static/style.css").read_text("utf-8")


def when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M} UTC"


def figure(toll: Toll) -> str:
    prefix = {"at_least": "at least ", "about": "about "}.get(toll.qualifier, "")
    return f"{prefix}{toll.count:,}"


def age(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


class Links:
    """Where the pages point: the server's paths, or anchors inside one report file."""

    def __init__(self, report: bool = False) -> None:
        self.report = report

    def overview(self) -> str:
        return "#overview" if self.report else "/"

    def watch(self, watch: str, **query: Any) -> str:
        if self.report:
            return f"#watch-{quote(watch, safe='')}"
        params = {k: v for k, v in query.items() if v not in (None, "", 1)}
        tail = f"?{urlencode(params)}" if params else ""
        return f"/watch/{quote(watch, safe='')}{tail}"

    def alerts(self) -> str:
        return "#alerts" if self.report else "/alerts"

    def feeds(self) -> str:
        return "#feeds" if self.report else "/feeds"

    def stylesheet(self) -> str:
        return "/static/style.css"


# --- what each section needs ----------------------------------------------------------------


def overview_context(
    seen: views.Views, names: Mapping[str, str], feeds: Sequence[FeedConfig]
) -> dict[str, Any]:
    store = seen.store
    recent = views.recent_alert_counts(store)
    cards = []
    for watch in views.watch_ids(store, list(names)):
        story = seen.watch_state(watch)
        cards.append(
            {
                "id": watch,
                "name": names.get(watch, watch),
                "sides": views.tolls_by_side(story.tolls),
                "ceasefire": story.ceasefire,
                "third_parties": len(story.third_parties),
                "alerts_24h": recent.get(watch, 0),
            }
        )
    rows = views.feed_rows(store, feeds)
    return {"watches": cards, "feed_summary": views.feed_summary(rows)}


def watch_context(
    seen: views.Views,
    watch: str,
    names: Mapping[str, str],
    *,
    fact_type: str | None = None,
    outlet: str | None = None,
    page: int = 1,
    size: int = views.PAGE_SIZE,
    since: datetime | None = None,
) -> dict[str, Any]:
    story = seen.watch_state(watch)
    series = story.series
    charts = []
    if series:
        span = chart.time_span(list(series.values()))
        charts = [
            {"side": side, "svg": chart.side_chart(side, s, span), "series": s}
            for side, s in series.items()
        ]
    return {
        "watch": {"id": watch, "name": names.get(watch, watch)},
        "sides": views.tolls_by_side(story.tolls),
        "ceasefire": story.ceasefire,
        "ceasefire_history": story.ceasefire_history,
        "ceasefire_reports": story.ceasefire_reports,
        "third_parties": story.third_parties,
        "charts": charts,
        "held": story.held,
        "held_reports": story.held_reports,
        "timeline": seen.timeline_page(
            watch, fact_type=fact_type, outlet=outlet, page=page, size=size, since=since
        ),
    }


def alerts_context(
    store: EventStore, *, watch: str | None = None, since: datetime | None = None
) -> dict[str, Any]:
    raised, suppressed = views.alerts(store, watch=watch, since=since)
    return {"alerts": raised, "suppressed": suppressed, "shown_limit": views.ALERTS_SHOWN}


def feeds_context(store: EventStore, feeds: Sequence[FeedConfig]) -> dict[str, Any]:
    return {"feeds": views.feed_rows(store, feeds)}


# --- pages ------------------------------------------------------------------------------------


def render(template: str, links: Links, **context: Any) -> str:
    base = {
        "links": links,
        "report": links.report,
        "inline_css": Markup(stylesheet()) if links.report else None,
        "generated": datetime.now(UTC),
        "fact_types": views.FACT_TYPES,
    }
    return environment().get_template(template).render(**base, **context)


def report(
    store: EventStore,
    names: Mapping[str, str],
    feeds: Sequence[FeedConfig],
    *,
    watch: str | None = None,
    since: datetime | None = None,
) -> str:
    """Every view in one self-contained HTML file: inline CSS and SVG, no script, no fetches."""
    links = Links(report=True)
    seen = views.Views(store)
    overview = overview_context(seen, names, feeds)
    if watch is not None:
        overview["watches"] = [w for w in overview["watches"] if w["id"] == watch] or [
            {
                "id": watch,
                "name": names.get(watch, watch),
                "sides": {},
                "ceasefire": None,
                "third_parties": 0,
                "alerts_24h": 0,
            }
        ]
    sections = [
        watch_context(seen, w["id"], names, size=REPORT_FACTS, since=since)
        for w in overview["watches"]
    ]
    return render(
        "report.j2",
        links,
        overview=overview,
        watches=sections,
        since=since,
        **alerts_context(store, watch=watch, since=since),
        **feeds_context(store, feeds),
    )
