"""The event log against the `eventsourcing` library's recorders, side by side. Run by hand:

    .venv/bin/python -m bench.bench_store [--events 4000] [--no-postgres] [--growth [--x100]]
                                          [--profile]

Both sides store the same rows (4-event articles: discovered, fetched, extracted, one fact) in
the same run, on the same disk: SQLite in WAL mode with ``synchronous=FULL`` on both sides,
and a throwaway PostgreSQL (tests/support/pg.py) started with ``fsync=on``. The peer is
eventsourcing's ``SQLiteApplicationRecorder`` / ``PostgresApplicationRecorder``:
``insert_events`` for appends, ``select_notifications`` for reads. Its rows carry the payload
JSON-encoded by its own transcoder (the plain dicts are prepared outside the timing, which
favours the peer); ours go through the pydantic models.

Rows: append one article per transaction; append 100 articles per transaction; replay, i.e.
read the whole log back (ours: upcast + validated models; the peer: its notifications, raw
and decoded); rebuild every projection from zero (against the peer's read + decode, the least
any rebuild must do). ``--growth`` adds a table at x1, x10 (and with ``--x100`` x100) times
``--events`` on SQLite, as cost per event, to show that it stays flat as the log grows.
``--profile`` prints a pyinstrument profile of our append and replay paths.

`eventsourcing` is a benchmark-only dependency: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from monitor.events import (
    ArticleDiscovered,
    ArticleExtracted,
    ArticleFetched,
    ArticleRef,
    FactReported,
)
from monitor.store.log import EventStore, NewEvent
from monitor.store.projections import all_projections, rebuild
from tests.support.crash_driver import facts

GROUP = 100  # articles per transaction in the batched rows
T0 = datetime(2020, 9, 27, 6, tzinfo=UTC)
PEER_NS = uuid.UUID("0b7d1b8e-7a59-4a57-9d1e-3c1d6f0c2a44")


def article(i: int) -> list[NewEvent]:
    """Article ``i``: discovered, fetched, extracted (240 characters of text), one fact."""
    aid = f"a{i:07d}"
    url = f"https://news.example/{aid}"
    when = T0 + timedelta(minutes=i)
    stream = f"article:{aid}"
    outlet = ["RFE/RL", "AP", "Levant Wire"][i % 3]
    ref = ArticleRef(article_id=aid, url=url, outlet=outlet, published=when)
    payloads = [
        (
            f"discovered:{aid}",
            ArticleDiscovered(article_id=aid, feed="f", url=url, outlet=outlet, published=when),
        ),
        (
            f"fetched:{aid}",
            ArticleFetched(
                article_id=aid, url=url, final_url=url, content_hash=f"c{i}", size=1000 + i
            ),
        ),
        (
            f"extracted:{aid}",
            ArticleExtracted(
                article_id=aid,
                url=url,
                text=f"Article {i}. " * 20,
                text_hash=f"t{i}",
                published=when,
                watches=["nk"],
            ),
        ),
        (f"fact:{aid}:0", FactReported(watch="nk", article=ref, fact=facts(i)[0])),
    ]
    return [
        NewEvent(stream=stream, data=data, idempotency_key=key, occurred_at=when)
        for key, data in payloads
    ]


def articles(start: int, count: int) -> list[list[NewEvent]]:
    return [article(i) for i in range(start, start + count)]


# --- the peer -----------------------------------------------------------------------------------


@dataclass
class PeerRows:
    """The same articles as the peer stores them: (originator id, version, topic, state)."""

    articles: list[list[tuple[uuid.UUID, int, str, dict[str, Any]]]] = field(default_factory=list)

    @classmethod
    def of(cls, batches: Sequence[Sequence[NewEvent]]) -> PeerRows:
        rows = cls()
        for batch in batches:
            versions: dict[str, int] = {}
            out = []
            for new in batch:
                versions[new.stream] = versions.get(new.stream, 0) + 1
                state = {
                    "data": new.data.model_dump(mode="json"),
                    "key": new.idempotency_key,
                    "occurred_at": new.occurred_at.isoformat() if new.occurred_at else None,
                }
                out.append(
                    (uuid.uuid5(PEER_NS, new.stream), versions[new.stream], new.data.type, state)
                )
            rows.articles.append(out)
        return rows


class Peer:
    """eventsourcing's application recorder with its JSON transcoder."""

    def __init__(self, recorder: Any, close: Callable[[], None]) -> None:
        from eventsourcing.persistence import JSONTranscoder, StoredEvent

        self.recorder = recorder
        self.transcoder = JSONTranscoder()
        self.stored_event = StoredEvent
        self.close = close

    def encode(self, rows: Sequence[tuple[uuid.UUID, int, str, dict[str, Any]]]) -> list[Any]:
        encode, make = self.transcoder.encode, self.stored_event
        return [make(o, v, t, encode(s)) for o, v, t, s in rows]

    def append_each(self, rows: PeerRows) -> int:
        n = 0
        for batch in rows.articles:
            self.recorder.insert_events(self.encode(batch))
            n += len(batch)
        return n

    def append_grouped(self, rows: PeerRows) -> int:
        n = 0
        for i in range(0, len(rows.articles), GROUP):
            group = [row for batch in rows.articles[i : i + GROUP] for row in batch]
            self.recorder.insert_events(self.encode(group))
            n += len(group)
        return n

    def notifications(self) -> Iterator[Any]:
        position = 0
        while True:
            page = self.recorder.select_notifications(position, 1000, inclusive_of_start=False)
            if not page:
                return
            yield from page
            position = page[-1].id

    def read_raw(self) -> int:
        return sum(1 for _ in self.notifications())

    def read_decoded(self) -> int:
        decode = self.transcoder.decode
        return sum(1 for n in self.notifications() if decode(n.state) is not None)


def sqlite_peer(path: Path) -> Peer:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(path), pool_size=1, max_overflow=0)
    with datastore.get_connection(commit=True) as conn:
        cursor = conn.cursor()
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2, "the peer must run with synchronous=FULL too"
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    return Peer(recorder, datastore.close)


def postgres_peer(url: str) -> Peer:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parsed = make_url(url)
    datastore = PostgresDatastore(
        dbname=str(parsed.database),
        host=str(parsed.host),
        port=int(parsed.port or 5432),
        user=str(parsed.username),
        password="",
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    return Peer(recorder, datastore.close)


# --- our side -----------------------------------------------------------------------------------


def append_each(store: EventStore, batches: Sequence[list[NewEvent]]) -> int:
    for batch in batches:
        store.append(batch)
    return sum(len(b) for b in batches)


def append_grouped(store: EventStore, batches: Sequence[list[NewEvent]]) -> int:
    for i in range(0, len(batches), GROUP):
        store.append_many(batches[i : i + GROUP])
    return sum(len(b) for b in batches)


def read_all(store: EventStore) -> int:
    return sum(1 for _ in store.read(batch=1000))


def rebuild_all(store: EventStore) -> int:
    for projection in all_projections():
        rebuild(store, projection)
    return store.head()


def timed(action: Callable[..., int], *args: Any) -> float:
    """Events per second of ``action(*args)`` (which returns how many events it handled)."""
    start = time.perf_counter()
    n = action(*args)
    return n / (time.perf_counter() - start)


@contextmanager
def profiled(enabled: bool, title: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        print(f"\n--- profile: {title}", file=sys.stderr)
        print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)


# --- the tables ---------------------------------------------------------------------------------


Row = tuple[str, float, float, str]


def compare(
    name: str,
    store: EventStore,
    peer: Peer,
    events: int,
    *,
    profile: bool = False,
) -> list[Row]:
    """Every row of the side-by-side table for one backend (two fresh, empty logs)."""
    count = events // 4
    single = articles(0, count)
    grouped = articles(count, count)
    peer_single, peer_grouped = PeerRows.of(single), PeerRows.of(grouped)
    rows: list[Row] = []
    with profiled(profile, f"{name}: append, one article a transaction"):
        ours = timed(lambda: append_each(store, single))
    theirs = timed(lambda: peer.append_each(peer_single))
    rows.append(("append, 1 article (4 events) a transaction", ours, theirs, "insert_events"))
    ours = timed(lambda: append_grouped(store, grouped))
    theirs = timed(lambda: peer.append_grouped(peer_grouped))
    rows.append((f"append, {GROUP} articles a transaction", ours, theirs, "insert_events"))
    with profiled(profile, f"{name}: replay, read + upcast + validate"):
        ours = timed(lambda: read_all(store))
    decoded = timed(peer.read_decoded)
    raw = timed(peer.read_raw)
    rows.append(("replay: read + upcast + validate", ours, decoded, "select + JSON decode"))
    rows.append(("  the same, against the peer's raw rows", ours, raw, "select_notifications"))
    ours = timed(lambda: rebuild_all(store))
    rows.append(("replay: rebuild every projection", ours, decoded, "select + JSON decode"))
    return [(f"{name}: {label}", a, b, how) for label, a, b, how in rows]


def print_table(rows: list[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'path':<{width}} | {'monitor':>12} | {'eventsourcing':>13} | ratio | peer call")
    print(f"{'-' * width}-|-{'-' * 12}-|-{'-' * 13}-|-------|-{'-' * 20}")
    for label, ours, theirs, how in rows:
        print(
            f"{label:<{width}} | {ours:>8,.0f} ev/s | {theirs:>8,.0f} ev/s | "
            f"{ours / theirs:5.2f} | {how}"
        )


def growth(tmp: Path, base: int, scales: Sequence[int]) -> None:
    """Cost per event at each size of log, SQLite, ours and the peer's: the log is filled in
    batches of 100 articles, then 100 more articles are appended one a transaction on top of
    it, then the whole log is read back and (ours) every projection rebuilt."""
    header = ["events", "fill (100/tx)", "append (1/tx)", "replay", "rebuild"]
    print("\nSQLite, microseconds per event as the log grows (monitor / eventsourcing)")
    print(" | ".join(f"{h:>21}" for h in header))
    first: list[float] | None = None
    for scale in scales:
        n = base * scale
        store = EventStore(f"sqlite:///{tmp / f'grow-{scale}.db'}")
        peer = sqlite_peer(tmp / f"grow-peer-{scale}.db")
        fill = articles(0, n // 4)
        top = articles(n // 4, 100)
        cells: list[tuple[float, float]] = [
            (timed(append_grouped, store, fill), peer_rate(peer, fill, grouped=True)),
            (timed(append_each, store, top), peer_rate(peer, top, grouped=False)),
            (timed(read_all, store), timed(peer.read_decoded)),
        ]
        rebuild_rate = timed(rebuild_all, store)
        us = [(1e6 / a, 1e6 / b) for a, b in cells] + [(1e6 / rebuild_rate, float("nan"))]
        flat = [a for a, _ in us]
        first = first or flat
        line = [f"{n:>21,}"]
        for (a, b), a0 in zip(us, first, strict=True):
            peer_text = "" if b != b else f" / {b:5.1f}"
            line.append(f"{a:6.1f}{peer_text} (x{a / a0:4.2f})".rjust(21))
        print(" | ".join(line))
        store.close()
        peer.close()
    print("(xN: our cost per event against the smallest log; flat means about x1)")


def peer_rate(peer: Peer, batches: list[list[NewEvent]], *, grouped: bool) -> float:
    rows = PeerRows.of(batches)
    return timed(peer.append_grouped if grouped else peer.append_each, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events per row and side")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--growth", action="store_true", help="add the x1/x10 growth table")
    parser.add_argument("--x100", action="store_true", help="growth up to x100 (slow)")
    parser.add_argument("--profile", action="store_true", help="pyinstrument our hot paths")
    args = parser.parse_args(argv)
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        print(
            "bench_store compares against the eventsourcing library, which is not installed:\n"
            "    .venv/bin/pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as name:
        tmp = Path(name)
        store = EventStore(f"sqlite:///{tmp / 'monitor.db'}")
        peer = sqlite_peer(tmp / "peer.db")
        rows += compare("SQLite", store, peer, args.events, profile=args.profile)
        store.close()
        peer.close()
        if not args.no_postgres:
            rows += postgres_rows(args.events, profile=args.profile)
        print_table(rows)
        if args.growth or args.x100:
            growth(tmp, args.events // 2, (1, 10, 100) if args.x100 else (1, 10))
    return 0


def postgres_rows(events: int, *, profile: bool) -> list[Row]:
    from tests.support.pg import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer(fsync=True).start()
    except PostgresUnavailable as exc:
        print(f"postgresql: skipped ({exc})", file=sys.stderr)
        return []
    try:
        store = EventStore(server.new_database())
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW fsync").scalar() == "on"
        peer = postgres_peer(server.new_database())
        rows = compare("PostgreSQL", store, peer, events, profile=profile)
        store.close()
        peer.close()
        return rows
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
