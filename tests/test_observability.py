"""/metrics at many feeds: the database's numbers are read ahead of scrapes, the feed series
stay bounded, and a database that stops answering is reported, not raised."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from monitor.config import FeedConfig
from monitor.leases import FeedLeases
from monitor.observability import ClusterMetrics, Metrics
from monitor.status import status_snapshot
from monitor.store.log import EventStore
from monitor.store.tables import Checkpoint, FeedHealth, FeedLease, OutboxRow

N = 500


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(f"sqlite:///{tmp_path / 'm.db'}")
    yield s
    s.close()


def feeds_of(n: int) -> list[FeedConfig]:
    return [
        FeedConfig(name=f"feed-{i:04}", url=f"http://127.0.0.1:1/{i}.xml", interval="60s")
        for i in range(n)
    ]


def set_rows(store: EventStore, names: list[str], **values: object) -> None:
    with store.transaction() as session:
        session.execute(
            update(FeedLease).where(FeedLease.feed.in_(names)).values(**values)  # type: ignore[attr-defined]
        )


def value(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert found is not None, series
    return float(found[1])


def test_feed_states_lag_quantiles_and_a_bounded_list_of_the_worst_feeds(
    store: EventStore,
) -> None:
    feeds = feeds_of(N)
    names = [f.name for f in feeds]
    FeedLeases(store, "a").ensure(feeds)
    now = datetime.now(UTC)
    set_rows(store, names, last_polled_at=now, last_success_at=now, next_due=now + timedelta(60))
    set_rows(store, names[:3], next_due=now - timedelta(seconds=600))  # ten minutes behind
    set_rows(store, names[3:60], consecutive_failures=2, failing_since=now)
    set_rows(store, names[60:70], last_polled_at=None, last_success_at=None)
    metrics = Metrics()
    cluster = metrics.watch_database(store, lambda: feeds)
    cluster.refresh()
    text = metrics.exposition().decode()
    assert value(text, 'monitor_feeds{state="lagging"}') == 3
    assert value(text, 'monitor_feeds{state="failing"}') == 57
    assert value(text, 'monitor_feeds{state="never_polled"}') == 10
    assert value(text, 'monitor_feeds{state="ok"}') == N - 70
    assert value(text, 'monitor_feeds_lag_seconds{quantile="0.5"}') == 0
    assert 599 < value(text, 'monitor_feeds_lag_seconds{quantile="1"}') < 700
    listed = re.findall(r'^monitor_feed_lag_seconds\{feed="([^"]+)"\}', text, re.M)
    assert len(listed) == ClusterMetrics.TROUBLED  # not one per feed
    assert listed[:3] == names[:3]  # the lagging ones first, then the failing
    assert set(listed[3:]) <= set(names[3:60])
    assert len(text.splitlines()) < 150  # at any number of feeds


def test_a_scrape_serves_the_last_read_and_the_next_read_brings_news(store: EventStore) -> None:
    feeds = feeds_of(3)
    FeedLeases(store, "a").ensure(feeds)
    metrics = Metrics()
    cluster = metrics.watch_database(store, lambda: feeds)
    first = metrics.exposition().decode()  # no read yet: the first scrape makes one
    assert value(first, 'monitor_feeds{state="never_polled"}') == 3
    set_rows(store, ["feed-0000"], last_polled_at=datetime.now(UTC))
    metrics.polls.labels(outcome="ok").inc()
    second = metrics.exposition().decode()
    assert value(second, 'monitor_polls_total{outcome="ok"}') == 1  # this replica's: live
    assert value(second, 'monitor_feeds{state="never_polled"}') == 3  # the database's: as read
    assert value(second, "monitor_cluster_metrics_age_seconds") >= 0
    cluster.refresh()
    third = metrics.exposition().decode()
    assert value(third, 'monitor_feeds{state="never_polled"}') == 2


def test_a_database_that_does_not_answer_is_reported_as_down(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'm.db'}")
    metrics = Metrics()
    cluster = metrics.watch_database(store, lambda: feeds_of(2))
    cluster.refresh()
    assert value(metrics.exposition().decode(), "monitor_database_up") == 1
    store.engine.dispose()
    (tmp_path / "m.db").unlink()
    (tmp_path / "m.db").mkdir()  # where the file was, nothing SQLite can open
    cluster.refresh()
    text = metrics.exposition().decode()
    assert value(text, "monitor_database_up") == 0
    assert "monitor_ready" in text  # this replica's own numbers still answer


def test_status_snapshot_gives_each_column_as_written_and_times_in_utc(db_url: str) -> None:
    """`monitor status`, /healthz and the dashboard read these tables with plain SQL, not the
    ORM: every value comes back as the ORM wrote it, timestamps as UTC ISO text."""
    store = EventStore(db_url)
    try:
        check_snapshot(store)
    finally:
        store.close()


def check_snapshot(store: EventStore) -> None:
    feeds = feeds_of(2)
    FeedLeases(store, "a").ensure(feeds)
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    hour = timedelta(hours=1)
    set_rows(
        store,
        ["feed-0000"],
        owner="b",
        next_due=when + hour,
        last_polled_at=when,
        last_success_at=when - hour,
        last_new_at=when - 2 * hour,
        last_items=7,
        consecutive_failures=3,
        failing_since=when - 3 * hour,
        last_error="HTTP 503",
        last_error_kind="http",
        polled_by="a",
        health_alert="silent:feed-0000",
    )
    with store.transaction() as session:
        session.add(
            FeedHealth(
                feed="gone",
                url="http://127.0.0.1:1/gone.xml",
                last_success=when,
                last_error="timed out",
                consecutive_failures=1,
                polls=4,
                last_items=2,
            )
        )
        session.add(Checkpoint(name="projections", seq=0))
        for i, status in enumerate(["pending", "pending", "sent"]):
            session.add(
                OutboxRow(
                    alert_id=f"alert-{i}",
                    channel="ops",
                    status=status,
                    next_attempt_at=when,
                    created_at=when,
                )
            )
    snapshot = status_snapshot(store, feeds)
    assert snapshot["head"] == 0 and snapshot["lag"] == {"projections": 0}
    assert snapshot["outbox"] == {"pending": 2, "sent": 1} and snapshot["outbox_pending"] == 2
    assert snapshot["last_poll"] == "2026-01-02T03:04:05.678901+00:00"
    first, second, gone = snapshot["feeds"]  # configured ones in order, then the rest by name
    assert first == {
        "feed": "feed-0000",
        "url": "http://127.0.0.1:1/0.xml",
        "last_poll": "2026-01-02T03:04:05.678901+00:00",
        "last_success": "2026-01-02T02:04:05.678901+00:00",
        "last_new": "2026-01-02T01:04:05.678901+00:00",
        "next_due": "2026-01-02T04:04:05.678901+00:00",
        "polled_by": "a",
        "leased_by": "b",
        "consecutive_failures": 3,
        "failing_since": "2026-01-02T00:04:05.678901+00:00",
        "last_error": "HTTP 503",
        "last_error_kind": "http",
        "last_items": 7,
        "changes": 0,
        "open_health_alert": "silent:feed-0000",
    }
    assert second["feed"] == "feed-0001" and second["last_poll"] is None
    assert second["next_due"] is not None and second["leased_by"] is None
    assert gone == {
        "feed": "gone",
        "url": "http://127.0.0.1:1/gone.xml",
        "last_poll": None,
        "last_success": "2026-01-02T03:04:05.678901+00:00",
        "last_new": None,
        "next_due": None,
        "polled_by": None,
        "leased_by": None,
        "consecutive_failures": 1,
        "failing_since": None,
        "last_error": "timed out",
        "last_error_kind": None,
        "last_items": 2,
        "changes": 4,
        "open_health_alert": None,
    }
