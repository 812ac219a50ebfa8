"""The ingest path on its own: one article at a time, idempotent, and safe with bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.events import ArticleExtracted, ArticleFailed, FactReported
from monitor.pipeline import MAX_FETCH_FAILURES, ingest_item
from monitor.sources.feeds import FeedItem
from monitor.sources.fetch import FetchLimits
from monitor.store.log import EventStore
from monitor.watches import Party, Watch
from tests.support.httpserver import LOCAL, LOCAL_LIMITS, Reply, TestServer

WATCH = Watch(
    id="ruritania",
    name="Ruritania border war",
    parties={
        "RUR": Party(name="Ruritania", aliases=["Ruritanian"]),
        "GRA": Party(name="Graustark", aliases=["Graustarkian"]),
    },
    sides={"west": ["RUR"], "east": ["GRA"]},
)
ARTICLE = (
    "<html><body><nav>Home | World | Sport</nav><article><h1>Border clashes</h1>"
    "<p>Ruritanian officials said 42 soldiers had been killed since the fighting began, "
    "bringing the overall toll to 42.</p>"
    "<p>Graustark accused Ruritania of violating the ceasefire brokered by Turkey.</p>"
    "<p>The fighting was the worst in a decade, residents of the border villages said.</p>"
    "</article><footer>Copyright</footer></body></html>"
)


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return EventStore(f"sqlite:///{tmp_path / 'log.db'}")


def item(url: str, guid: str | None = None) -> FeedItem:
    return FeedItem(feed="wire", url=url, guid=guid, title="Border clashes", outlet="Wire")


def types(store: EventStore) -> list[str]:
    return [e.type for e in store.read()]


def test_an_article_becomes_one_append_of_its_facts(store: EventStore) -> None:
    with TestServer() as server:
        server.route("/a", Reply(200, ARTICLE.encode(), {"Content-Type": "text/html"}))
        result = ingest_item(store, item(f"{server.base}/a", "g1"), [WATCH], limits=LOCAL_LIMITS)
    assert result.status == "extracted" and result.facts >= 2
    events = list(store.read())
    assert len({e.metadata["correlation_id"] for e in events}) == 1  # one append, one batch
    extracted = next(e.data for e in events if isinstance(e.data, ArticleExtracted))
    assert extracted.watches == ["ruritania"] and "Home | World" not in extracted.text
    facts = [e.data for e in events if isinstance(e.data, FactReported)]
    assert {f.fact.type for f in facts} >= {"casualties", "ceasefire"}
    assert all(f.article.url.endswith("/a") and f.article.outlet == "Wire" for f in facts)


def test_the_same_article_twice_appends_nothing(store: EventStore) -> None:
    with TestServer() as server:
        server.route("/a", Reply(200, ARTICLE.encode(), {"Content-Type": "text/html"}))
        ingest_item(store, item(f"{server.base}/a", "g1"), [WATCH], limits=LOCAL_LIMITS)
        head = store.head()
        again = ingest_item(store, item(f"{server.base}/a", "g1"), [WATCH], limits=LOCAL_LIMITS)
        fetches = [r for r in server.requests if r.path == "/a"]
    assert again.status == "skipped" and store.head() == head
    assert len(fetches) == 1  # not even fetched again


def test_the_same_text_at_another_address_adds_no_facts(store: EventStore) -> None:
    with TestServer() as server:
        for path in ("/a", "/syndicated"):
            server.route(path, Reply(200, ARTICLE.encode(), {"Content-Type": "text/html"}))
        first = ingest_item(store, item(f"{server.base}/a"), [WATCH], limits=LOCAL_LIMITS)
        second = ingest_item(store, item(f"{server.base}/syndicated"), [WATCH], limits=LOCAL_LIMITS)
    facts = [e for e in store.read() if e.type == "FactReported"]
    assert second.status == "extracted" and len(facts) == first.facts


def test_an_unrelated_article_is_extracted_without_facts(store: EventStore) -> None:
    page = "<html><body><article><p>" + "The harvest festival drew record crowds. " * 5
    with TestServer() as server:
        server.route("/b", Reply(200, (page + "</p></article></body></html>").encode()))
        result = ingest_item(store, item(f"{server.base}/b"), [WATCH], limits=LOCAL_LIMITS)
    assert result.status == "extracted" and result.facts == 0
    assert types(store) == ["ArticleDiscovered", "ArticleFetched", "ArticleExtracted"]


def test_a_failing_fetch_is_recorded_and_retried_a_few_times(store: EventStore) -> None:
    with TestServer() as server:
        server.route("/down", Reply(503, b"busy"))
        results = [
            ingest_item(store, item(f"{server.base}/down"), [WATCH], limits=LOCAL_LIMITS)
            for _ in range(5)
        ]
    assert [r.status for r in results] == ["failed"] * MAX_FETCH_FAILURES + ["skipped"] * 2
    failures = [e.data for e in store.read() if isinstance(e.data, ArticleFailed)]
    assert len(failures) == MAX_FETCH_FAILURES
    assert all(f.stage == "fetch" and f.retryable and "HTTP 503" in f.reason for f in failures)


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"\x00\x01\x02" * 1000, {"Content-Type": "application/octet-stream"}, "binary"),
        (
            b"<html><head><title>t</title></head><body></body></html>",
            {"Content-Type": "text/html"},
            "no",
        ),
        (b"x" * 5000, {"Content-Type": "text/html"}, "limit"),
    ],
    ids=["binary", "no-text", "too-big"],
)
def test_bad_pages_fail_with_a_reason_and_lose_nothing(
    store: EventStore, body: bytes, headers: dict[str, str], reason: str
) -> None:
    with TestServer() as server:
        server.route("/bad", Reply(200, body, headers))
        limits = FetchLimits(max_bytes=4000, allow_networks=LOCAL)
        result = ingest_item(store, item(f"{server.base}/bad"), [WATCH], limits=limits)
        failed = [e.data for e in store.read() if isinstance(e.data, ArticleFailed)]
        again = ingest_item(store, item(f"{server.base}/bad"), [WATCH], limits=limits)
    assert result.status == "failed" and reason in (result.reason or "")
    assert len(failed) == 1
    assert "ArticleDiscovered" in types(store)  # the attempt itself is on record
    # Content that cannot be read will not improve: no retry. A fetch failure is retried.
    assert again.status == ("failed" if failed[0].retryable else "skipped")


def test_a_page_in_a_legacy_encoding_is_read_right(store: EventStore) -> None:
    text = "Ruritanian officials said 12 soldiers were killed near Zenda, café owners said."
    page = f"<html><body><article><p>{text}</p><p>{text}</p></article></body></html>"
    with TestServer() as server:
        server.route(
            "/latin",
            Reply(200, page.encode("cp1252"), {"Content-Type": "text/html; charset=cp1252"}),
        )
        result = ingest_item(store, item(f"{server.base}/latin"), [WATCH], limits=LOCAL_LIMITS)
    extracted = next(e.data for e in store.read() if isinstance(e.data, ArticleExtracted))
    assert result.status == "extracted" and "café" in extracted.text
