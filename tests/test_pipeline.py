"""The ingest path on its own: idempotent, safe with bad input, and a poll's articles appended
in order, a group per transaction, each article whole."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError

from monitor.events import ArticleExtracted, ArticleFailed, FactReported
from monitor.pipeline import (
    GROUP_ARTICLES,
    MAX_FETCH_FAILURES,
    LogWriter,
    ingest_item,
    ingest_items,
)
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


# --- a poll's articles: pipelined, appended in groups ---------------------------------------


def numbered_article(n: int) -> bytes:
    """A page of its own for article ``n``: another toll, so every copy is a new text."""
    return ARTICLE.replace("42 soldiers", f"{n + 2} soldiers").encode()


def serve_articles(server: TestServer, count: int) -> list[FeedItem]:
    for n in range(count):
        server.route(f"/n/{n}", Reply(200, numbered_article(n), {"Content-Type": "text/html"}))
    return [item(f"{server.base}/n/{n}", f"n{n}") for n in range(count)]


def write_transactions(store: EventStore) -> list[str]:
    """Every statement the store's connections run from now on (SQLite's own trace)."""
    statements: list[str] = []

    @sa_event.listens_for(store.engine, "connect")
    def trace(connection: sqlite3.Connection, _record: object) -> None:
        connection.set_trace_callback(statements.append)

    store.engine.dispose()  # pooled connections were opened before the trace
    return statements


def article_order(store: EventStore) -> list[str]:
    """Article streams in the order their events lie in the log, each once per run of it."""
    streams = [e.stream for e in store.read() if e.stream.startswith("article:")]
    return [s for i, s in enumerate(streams) if i == 0 or streams[i - 1] != s]


def test_a_poll_s_articles_go_in_order_each_whole(store: EventStore) -> None:
    with TestServer() as server:
        items = serve_articles(server, 6)
        done = ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
    assert done.complete and [r.status for r in done.results] == ["extracted"] * 6
    # In the order given, each article's events together, each with its own correlation id.
    assert article_order(store) == [f"article:{i.article_id}" for i in items]
    events = list(store.read())
    correlations = {e.stream: e.metadata["correlation_id"] for e in events}
    assert len(set(correlations.values())) == 6
    assert all(e.metadata["correlation_id"] == correlations[e.stream] for e in events)
    assert sum(r.new_events for r in done.results) == len(events)


def test_articles_waiting_for_a_busy_log_go_in_one_transaction(store: EventStore) -> None:
    """While another writer holds the log, the poll goes on fetching and reading; what it
    finished meanwhile is appended together once the log is free."""
    statements = write_transactions(store)
    holder = sqlite3.connect(store.url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a projection's transaction, say
    with TestServer() as server:
        items = serve_articles(server, 6)
        poll = threading.Thread(
            target=lambda: ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
        )
        poll.start()
        deadline = time.monotonic() + 30
        while len(server.requests) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the last page read, and handed to the writer
        fetched_while_held = len(server.requests)
        holder.execute("COMMIT")
        poll.join(60)
    holder.close()
    assert fetched_while_held == 6 and not poll.is_alive()
    assert statements.count("BEGIN IMMEDIATE") <= 2  # the first article, then the other five
    assert article_order(store) == [f"article:{i.article_id}" for i in items]


def test_group_size_changes_the_transactions_not_the_log(tmp_path: Path) -> None:
    logs = []
    for size in (1, 4, GROUP_ARTICLES):
        store = EventStore(f"sqlite:///{tmp_path / f'group-{size}.db'}")
        statements = write_transactions(store)
        writer = LogWriter(store, group=size)
        with TestServer() as server:
            items = serve_articles(server, 9)
            items.insert(4, item(f"{server.base}/missing", "gone"))  # a failure in the middle
            ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS, writer=writer)
        writer.close()
        if size == 1:
            assert statements.count("BEGIN IMMEDIATE") == 10
        logs.append(
            [
                (e.seq, e.stream, e.stream_version, e.type, e.idempotency_key, e.id)
                for e in store.read()
            ]
        )
        store.close()
    assert logs[0] == logs[1] == logs[2]


def test_polls_sharing_a_full_writer_queue_each_get_their_own_articles_stored(
    store: EventStore,
) -> None:
    """Three polls at once through a writer whose queue holds two articles: submitters wait
    for room, and each poll returns once its own articles are stored, all of them whole."""
    writer = LogWriter(store, group=2, queue=2)
    done: dict[int, bool] = {}
    with TestServer() as server:
        items = serve_articles(server, 12)

        def run(k: int) -> None:
            polled = ingest_items(store, items[k::3], [WATCH], limits=LOCAL_LIMITS, writer=writer)
            stored = {e.stream for e in store.read() if isinstance(e.data, ArticleExtracted)}
            done[k] = polled.complete and all(
                f"article:{i.article_id}" in stored for i in items[k::3]
            )

        polls = [threading.Thread(target=run, args=(k,)) for k in range(3)]
        for poll in polls:
            poll.start()
        for poll in polls:
            poll.join(120)
    writer.close()
    assert done == {0: True, 1: True, 2: True}
    assert len({e.stream for e in store.read()}) == 12


def test_an_article_is_not_held_back_for_a_group(store: EventStore) -> None:
    """Nothing waits for a group to fill: with the log free, an article is stored as soon
    as it is read, while the poll still waits for its next page."""
    answered: list[datetime] = []

    def slowly(_req: object) -> Reply:
        time.sleep(1.0)
        answered.append(datetime.now(UTC))
        return Reply(200, numbered_article(99), {"Content-Type": "text/html"})

    with TestServer() as server:
        items = serve_articles(server, 1)
        server.route("/slow", slowly)
        items.append(item(f"{server.base}/slow", "slow"))
        done = ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
    assert done.complete
    first = next(e for e in store.read() if e.stream == f"article:{items[0].article_id}")
    assert first.recorded_at < answered[0]


def test_a_group_read_again_appends_and_fetches_nothing(store: EventStore) -> None:
    with TestServer() as server:
        items = serve_articles(server, 5)
        ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
        head, fetched = store.head(), len(server.requests)
        # The same items again, and one of them listed twice in the same poll.
        again = ingest_items(store, [*items, items[2]], [WATCH], limits=LOCAL_LIMITS)
        assert len(server.requests) == fetched
    assert store.head() == head and again.complete
    reasons = [r.reason for r in again.results]
    assert reasons == ["already extracted"] * 5 + ["listed twice"]


def test_an_article_the_log_refuses_costs_only_itself(store: EventStore) -> None:
    with TestServer() as server:
        items = serve_articles(server, 5)
        refused = f"article:{items[2].article_id}"
        with sqlite3.connect(store.url.removeprefix("sqlite:///")) as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events "
                f"WHEN NEW.stream = '{refused}' BEGIN SELECT RAISE(ABORT, 'disk quota'); END"
            )
        done = ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
        assert [r.status for r in done.results] == ["extracted"] * 2 + ["failed"] + [
            "extracted"
        ] * 2
        assert "not stored" in (done.results[2].reason or "") and not done.complete
        assert refused not in article_order(store) and len(article_order(store)) == 4
        with sqlite3.connect(store.url.removeprefix("sqlite:///")) as db:
            db.execute("DROP TRIGGER refuse")
        # The incomplete poll is read again: only the refused article is new.
        again = ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
    assert [r.status for r in again.results].count("extracted") == 1 and again.complete
    keys = [e.idempotency_key for e in store.read()]
    assert len(keys) == len(set(keys))
    assert sorted(article_order(store)) == sorted(f"article:{i.article_id}" for i in items)


def test_stopping_mid_poll_appends_what_was_fetched_and_says_incomplete(
    store: EventStore,
) -> None:
    asked = 0

    def proceed() -> bool:
        nonlocal asked
        asked += 1
        return asked <= 2

    with TestServer() as server:
        items = serve_articles(server, 5)
        done = ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS, proceed=proceed)
        fetched = [r.path for r in server.requests]
    assert not done.complete and [r.status for r in done.results] == ["extracted"] * 2
    assert fetched == ["/n/0", "/n/1"]
    assert article_order(store) == [f"article:{i.article_id}" for i in items[:2]]


def test_a_database_that_refuses_everything_ends_the_poll(store: EventStore) -> None:
    with TestServer() as server:
        items = serve_articles(server, 3)
        with sqlite3.connect(store.url.removeprefix("sqlite:///")) as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events "
                "BEGIN SELECT RAISE(ABORT, 'read-only'); END"
            )
        with pytest.raises(DBAPIError, match="read-only"):
            ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS)
    assert store.head() == 0
