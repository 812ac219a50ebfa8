"""Append and replay rates of the event log, on SQLite and PostgreSQL. Run by hand:

    .venv/bin/python -m bench.bench_store [--events 6000] [--no-postgres]

Append: article-sized batches (one transaction each, as ingest does) and single events.
Replay: reading the whole log back through the typed models (upcast + validation), and
rebuilding every projection from zero. A throwaway PostgreSQL server is started from the
local binaries (tests/support/pg.py) with ``fsync`` switched back on, so both backends pay for
durable commits. Each figure is also given as a ratio to a baseline measured in the same run on the
same database engine: plain SQL inserts and reads of the same rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from monitor.store.log import EventStore, NewEvent
from monitor.store.projections import all_projections, rebuild
from monitor.store.tables import EventRow
from tests.support.crash_driver import article_events


def articles(total_events: int) -> list[list[NewEvent]]:
    batches: list[list[NewEvent]] = []
    count, i = 0, 0
    while count < total_events:
        batch = article_events(i)
        batches.append(batch)
        count += len(batch)
        i += 1
    return batches


def timed(action: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    n = action()
    return n, time.perf_counter() - start


def baseline(url: str, batches: list[list[NewEvent]]) -> tuple[float, float]:
    """The database's own cost, in the same run: the same rows inserted with plain SQL, one
    transaction per article (no idempotency checks, no stream versions, no head lock), and
    read back as raw rows (no upcasting or validation). Returns (append/s, read/s)."""
    engine = EventStore(url).engine  # same pragmas and schema, a separate database
    rows, seq = [], 0
    for batch in batches:
        chunk = []
        for new in batch:
            seq += 1
            chunk.append(
                {
                    "seq": seq,
                    "id": str(uuid.uuid4()),
                    "stream": new.stream,
                    "stream_version": seq,
                    "type": new.data.type,
                    "schema_version": 1,
                    "occurred_at": new.occurred_at,
                    "recorded_at": datetime.now(UTC),
                    "idempotency_key": new.idempotency_key,
                    "data": new.data.model_dump(mode="json", exclude={"type"}),
                    "metadata": dict(new.metadata),
                }
            )
        rows.append(chunk)
    table = EventRow.__table__

    def insert_all() -> int:
        for chunk in rows:
            with engine.begin() as conn:
                conn.execute(table.insert(), chunk)
        return seq

    def read_all() -> int:
        with engine.connect() as conn:
            return len(conn.execute(table.select().order_by(table.c.seq)).fetchall())

    appended, append_s = timed(insert_all)
    read, read_s = timed(read_all)
    engine.dispose()
    return appended / append_s, read / read_s


def bench(name: str, url: str, events: int, baseline_url: str) -> None:
    store = EventStore(url)
    batches = articles(events)
    raw_append, raw_read = baseline(baseline_url, batches)
    print(
        f"{name:<22} {'baseline: plain SQL insert, per article':<40} {raw_append:>31.0f} events/s"
    )
    print(f"{name:<22} {'baseline: plain SQL read':<40} {raw_read:>31.0f} events/s")

    def append_batches() -> int:
        for batch in batches:
            store.append(batch)
        return sum(len(b) for b in batches)

    def append_singles() -> int:
        n = min(1000, events // 4)
        for i in range(n):
            store.append([NewEvent(stream=f"s:{i % 50}", data=batches[0][0].data)])
        return n

    def read_all() -> int:
        return sum(1 for _ in store.read(batch=1000))

    def rebuild_all() -> int:
        for projection in all_projections():
            rebuild(store, projection)
        return store.head()

    size = sum(len(b) for b in batches) / len(batches)
    for label, action, base in (
        (f"append, {size:.1f} events/transaction", append_batches, raw_append),
        ("append, 1 event/transaction", append_singles, raw_append),
        ("replay: read + upcast + validate", read_all, raw_read),
        ("replay: rebuild all projections", rebuild_all, raw_read),
    ):
        n, seconds = timed(action)
        rate = n / seconds
        print(
            f"{name:<22} {label:<40} {n:>7} events {seconds:7.2f} s {rate:>9.0f} events/s"
            f"  ({rate / base:.2f}x baseline)"
        )
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        for sync in ("full", "normal"):
            url = f"sqlite:///{Path(tmp) / f'bench-{sync}.db'}?synchronous={sync}"
            base = f"sqlite:///{Path(tmp) / f'base-{sync}.db'}?synchronous={sync}"
            bench(f"sqlite sync={sync}", url, args.events, base)
    if args.no_postgres:
        return 0
    from tests.support.pg import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        print(f"postgresql: skipped ({exc})", file=sys.stderr)
        return 0
    try:
        url, base = server.new_database(), server.new_database()
        store = EventStore(url, create=False)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SYSTEM SET fsync = on"))
            conn.execute(text("SELECT pg_reload_conf()"))
        store.close()
        bench("postgresql fsync=on", url, args.events, base)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
