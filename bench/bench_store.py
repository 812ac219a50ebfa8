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
``--events`` on SQLite and PostgreSQL, as cost per event, to show how it grows with the log.
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
    EventData,
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
    payloads: list[tuple[str, EventData]] = [
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
            out: list[tuple[uuid.UUID, int, str, dict[str, Any]]] = []
            for new in batch:
                versions[new.stream] = versions.get(new.stream, 0) + 1
                state: dict[str, Any] = {
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


class Profiles:
    """pyinstrument profiles of our side, one per path, accumulated over the rounds."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.profilers: dict[str, Any] = {}

    @contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        from pyinstrument import Profiler

        profiler = self.profilers.setdefault(title, Profiler(interval=0.001))
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()

    def print(self) -> None:
        for title, profiler in self.profilers.items():
            print(f"\n--- profile: {title}", file=sys.stderr)
            print(profiler.output_text(unicode=False, color=False), file=sys.stderr)


class Pair:
    """Both sides' events and time on one path, taken in alternating rounds so that a
    neighbour's load on this shared machine falls on both sides alike."""

    def __init__(self) -> None:
        self.n = [0, 0]
        self.seconds = [0.0, 0.0]
        self.best = [0.0, 0.0]

    def run(self, side: int, action: Callable[..., int], *args: Any) -> None:
        start = time.perf_counter()
        n = action(*args)
        elapsed = time.perf_counter() - start
        self.n[side] += n
        self.seconds[side] += elapsed
        self.best[side] = max(self.best[side], n / elapsed)

    def totals(self) -> tuple[float, float]:
        """Events per second over all rounds, ours and the peer's."""
        return self.n[0] / self.seconds[0], self.n[1] / self.seconds[1]


# --- the tables ---------------------------------------------------------------------------------


Row = tuple[str, float, float, str]
ROUNDS = 8  # alternating rounds per append path; reads take the best of three


def compare(name: str, store: EventStore, peer: Peer, events: int, profile: Profiles) -> list[Row]:
    """Every row of the side-by-side table for one backend (two fresh, empty logs)."""
    count = events // 4
    single = articles(0, count)
    grouped = articles(count, count)
    peer_single, peer_grouped = PeerRows.of(single), PeerRows.of(grouped)
    each, group = Pair(), Pair()
    step = max(1, count // ROUNDS)
    for i in range(0, count, step):
        with profile(f"{name}: append, one article a transaction"):
            each.run(0, append_each, store, single[i : i + step])
        each.run(1, peer.append_each, PeerRows(peer_single.articles[i : i + step]))
    step = max(GROUP, count // ROUNDS // GROUP * GROUP)
    for i in range(0, count, step):
        with profile(f"{name}: append, {GROUP} articles a transaction"):
            group.run(0, append_grouped, store, grouped[i : i + step])
        group.run(1, peer.append_grouped, PeerRows(peer_grouped.articles[i : i + step]))
    replay, raw, rebuilt = Pair(), Pair(), Pair()
    for _ in range(3):
        with profile(f"{name}: replay, read + upcast + validate"):
            replay.run(0, read_all, store)
        replay.run(1, peer.read_decoded)
        raw.run(1, peer.read_raw)
        with profile(f"{name}: rebuild every projection"):
            rebuilt.run(0, rebuild_all, store)
    decoded = "select + JSON decode"
    rows: list[Row] = [
        ("append, 1 article (4 events) a transaction", *each.totals(), "insert_events"),
        (f"append, {GROUP} articles a transaction", *group.totals(), "insert_events"),
        ("replay: read + upcast + validate", replay.best[0], replay.best[1], decoded),
        (
            "  the same, against the peer's raw rows",
            replay.best[0],
            raw.best[1],
            "select_notifications",
        ),
        ("replay: rebuild every projection", rebuilt.best[0], replay.best[1], decoded),
    ]
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


def growth(
    name: str, logs: Callable[[int], tuple[EventStore, Peer]], base: int, scales: Sequence[int]
) -> None:
    """Cost per event at each size of log, ours and the peer's, each on fresh logs made by
    ``logs(scale)``: the log is filled in batches of 100 articles, then 100 more articles are
    appended one a transaction on top of it, then the whole log is read back and (ours) every
    projection rebuilt (the best of three, the sides alternating)."""
    header = ["events", "fill (100/tx)", "append (1/tx)", "replay", "rebuild"]
    print(f"\n{name}, microseconds per event as the log grows (monitor / eventsourcing)")
    print(" | ".join(f"{h:>21}" for h in header))
    first: list[float] | None = None
    for scale in scales:
        n = base * scale
        store, peer = logs(scale)
        fill = articles(0, n // 4)
        top = articles(n // 4, 100)
        cells: list[tuple[float, float]] = [
            (timed(append_grouped, store, fill), peer_rate(peer, fill, grouped=True)),
            (timed(append_each, store, top), peer_rate(peer, top, grouped=False)),
        ]
        reads, rebuilt = Pair(), Pair()
        for _ in range(3):  # reads repeat: best of three, alternating, as in the main table
            reads.run(0, read_all, store)
            reads.run(1, peer.read_decoded)
            rebuilt.run(0, rebuild_all, store)
        cells.append((reads.best[0], reads.best[1]))
        rebuild_rate = rebuilt.best[0]
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
    profiles = Profiles(args.profile)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as name:
        tmp = Path(name)
        store = EventStore(f"sqlite:///{tmp / 'monitor.db'}")
        peer = sqlite_peer(tmp / "peer.db")
        rows += compare("SQLite", store, peer, args.events, profiles)
        store.close()
        peer.close()
        if not args.no_postgres:
            rows += postgres_rows(args.events, profiles)
        profiles.print()
        print_table(rows)
        if args.growth or args.x100:
            scales = (1, 10, 100) if args.x100 else (1, 10)

            def sqlite_logs(scale: int) -> tuple[EventStore, Peer]:
                store = EventStore(f"sqlite:///{tmp / f'grow-{scale}.db'}")
                return store, sqlite_peer(tmp / f"grow-peer-{scale}.db")

            growth("SQLite", sqlite_logs, args.events // 2, scales)
            if not args.no_postgres:
                postgres_growth(args.events // 2, scales)
    return 0


def postgres_growth(base: int, scales: Sequence[int]) -> None:
    from tests.support.pg import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer(fsync=True).start()
    except PostgresUnavailable as exc:
        print(f"postgresql: skipped ({exc})", file=sys.stderr)
        return
    try:
        growth(
            "PostgreSQL",
            lambda _: (EventStore(server.new_database()), postgres_peer(server.new_database())),
            base,
            scales,
        )
    finally:
        server.stop()


def postgres_rows(events: int, profiles: Profiles) -> list[Row]:
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
        rows = compare("PostgreSQL", store, peer, events, profiles)
        store.close()
        peer.close()
        return rows
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
