"""The event log, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from monitor.events import ArticleFailed, FeedPolled
from monitor.store.log import ConcurrencyError, EventStore, NewEvent


def failed(n: int, key: str | None = None, stream: str = "article:a") -> NewEvent:
    return NewEvent(
        stream=stream,
        data=ArticleFailed(article_id="a", url=f"http://x/{n}", stage="fetch", reason=f"r{n}"),
        idempotency_key=key,
        occurred_at=datetime(2020, 10, 1, tzinfo=UTC),
    )


def test_append_assigns_consecutive_positions_and_stream_versions(db_url: str) -> None:
    store = EventStore(db_url)
    first = store.append([failed(1), failed(2)])
    second = store.append([failed(3, stream="article:b")])
    seqs = [e.seq for e in first.events + second.events]
    assert seqs == [1, 2, 3]
    assert [e.stream_version for e in first.events] == [1, 2]
    assert second.events[0].stream_version == 1
    assert store.head() == 3
    back = list(store.read())
    assert [e.seq for e in back] == [1, 2, 3]
    assert back[0].data == first.events[0].data
    assert back[0].occurred_at == datetime(2020, 10, 1, tzinfo=UTC)
    store.close()


def test_idempotency_key_makes_a_second_append_a_no_op(db_url: str) -> None:
    store = EventStore(db_url)
    one = store.append([failed(1, key="k1")])
    again = store.append([failed(99, key="k1"), failed(2, key="k2")])
    assert again.created == [False, True]
    assert again.events[0] == one.events[0]  # the stored event, not the new payload
    assert store.head() == 2
    # The same key twice inside one batch is stored once.
    batch = store.append([failed(5, key="k5"), failed(6, key="k5")])
    assert batch.created == [True, False]
    assert store.head() == 3
    store.close()


def test_ids_derive_from_idempotency_keys_across_databases(tmp_path) -> None:
    a = EventStore(f"sqlite:///{tmp_path / 'a.db'}")
    b = EventStore(f"sqlite:///{tmp_path / 'b.db'}")
    assert a.append([failed(1, key="same")]).events[0].id == b.append([failed(1, key="same")]).events[0].id
    assert a.append([failed(2)]).events[0].id != b.append([failed(2)]).events[0].id


def test_stale_expected_version_is_a_conflict(db_url: str) -> None:
    store = EventStore(db_url)
    store.append([failed(1)], expected_versions={"article:a": 0})
    with pytest.raises(ConcurrencyError, match="expected 0"):
        store.append([failed(2)], expected_versions={"article:a": 0})
    assert store.head() == 1  # nothing of the failed batch was kept
    store.append([failed(2)], expected_versions={"article:a": 1})
    assert store.head() == 2


def test_failed_transaction_leaves_no_gap(db_url: str) -> None:
    store = EventStore(db_url)
    store.append([failed(1)])
    with pytest.raises(RuntimeError), store.transaction() as session:
        store.append([failed(2)], session=session)
        raise RuntimeError("crash before commit")
    store.append([failed(3)])
    assert [e.seq for e in store.read()] == [1, 2]
    assert [e.data.reason for e in store.read()] == ["r1", "r3"]


def test_read_filters_by_type_and_pages_in_batches(db_url: str) -> None:
    store = EventStore(db_url)
    store.append([failed(i) for i in range(7)])
    store.append([NewEvent(stream="feed:f", data=FeedPolled(feed="f", url="u", items=1, new_items=1))])
    assert [e.seq for e in store.read(3, batch=2)] == [4, 5, 6, 7, 8]
    assert [e.type for e in store.read(types=["FeedPolled"])] == ["FeedPolled"]
    assert len(list(store.read(limit=3, batch=2))) == 3
    assert store.get(store.read_stream("feed:f")[0].id).seq == 8


def test_concurrent_writers_never_duplicate_or_skip(db_url: str) -> None:
    """Threads append while a reader follows the log; the reader sees every seq exactly once."""
    store = EventStore(db_url)
    writers, per_writer = 4, 15
    seen: list[int] = []
    done = threading.Event()

    def write(w: int) -> None:
        for i in range(per_writer):
            store.append([failed(i, key=f"w{w}-{i}", stream=f"s{w}"), failed(i, key=f"w{w}-{i}")])

    def follow() -> None:
        position = 0
        while True:
            finished = done.is_set()
            for event in store.read(position):
                seen.append(event.seq)
                position = event.seq
            if finished:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    total = writers * per_writer
    assert seen == list(range(1, total + 1))
    assert store.head() == total
