"""The dashboard and the HTML report: pages from the replayed seeds served by the real HTTP
endpoint on 127.0.0.1, text from feeds escaped, no script allowed, a token beyond loopback."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.cli import main
from monitor.events import (
    AlertRaised,
    ArticleRef,
    Casualties,
    Evidence,
    FactReported,
    FeedPolled,
)
from monitor.observability import Endpoints, Metrics, ObservabilityServer
from monitor.store.log import EventStore, NewEvent
from monitor.store.projections import all_projections, follow
from monitor.web.app import WebUI
from monitor.web.views import POINTS_PER_SERIES, Views

WATCH = "nagorno-karabakh"
NAMES = {WATCH: "Nagorno-Karabakh conflict"}
HOSTILE_TITLE = '<script>alert("title")</script>"><img src=x onerror=alert(1)>'
HOSTILE_QUOTE = 'Officials said 12 soldiers were killed <script>steal()</script> "><img onerror=x>'


def serve(store: EventStore, token: str | None = None) -> ObservabilityServer:
    web = WebUI(store, lambda: [], lambda: NAMES, token=token)
    endpoints = Endpoints(Metrics(), lambda: (True, {}), lambda _feed: (404, "no"), web)
    return ObservabilityServer("127.0.0.1:0", endpoints).start()


@pytest.fixture
def seeded(replayed_seeds: str) -> Iterator[tuple[EventStore, str]]:
    """The replayed seeds behind a real dashboard on 127.0.0.1; yields the store and base URL."""
    store = EventStore(replayed_seeds, read_only=True)
    server = serve(store)
    yield store, f"http://{server.address}"
    server.stop()
    store.close()


def rows(html: str, css_class: str) -> list[str]:
    """The ``<tr>`` elements of one class, as text."""
    return re.findall(rf'<tr class="{css_class}[^"]*"[^>]*>.*?</tr>', html, re.S)


def test_every_page_renders_for_the_seeds_with_a_csp_and_no_script(
    seeded: tuple[EventStore, str],
) -> None:
    _store, base = seeded
    for path in ("/", f"/watch/{WATCH}", "/alerts", "/feeds", "/static/style.css"):
        answer = httpx.get(base + path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in answer.text and "cdn" not in answer.text.lower()
    overview = httpx.get(base + "/").text
    assert "Nagorno-Karabakh conflict" in overview and "963" in overview
    assert re.search(r'class="alerts-24h">9<', overview)
    assert 'rel="stylesheet" href="/static/style.css"' in overview
    assert httpx.get(base + "/watch/no-such-watch").status_code == 200  # an empty watch
    assert httpx.get(base + "/nothing-here").status_code == 404


def test_the_chart_draws_84_rising_to_963_and_the_36_as_an_increment(
    seeded: tuple[EventStore, str],
) -> None:
    _store, base = seeded
    page = httpx.get(f"{base}/watch/{WATCH}").text
    svg = re.search(r'<svg[^>]*data-side="armenian".*?</svg>', page, re.S)
    assert svg, "no chart for the armenian side"
    series = re.search(
        r'<g class="series" data-series="armenian military killed" data-totals="84 963" '
        r'data-increments="36">',
        svg.group(0),
    )
    assert series, svg.group(0)[:2000]
    assert "<polyline" in svg.group(0) and "≥84" in svg.group(0)
    # the third-party table and the ceasefire history come from the same facts
    assert "<td>TUR</td>" in page and "collapsed" in page


def test_the_nine_alerts_are_listed_with_why_and_their_evidence_links(
    seeded: tuple[EventStore, str],
) -> None:
    _store, base = seeded
    page = httpx.get(f"{base}/alerts").text
    alerts = rows(page, "alert")
    assert len(alerts) == 9
    for row in alerts:
        links = re.findall(r'<td class="evidence">.*?</td>', row, re.S)
        assert links and re.search(r'<a href="file://[^"]+/seeds/pages/[^"]+\.html"', links[0])
        assert '<ul class="why"><li>' in row
    assert any("rose from 84 to 963" in row for row in alerts)
    assert sum("sev-critical" in row for row in alerts) == 1
    # the second ceasefire collapse was held back by the cooldown, and the page says so
    assert "cooldown 7d since alert" in page
    assert "no channel" in page  # the seeds' rules name no delivery channel


def test_timeline_filters_and_pages_in_event_time(seeded: tuple[EventStore, str]) -> None:
    store, base = seeded
    views = Views(store)
    ceasefire = httpx.get(f"{base}/watch/{WATCH}", params={"type": "ceasefire"}).text
    facts = rows(ceasefire, "fact")
    assert facts and all("fact-ceasefire" in f for f in facts)
    outlet = "RFE/RL: Caucasus"
    one_outlet = httpx.get(f"{base}/watch/{WATCH}", params={"outlet": outlet}).text
    assert rows(one_outlet, "fact") and all(outlet in f for f in rows(one_outlet, "fact"))
    assert httpx.get(f"{base}/watch/{WATCH}", params={"page": "x"}).status_code == 400

    whole = views.timeline_page(WATCH, size=1000)
    assert whole.total == len(whole.facts) > 10 and not whole.has_next
    assert [f.at for f in whole.facts] == sorted(f.at for f in whole.facts)
    pages = -(-whole.total // 10)
    paged = []
    for page in range(1, pages + 1):
        part = views.timeline_page(WATCH, page=page, size=10)
        assert part.has_next == (page < pages) and part.pages == pages
        paged += part.facts
    assert [f.event_id for f in paged] == [f.event_id for f in whole.facts]
    second = httpx.get(f"{base}/watch/{WATCH}", params={"page": "2", "type": "casualties"})
    assert "page 2 of" in second.text or "No facts match." in second.text


def test_pages_follow_the_log_as_it_grows(replayed_seeds: str) -> None:
    """A fact appended after a page was read shows at its place in event time, not at the end."""
    store = EventStore(replayed_seeds)
    views = Views(store)
    before = views.timeline_page(WATCH, size=1000)
    outlets = views.timeline_page(WATCH, fact_type="ceasefire").outlets
    first = before.facts[0]
    state = views.watch_state(WATCH)
    poll = FeedPolled(feed="ap", url="file:///ap.xml", items=1, new_items=0, not_modified=True)
    store.append([NewEvent(stream="feed:ap", data=poll)])
    assert views.watch_state(WATCH) is state  # a poll changes nothing in the watch's state
    late = first.at.replace(year=first.at.year - 1)
    article = ArticleRef(article_id="late", url="https://late.example/a", outlet="Late Wire")
    quote = "Officials said 7 soldiers were killed."
    fact = Casualties(quote=quote, span=(0, len(quote)), count=7, category="military")
    store.append(
        [
            NewEvent(
                stream="article:late",
                data=FactReported(
                    watch=WATCH, article=article.model_copy(update={"published": late}), fact=fact
                ),
                occurred_at=late,
            )
        ]
    )
    after = views.timeline_page(WATCH, size=1000)
    assert views.watch_state(WATCH) is not state  # a casualty fact: folded in
    assert after.total == before.total + 1
    assert after.facts[0].outlet == "Late Wire" and after.facts[1:] == before.facts
    assert views.timeline_page(WATCH, fact_type="ceasefire").outlets == sorted(
        [*outlets, "Late Wire"]
    )
    assert views.timeline_page(WATCH, outlet="Late Wire").total == 1
    store.close()


def test_text_from_feeds_renders_as_text(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'hostile.db'}")
    published = datetime(2024, 5, 1, 12, tzinfo=UTC)
    article = ArticleRef(
        article_id="a1",
        url="javascript:alert(document.cookie)",
        outlet='Outlet "><img onerror=alert(2)>',
        title=HOSTILE_TITLE,
        published=published,
    )
    fact = Casualties(
        quote=HOSTILE_QUOTE,
        span=(0, len(HOSTILE_QUOTE)),
        side="<b>side</b>",
        category="military",
        outcome="killed",
        count=12,
        cumulative=True,
        attributed_to="<script>who()</script>",
    )
    stored = store.append(
        [
            NewEvent(
                stream="article:a1",
                data=FactReported(watch="hostile", article=article, fact=fact),
                occurred_at=published,
            )
        ]
    )
    evidence = Evidence(event_id=stored.events[0].id, quote=HOSTILE_QUOTE, url=article.url)
    store.append(
        [
            NewEvent(
                stream="alert:x1",
                data=AlertRaised(
                    alert_id="x1",
                    rule="r",
                    rule_hash="h",
                    severity="warning",
                    watch="hostile",
                    title=HOSTILE_TITLE,
                    summary=HOSTILE_QUOTE,
                    dedup_key="r:hostile",
                    evidence=[evidence],
                    explanation=['count went "><img onerror=alert(3)> up'],
                ),
                occurred_at=published,
            )
        ]
    )
    for projection in all_projections():
        follow(store, projection)
    web = WebUI(store, lambda: [], lambda: {"hostile": "<i>Hostile</i> watch"})
    pages = {
        path: web.handle("GET", path, "127.0.0.1", None)
        for path in ("/", "/watch/hostile", "/alerts")
    }
    for path, answer in pages.items():
        html = answer.body.decode()
        assert answer.status == 200, path
        assert "<script" not in html and "<img" not in html, path
        assert 'href="javascript' not in html, path  # such a link is shown, not followed
    watch_page = pages["/watch/hostile"].body.decode()
    assert "&lt;script&gt;steal()&lt;/script&gt;" in watch_page  # the quote, as text
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in watch_page  # the title
    assert "&#34;&gt;&lt;img onerror=x&gt;" in watch_page
    assert 'data-side="&lt;b&gt;side&lt;/b&gt;"' in watch_page  # inside the SVG too
    assert '<span class="url">Outlet &#34;&gt;&lt;img onerror=alert(2)&gt;</span>' in watch_page
    alerts_page = pages["/alerts"].body.decode()
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in alerts_page
    assert "&lt;img onerror=alert(3)&gt;" in alerts_page
    assert "&lt;i&gt;Hostile&lt;/i&gt; watch" in pages["/"].body.decode()
    store.close()


def test_a_token_guards_the_pages_beyond_loopback(replayed_seeds: str) -> None:
    store = EventStore(replayed_seeds, read_only=True)
    guarded = WebUI(store, lambda: [], lambda: NAMES, token="s3cret-token")
    open_ = WebUI(store, lambda: [], lambda: NAMES)
    far = "192.0.2.7"

    def status(web: WebUI, client: str, auth: str | None) -> int:
        return web.handle("GET", "/alerts", client, auth).status

    basic = base64.b64encode(b"anyone:s3cret-token").decode()
    assert status(guarded, "127.0.0.1", None) == 200
    assert status(guarded, "::1", None) == 200
    assert status(guarded, far, None) == 401
    assert "WWW-Authenticate" in guarded.handle("GET", "/", far, None).headers
    assert status(guarded, far, "Bearer wrong") == 401
    assert status(guarded, far, "Bearer s3cret-token") == 200
    assert status(guarded, far, f"Basic {basic}") == 200
    assert status(guarded, far, "Basic !!!not-base64") == 401
    assert status(open_, far, "Bearer anything") == 403  # no token: loopback only
    store.close()


def test_a_request_through_a_proxy_on_loopback_needs_the_token(replayed_seeds: str) -> None:
    """A reverse proxy on the same machine connects from 127.0.0.1 for anyone: its forwarding
    header makes the request remote, so the token guards it (and without one it is refused)."""
    store = EventStore(replayed_seeds, read_only=True)
    open_, guarded = serve(store), serve(store, token="s3cret-token")
    try:
        for name in ("X-Forwarded-For", "x-real-ip", "Forwarded"):
            via = {name: "198.51.100.4" if name != "Forwarded" else "for=198.51.100.4"}
            assert httpx.get(f"http://{open_.address}/alerts", headers=via).status_code == 403
            far = f"http://{guarded.address}/alerts"
            assert httpx.get(far, headers=via).status_code == 401
            bearer = {**via, "Authorization": "Bearer s3cret-token"}
            assert httpx.get(far, headers=bearer).status_code == 200
        assert httpx.get(f"http://{open_.address}/alerts").status_code == 200  # plain loopback
    finally:
        open_.stop()
        guarded.stop()
        store.close()


def test_the_dashboard_only_reads(seeded: tuple[EventStore, str]) -> None:
    _store, base = seeded
    for method in ("POST", "PUT", "DELETE"):
        answer = httpx.request(method, f"{base}/alerts")
        assert answer.status_code in (405, 501), method
    assert httpx.post(f"{base}/").status_code == 405
    head = httpx.head(f"{base}/feeds")
    assert head.status_code == 200 and head.content == b""


def test_report_is_one_self_contained_file(
    replayed_seeds: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--html", str(out), "--db", replayed_seeds, "--rules", "rules"]) == 0
    html = out.read_text()
    assert "<style>" in html and "<link" not in html and "<script" not in html
    assert 'src="' not in html  # nothing to fetch: the stylesheet and the charts are inline
    assert 'data-totals="84 963"' in html
    assert len(rows(html, "alert")) == 9
    assert 'href="#watch-nagorno-karabakh"' in html and 'id="watch-nagorno-karabakh"' in html
    assert "Nagorno-Karabakh conflict" in html  # the name from the watch file

    later = tmp_path / "since.html"
    args = ["report", "--html", str(later), "--db", replayed_seeds, "--watch", WATCH]
    assert main([*args, "--since", "2020-10-01"]) == 0
    recent = later.read_text()
    seeds = EventStore(replayed_seeds)
    everything = len(Views(seeds).timeline_page(WATCH, size=1000).facts)
    seeds.close()
    assert 0 < len(rows(recent, "fact")) < everything
    assert "2020-09-30" not in "".join(rows(recent, "fact"))
    assert len(rows(recent, "alert")) == 2  # the ceasefire collapse and the jump to 963
    assert main([*args, "--since", "not a time"]) == 2


def casualty(n: int, at: datetime, **fields: object) -> NewEvent:
    """One casualty report of the watch "w", published at ``at``."""
    quote = f"Report number {n} in words of our own."
    article = ArticleRef(article_id=f"c{n}", url=f"https://wire.example/{n}", published=at)
    fact = Casualties(quote=quote, span=(0, len(quote)), **fields)  # type: ignore[arg-type]
    return NewEvent(
        stream=f"article:c{n}",
        data=FactReported(watch="w", article=article, fact=fact),
        occurred_at=at,
    )


def test_missing_and_captured_are_listed_beside_the_chart_not_drawn(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'held.db'}")
    day = datetime(2024, 3, 1, tzinfo=UTC)
    store.append(
        [
            casualty(1, day, side="north", category="military", count=100, cumulative=True),
            casualty(2, day, side="north", category="military", outcome="captured", count=3),
            casualty(
                3,
                day,
                side="south",
                category="civilian",
                outcome="missing",
                count=12,
                cumulative=True,
            ),
        ]
    )
    page = WebUI(store, lambda: [], lambda: {}).handle("GET", "/watch/w", "127.0.0.1", None)
    html = page.body.decode()
    assert re.findall(r'data-series="([^"]+)"', html) == ["north military killed"]
    held = re.search(r'<table class="held">.*?</table>', html, re.S)
    assert held, html
    assert len(rows(held.group(0), "held-captured")) == 1
    assert "12 south civilian missing (total)" in rows(held.group(0), "held-missing")[0]
    assert "3 north military captured" in held.group(0)
    store.close()


def test_a_long_series_stays_readable(tmp_path: Path) -> None:
    """Two years of daily totals and increments: thinned to a slot of time each, increments in
    their own lane below the totals, and only a few figures written on the chart."""
    store = EventStore(f"sqlite:///{tmp_path / 'long.db'}")
    start = datetime(2022, 1, 1, tzinfo=UTC)
    reports = []
    for n in range(730):
        at = start + timedelta(days=n)
        reports.append(
            casualty(2 * n, at, side="north", category="civilian", count=10 * n, cumulative=True)
        )
        reports.append(casualty(2 * n + 1, at, side="north", category="civilian", count=n % 40))
    store.append(reports)
    views = Views(store)
    html = WebUI(store, lambda: [], lambda: {}).handle("GET", "/watch/w", "127.0.0.1", None)
    svg = re.search(r"<svg.*?</svg>", html.body.decode(), re.S)
    assert svg
    dots = re.findall(r'<circle class="total" cx="[^"]+" cy="([^"]+)"', svg.group(0))
    bars = re.findall(r'<rect class="increment" x="[^"]+" y="([^"]+)"', svg.group(0))
    assert 0 < len(dots) <= POINTS_PER_SERIES and 0 < len(bars) <= POINTS_PER_SERIES
    assert min(float(b) for b in bars) > max(float(d) for d in dots)  # the lane lies below
    figures = re.findall(r'<text class="value"[^>]*>([^<]+)</text>', svg.group(0))
    assert 2 <= len(figures) <= 12 and figures[-1] == "7,290"  # the latest total is written
    # A slot of time is chosen from a fixed origin: a new report changes only the last slot.
    state = views.watch_state("w")
    store.append(
        [
            casualty(
                9999,
                start + timedelta(days=730),
                side="north",
                count=7300,
                category="civilian",
                cumulative=True,
            )
        ]
    )
    later = views.watch_state("w")
    before, after = state.series["north"][0].totals, later.series["north"][0].totals
    assert after[: len(before) - 1] == before[:-1] and after[-1].count == 7300
    store.close()
