"""The event log, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

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
    assert (
        a.append([failed(1, key="same")]).events[0].id
        == b.append([failed(1, key="same")]).events[0].id
    )
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
    store.append(
        [NewEvent(stream="feed:f", data=FeedPolled(feed="f", url="u", items=1, new_items=1))]
    )
    assert [e.seq for e in store.read(3, batch=2)] == [4, 5, 6, 7, 8]
    assert [e.type for e in store.read(types=["FeedPolled"])] == ["FeedPolled"]
    assert len(list(store.read(limit=3, batch=2))) == 3
    assert store.get(store.read_stream("feed:f")[0].id).seq == 8
    last = store.last_of(failed(0).stream)
    assert last is not None and last == store.read_stream(failed(0).stream)[-1]
    assert store.last_of("feed:none") is None


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


def test_conflict_error_names_the_stream_and_versions(db_url: str) -> None:
    store = EventStore(db_url)
    store.append([failed(1), failed(2)])
    with pytest.raises(ConcurrencyError) as err:
        store.append([failed(3)], expected_versions={"article:a": 1})
    assert (err.value.stream, err.value.actual, err.value.expected) == ("article:a", 2, 1)
    # A guard on another stream than the ones written is checked too.
    with pytest.raises(ConcurrencyError):
        store.append([failed(3, stream="article:b")], expected_versions={"article:a": 0})
    assert store.head() == 2
    # Retrying a batch that was stored (same keys) is not a conflict: it returns the events.
    first = store.append([failed(4, key="k4")], expected_versions={"article:a": 2})
    again = store.append([failed(4, key="k4")], expected_versions={"article:a": 2})
    assert again.events == first.events and again.created == [False]
    store.close()


def test_batches_share_a_correlation_id_and_effects_inherit_it(db_url: str) -> None:
    store = EventStore(db_url)
    batch = store.append([failed(1, key="d1"), failed(2, key="d2")]).events
    assert {e.metadata["correlation_id"] for e in batch} == {batch[0].id}
    caused = store.append(
        [
            NewEvent(
                stream="alert:x",
                data=FeedPolled(feed="f", url="u", items=1, new_items=1),
                metadata={"causation_id": batch[1].id},
            )
        ]
    ).events[0]
    assert caused.metadata == {"causation_id": batch[1].id, "correlation_id": batch[0].id}
    given = store.append(
        [NewEvent(stream="s", data=failed(3).data, metadata={"correlation_id": "c"})]
    )
    assert given.events[0].metadata["correlation_id"] == "c"
    # What append returns is what a reader gets back.
    assert list(store.read()) == [*batch, caused, given.events[0]]
    store.close()


def test_a_reader_is_not_blocked_by_an_open_write_transaction(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    store.append([failed(1)])
    with store.transaction() as session:
        store.append([failed(2)], session=session)
        # Another connection reads the committed log while the writer holds the lock.
        assert [e.seq for e in store.read()] == [1]
        assert store.head() == 1
    assert store.head() == 2
    store.close()


def test_postgresql_urls_without_a_driver_use_psycopg_3() -> None:
    from monitor.store.db import make_engine

    engine = make_engine("postgresql://u@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_sqlite_durability_setting(tmp_path) -> None:
    from monitor.store.db import StoreError

    for value, expected in (("", 2), ("?synchronous=normal", 1)):
        store = EventStore(f"sqlite:///{tmp_path / 'd.db'}{value}")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        store.close()
    with pytest.raises(StoreError, match="synchronous"):
        EventStore(f"sqlite:///{tmp_path / 'd.db'}?synchronous=off")


WRITER = """
import sys
from monitor.events import ArticleFailed
from monitor.store.log import EventStore, NewEvent
store = EventStore(sys.argv[1])
w, n = sys.argv[2], int(sys.argv[3])
for i in range(n):
    data = ArticleFailed(article_id=w, url="u", stage="fetch", reason=str(i))
    store.append([
        NewEvent(stream=f"article:{w}", data=data, idempotency_key=f"{w}-{i}-a"),
        NewEvent(stream="shared", data=data, idempotency_key=f"{w}-{i}-b"),
        NewEvent(stream="shared", data=data, idempotency_key=f"{w}-{i}-a"),  # repeated key
    ])
store.close()
"""


def test_writer_processes_never_duplicate_or_hide_a_position(db_url: str) -> None:
    """Processes append at once while this one follows the log: every seq seen once, in order."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    store = EventStore(db_url)
    writers, per_writer = 3, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, f"w{w}", str(per_writer)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    seen: list[int] = []
    position = 0
    while True:
        finished = all(p.poll() is not None for p in procs)
        for event in store.read(position, batch=7):
            seen.append(event.seq)
            position = event.seq
        if finished:
            break
    for p in procs:
        assert p.wait() == 0, p.stderr.read() if p.stderr else ""
    total = writers * per_writer * 2
    assert seen == list(range(1, total + 1))
    shared = [e.stream_version for e in store.read_stream("shared")]
    assert shared == list(range(1, writers * per_writer + 1))
    store.close()


# --- moving a log between databases -------------------------------------------------------------


def _sample_log(store: EventStore) -> None:
    from tests.support.crash_driver import article_events

    for i in range(12):
        store.append(article_events(i))
    store.append(
        [NewEvent(stream="feed:f", data=FeedPolled(feed="f", url="ü", items=1, new_items=1))]
    )


def _export(store: EventStore) -> str:
    import io

    from monitor.store.transfer import export_jsonl

    out = io.StringIO()
    export_jsonl(store, out)
    return out.getvalue()


def test_export_then_import_is_lossless_across_backends(db_url: str, tmp_path) -> None:
    from monitor.store.transfer import import_jsonl

    source = EventStore(f"sqlite:///{tmp_path / 'source.db'}")
    _sample_log(source)
    dump = _export(source)
    target = EventStore(db_url)
    result = import_jsonl(target, dump.splitlines())
    assert (result.written, result.skipped, result.head) == (source.head(), 0, source.head())
    assert _export(target) == dump  # byte for byte, positions, ids, timestamps and all
    assert list(target.read()) == list(source.read())
    # Appending continues the log: next position, next stream version, keys still known.
    again = target.append([failed(1, key="discovered:a00000")])
    assert again.created == [False]
    new = target.append([failed(2)]).events[0]
    assert new.seq == source.head() + 1
    source.close()
    target.close()


def test_import_resumes_and_refuses_conflicts_and_gaps(db_url: str, tmp_path) -> None:
    from monitor.store.transfer import TransferError, import_jsonl

    source = EventStore(f"sqlite:///{tmp_path / 'source.db'}")
    _sample_log(source)
    lines = _export(source).splitlines()
    target = EventStore(db_url)
    import_jsonl(target, lines[:10], batch=4)
    resumed = import_jsonl(target, lines, batch=4)  # an interrupted import run again
    assert (resumed.written, resumed.skipped) == (len(lines) - 10, 10)
    assert _export(target).splitlines() == lines

    other = EventStore(f"sqlite:///{tmp_path / 'other.db'}")
    other.append([failed(1)])
    with pytest.raises(TransferError, match="line 1: position 1 holds a different event"):
        import_jsonl(other, lines)
    with pytest.raises(TransferError, match="would leave a gap"):
        import_jsonl(EventStore(f"sqlite:///{tmp_path / 'gap.db'}"), lines[3:])
    with pytest.raises(TransferError, match="line 2: not a valid event"):
        import_jsonl(EventStore(f"sqlite:///{tmp_path / 'bad.db'}"), [lines[0], '{"seq": 2}'])
    unknown = lines[0].replace('"schema_version": 1', '"schema_version": 9')
    with pytest.raises(TransferError, match="newer than this program"):
        import_jsonl(EventStore(f"sqlite:///{tmp_path / 'new.db'}"), [unknown])
    for s in (source, target, other):
        s.close()


def test_events_export_and_import_commands(db_url: str, tmp_path) -> None:
    from tests.support.cli import run_cli

    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = EventStore(source_url)
    _sample_log(source)
    export = run_cli("events", "export", "--format", "jsonl", "--db", source_url)
    assert export.returncode == 0, export.stderr
    assert export.stdout == _export(source)
    path = tmp_path / "log.jsonl"
    path.write_text(export.stdout)
    imported = run_cli("events", "import", str(path), "--format", "jsonl", "--db", db_url)
    assert imported.returncode == 0, imported.stderr
    assert f"imported {source.head()} events" in imported.stderr
    target = EventStore(db_url)
    assert _export(target) == export.stdout
    source.close()
    target.close()


# --- several batches in one transaction (group commit) -----------------------------------------


def test_append_many_is_appending_each_batch_in_turn(db_url: str) -> None:
    store = EventStore(db_url)
    store.append([failed(0, key="k0")])
    first, second, third = store.append_many(
        [
            [failed(1, key="k1"), failed(2, key="k0")],  # k0 is stored already
            [failed(3, key="k1", stream="article:b"), failed(4, key="k4", stream="article:b")],
            [failed(5, stream="article:b")],
        ]
    )
    assert first.created == [True, False] and second.created == [False, True]
    assert second.events[0] == first.events[0]  # a key repeated in a later batch
    assert [e.seq for e in first.new + second.new + third.new] == [2, 3, 4]
    assert [e.stream_version for e in second.new + third.new] == [1, 2]
    # Each batch keeps its own correlation id, as separate appends would.
    assert first.events[0].metadata["correlation_id"] == first.events[0].id
    assert second.new[0].metadata["correlation_id"] == second.events[0].metadata["correlation_id"]
    assert third.events[0].metadata["correlation_id"] == third.events[0].id
    assert list(store.read())[1:] == first.new + second.new + third.new
    assert store.head() == 4
    # The whole call again is an idempotent retry: nothing new, the stored events back.
    again = store.append_many([[failed(1, key="k1")], [failed(4, key="k4", stream="article:b")]])
    assert [r.created for r in again] == [[False], [False]] and store.head() == 4
    store.close()


def test_append_many_checks_each_batch_against_the_batches_before_it(db_url: str) -> None:
    store = EventStore(db_url)
    results = store.append_many(
        [[failed(1)], [failed(2)]],
        expected_versions=[{"article:a": 0}, {"article:a": 1}],
    )
    assert [r.events[0].stream_version for r in results] == [1, 2]
    with pytest.raises(ConcurrencyError) as err:
        store.append_many(
            [[failed(3, stream="article:b")], [failed(4)]],
            expected_versions=[None, {"article:a": 1}],
        )
    assert (err.value.stream, err.value.actual, err.value.expected) == ("article:a", 2, 1)
    # Nothing of the refused call was stored, not even the batch before the stale one.
    assert store.head() == 2 and store.read_stream("article:b") == []
    with pytest.raises(ValueError, match="one entry"):
        store.append_many([[failed(5)]], expected_versions=[])
    store.close()


def test_append_many_rolls_back_whole_with_the_callers_transaction(db_url: str) -> None:
    store = EventStore(db_url)
    store.append([failed(1)])
    with pytest.raises(RuntimeError), store.transaction() as session:
        store.append_many([[failed(2, key="x")], [failed(3)]], session=session)
        raise RuntimeError("crash before commit")
    assert store.head() == 1
    # The positions and the key were released: the next writer gets them.
    redo = store.append_many([[failed(2, key="x")]])
    assert redo[0].created == [True] and redo[0].events[0].seq == 2
    assert [e.seq for e in store.read()] == [1, 2]
    store.close()


def test_effects_in_a_later_batch_inherit_a_cause_from_an_earlier_one(db_url: str) -> None:
    store = EventStore(db_url)
    cause = failed(1, key="cause")
    from monitor.store.log import event_id_for

    effect = NewEvent(
        stream="alert:x",
        data=FeedPolled(feed="f", url="u", items=1, new_items=1),
        metadata={"causation_id": event_id_for("cause")},
    )
    first, second = store.append_many([[failed(0, key="first"), cause], [effect]])
    assert second.events[0].metadata["correlation_id"] == first.events[0].id
    store.close()


def test_event_ids_are_name_based_uuids_of_the_keys() -> None:
    import hashlib
    import uuid

    from monitor.store.log import EVENT_NAMESPACE, event_id_for

    for key in ("discovered:a1", "", "ü" * 300, "fact:nk:t1:0:casualties"):
        assert event_id_for(key) == str(uuid.uuid5(EVENT_NAMESPACE, key))
    # Enough keys that the digit carrying the variant bits takes each of its 16 values.
    keys = [f"fact:nk:{n:x}:{n % 7}:casualties" for n in range(500)]
    digits = {hashlib.sha1(EVENT_NAMESPACE.bytes + k.encode()).hexdigest()[16] for k in keys}
    assert len(digits) == 16
    assert all(event_id_for(k) == str(uuid.uuid5(EVENT_NAMESPACE, k)) for k in keys)


def test_rows_written_by_the_orm_read_back_the_same(db_url: str) -> None:
    """Old rows (written through SQLAlchemy, older schema versions) read as they always did."""
    from sqlalchemy import insert

    from monitor.store.log import to_stored
    from monitor.store.tables import EVENTS, EventRow

    store = EventStore(db_url)
    ours = store.append([failed(1, key="k1")]).events[0]
    with store.transaction() as session:
        row = {**ours.model_dump(exclude={"data"}), "seq": 2, "id": "old", "stream_version": 2}
        row["idempotency_key"] = None
        row["data"] = {"article_id": "a", "url": "u", "stage": "extract", "reason": "r"}
        row["schema_version"] = 1  # ArticleFailed v1: no "retryable", the upcaster adds it
        session.execute(insert(EVENTS), [row])
        session.execute(EVENTS.update().values(seq=2).where(EVENTS.c.seq == -1))
        from monitor.store.tables import LogHead

        session.execute(LogHead.__table__.update().values(seq=2))  # type: ignore[attr-defined]
    old = store.get("old")
    assert old is not None and old.data.retryable is False and old.seq == 2
    assert old.occurred_at == ours.occurred_at and old.recorded_at == ours.recorded_at
    with store.read_session() as session:
        rows = session.query(EventRow).order_by(EventRow.seq).all()  # type: ignore[arg-type]
        assert [to_stored(r) for r in rows] == list(store.read())
    store.close()


def test_an_insert_the_database_refuses_stores_nothing_of_the_append(db_url: str) -> None:
    """The insert, the head's update and (on PostgreSQL) the COMMIT go to the server
    together: when the insert fails, none of the append is stored and the next one is whole."""
    from sqlalchemy import insert

    from monitor.store.tables import EVENTS

    store = EventStore(db_url)
    store.append([failed(1)])
    with store.transaction() as session:  # a row at the next position, behind the store's back
        session.execute(
            insert(EVENTS).values(
                seq=2,
                id="intruder",
                stream="other",
                stream_version=1,
                type="ArticleFailed",
                schema_version=2,
                recorded_at=datetime(2020, 10, 1, tzinfo=UTC),
                data={},
                metadata={},
            )
        )
    with pytest.raises(IntegrityError):
        store.append_many([[failed(2, key="k2")], [failed(3, key="k3", stream="article:b")]])
    assert store.head() == 1
    with store.transaction() as session:
        session.execute(EVENTS.delete().where(EVENTS.c.seq == 2))
    redo = store.append_many([[failed(2, key="k2")], [failed(3, key="k3", stream="article:b")]])
    assert [e.seq for r in redo for e in r.events] == [2, 3]
    assert [e.stream_version for r in redo for e in r.events] == [2, 1]
    assert [e.seq for e in store.read()] == [1, 2, 3]
    store.close()


@pytest.mark.postgres
def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced(
    postgres, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Connections idle longer than PING_AFTER_IDLE_S are pinged before use: one whose server
    process is gone (a restart, an administrator) is replaced instead of failing the caller.
    A connection found dead in use fails its call and takes the pool's idle ones with it."""
    import psycopg
    from sqlalchemy import make_url

    from monitor.store import db

    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    url = postgres.new_database()
    store = EventStore(url)
    store.append([failed(1)])
    assert store.head() == 1
    parsed = make_url(url)
    dsn = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    store.append([failed(2)])
    assert [e.seq for e in store.read()] == [1, 2]
    assert store.head() == 2
    # Dropped while in steady use (not pinged): that one call fails, and the pool is renewed.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 1e9)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(OperationalError):
        store.append([failed(3)])
    store.append([failed(3)])
    assert [e.seq for e in store.read()] == [1, 2, 3]
    store.close()
