"""Append and replay rates of the event log, on SQLite and PostgreSQL. Run by hand:

    .venv/bin/python -m bench.bench_store [--events 6000] [--pg-url URL | --no-postgres]

Append: article-sized batches (one transaction each, as ingest does) and single events.
Replay: reading the whole log back through the typed models (upcast + validation), and
rebuilding every projection from zero. Without ``--pg-url`` a throwaway PostgreSQL server is
started from the local binaries (tests/pg.py) with ``fsync`` switched back on, so both
backends pay for durable commits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from monitor.store.log import EventStore, NewEvent
from monitor.store.projections import all_projections, rebuild
from tests.crash_driver import article_events


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


def bench(name: str, url: str, events: int) -> None:
    store = EventStore(url)
    batches = articles(events)

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
    for label, action in (
        (f"append, {size:.1f} events/transaction", append_batches),
        ("append, 1 event/transaction", append_singles),
        ("replay: read + upcast + validate", read_all),
        ("replay: rebuild all projections", rebuild_all),
    ):
        n, seconds = timed(action)
        print(f"{name:<22} {label:<40} {n:>7} events {seconds:7.2f} s {n / seconds:>9.0f} events/s")
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--pg-url", help="an empty PostgreSQL database to use")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        for sync in ("full", "normal"):
            url = f"sqlite:///{Path(tmp) / f'bench-{sync}.db'}?synchronous={sync}"
            bench(f"sqlite sync={sync}", url, args.events)
    if args.no_postgres:
        return 0
    if args.pg_url:
        bench("postgresql", args.pg_url, args.events)
        return 0
    from tests.pg import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        print(f"postgresql: skipped ({exc})", file=sys.stderr)
        return 0
    try:
        url = server.new_database()
        store = EventStore(url, create=False)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SYSTEM SET fsync = on"))
            conn.execute(text("SELECT pg_reload_conf()"))
        store.close()
        bench("postgresql fsync=on", url, args.events)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
