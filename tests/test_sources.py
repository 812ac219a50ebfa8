"""Fetching and feed parsing over file:// and a real HTTP server, including hostile inputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.sources.feeds import FeedError, parse_feed
from monitor.sources.fetch import FetchError, FetchLimits, fetch, new_client
from tests.conftest import SEEDS, shared_dir
from tests.support.httpserver import LOCAL, Reply, TestServer


def test_seed_feeds_over_file_urls_resolve_relative_links() -> None:
    for feed in sorted((SEEDS / "feeds").glob("*.xml")):
        items = parse_feed(fetch(feed.as_uri()), feed.stem).items
        assert len(items) == 1
        item = items[0]
        assert item.url.startswith("file:///")
        assert Path(item.url.removeprefix("file://")).is_file()
        assert item.published is not None and item.guid and item.title


def test_seed_feeds_over_http() -> None:
    with TestServer(SEEDS) as server:
        items = parse_feed(fetch(f"{server.base}/feeds/rferl.xml"), "rferl").items
        assert items[0].url == f"{server.base}/pages/rferl/001_7f5d40a5f4979764.html"
        page = fetch(items[0].url)
        assert b"Mnatsakanian" in page.body
        assert server.requests[0].headers["User-Agent"].startswith("monitor/")


def test_http_errors_and_limits_become_fetch_errors() -> None:
    with TestServer() as server:
        server.route("/gone", Reply(410, b"gone"))
        server.route("/big", Reply(200, b"x" * 5000))
        server.route("/loop", Reply(302, b"", {"Location": "/loop"}))
        with pytest.raises(FetchError, match="HTTP 410"):
            fetch(f"{server.base}/gone")
        with pytest.raises(FetchError, match="limit"):
            fetch(f"{server.base}/big", limits=FetchLimits(max_bytes=1000))
        with pytest.raises(FetchError, match="redirects"):
            fetch(f"{server.base}/loop", limits=FetchLimits(max_redirects=3, allow_networks=LOCAL))


def test_body_without_length_is_cut_at_the_cap() -> None:
    """A server that streams without Content-Length is still stopped at the cap."""
    with TestServer() as server:
        server.route("/stream", Reply(200, b"y" * 50_000, send_length=False))
        with pytest.raises(FetchError, match="limit"):
            fetch(f"{server.base}/stream", limits=FetchLimits(max_bytes=10_000))


def test_missing_file_and_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="No such file"):
        fetch((tmp_path / "nope.xml").as_uri())
    with pytest.raises(FetchError, match="scheme"):
        fetch("ftp://example.invalid/feed")


def test_garbage_is_not_a_feed(tmp_path: Path) -> None:
    path = tmp_path / "junk.xml"
    path.write_bytes(b"\x00\x01 this is not xml at all <<<")
    with pytest.raises(FeedError, match="no feed entries"):
        parse_feed(fetch(path.as_uri()), "junk")


ENTRY_HTML = (
    "<item><title>Shelling near the border, report {n}</title><link>/news/{n}.html</link>"
    "<guid>wire-{n}</guid><pubDate>Wed, 30 Sep 2020 14:32:00 GMT</pubDate>"
    '<description>&lt;p&gt;Officials said &lt;a href="/people"&gt;two people&lt;/a&gt; were '
    "hurt.&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description>"
    "<content:encoded><![CDATA[<div><p>More on <a href='/more'>the shelling</a>.</p>"
    "<img src='/i/{n}.jpg'></div>]]></content:encoded></item>"
)


def test_entries_carrying_html_give_their_links_titles_and_dates(tmp_path: Path) -> None:
    """Feedparser neither sanitizes nor rewrites the entries' HTML here (none of it is
    used): links, titles and dates come out as they are in the feed, links resolved."""
    path = tmp_path / "wire.xml"
    path.write_text(
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Wire</title>'
        + "".join(ENTRY_HTML.format(n=n) for n in range(3))
        + "</channel></rss>"
    )
    doc = fetch(path.as_uri())
    doc = doc.model_copy(update={"final_url": "https://wire.example/feeds/world.xml"})
    items = parse_feed(doc, "wire").items
    assert [i.url for i in items] == [f"https://wire.example/news/{n}.html" for n in range(3)]
    assert [i.title for i in items] == [f"Shelling near the border, report {n}" for n in range(3)]
    assert all(
        i.published and i.published.isoformat() == "2020-09-30T14:32:00+00:00" for i in items
    )
    assert [i.guid for i in items] == [f"wire-{n}" for n in range(3)]


def _headers(text: str) -> dict[str, str]:
    return dict(re.findall(r"^Header:\s*([\w-]+):\s*(.+?)\s*$", text, flags=re.M))


def test_peer_feedparser_fixtures_over_http_never_crash() -> None:
    """Every fixture of feedparser's own suite, served with its headers: items or a FeedError.
    One client for them all, as the daemon has (a client each would spend most of the test
    loading the CA bundle)."""
    root = shared_dir("peer", "feedparser", "tests")
    files = sorted(root.rglob("*.xml"))
    parsed = 0
    with TestServer() as server, new_client() as client:
        for i, path in enumerate(files):
            raw = path.read_bytes()
            head = raw[:2000].decode("latin-1")
            headers = _headers(head) or {"Content-Type": "application/xml"}
            server.route(f"/f{i}", Reply(200, raw, headers))
            try:
                items = parse_feed(fetch(f"{server.base}/f{i}", client=client), path.stem).items
            except FeedError:
                continue
            parsed += 1
            assert all(item.url for item in items)
    assert parsed > len(files) // 3


def test_peer_real_news_feeds_parse_over_http() -> None:
    """Saved real feeds; relative links resolve against where the feed was fetched from."""
    root = shared_dir("peer", "realfeeds")
    with TestServer(root) as server:
        for path in sorted(p for p in root.iterdir() if p.suffix in {".xml", ".rss", ".atom"}):
            items = parse_feed(fetch(f"{server.base}/{path.name}"), path.stem).items
            assert items, path.name
            assert all(i.url.startswith(("http://", "https://")) for i in items), path.name
            assert sum(i.published is not None for i in items) >= len(items) // 2, path.name
