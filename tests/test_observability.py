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
from monitor.store.log import EventStore
from monitor.store.tables import FeedLease

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
