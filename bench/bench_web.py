"""Time the dashboard's pages over a log of 100,000 facts (SQLite).

    python bench/bench_web.py [--facts 100000] [--db PATH]

The seeds are replayed once; their facts are then appended again and again (each copy a
minute later in event time, spread over five outlets) until the log holds ``--facts`` facts
of one watch, and the projections catch up. Each page is rendered in process through the
dashboard's own request handler (no HTTP). The watch page is timed cold (the server's first
request: the watch's fold is built from the whole log), warm (median of four more), and right
after each of a few new facts is appended (one at the end of event time, one early: the fold
reads the log's tail and the page derives its state again); then after an event of another
kind. Other pages: the first time and the median of four more. All beside a baseline measured
in the same run: reading one page of 50 rows by plain SQL. The facts are appended to a copy of
the database. Target: the watch page after a new fact, and any page of the timeline, < 200 ms.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import col

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.events import FactReported, FeedPolled  # noqa: E402
from monitor.store.log import EventStore, NewEvent, StoredEvent  # noqa: E402
from monitor.store.projections import all_projections, follow  # noqa: E402
from monitor.store.tables import EventRow  # noqa: E402
from monitor.web.app import WebUI  # noqa: E402

WATCH = "nagorno-karabakh"
OUTLETS = ["Wire A", "Wire B", "Wire C", "Wire D", "Wire E"]


def build(path: Path, facts: int) -> None:
    url = f"sqlite:///{path}"
    replay = [sys.executable, "-m", "monitor.cli", "replay", "seeds", "--db", url]
    subprocess.run(replay, cwd=REPO, check=True, capture_output=True)
    store = EventStore(url)
    seeds = [e for e in store.read(types=["FactReported"])]
    have = len(seeds)
    copy = 0
    while have < facts:
        copy += 1
        batch = []
        for event in seeds:
            data = event.data
            assert isinstance(data, FactReported)
            shift = timedelta(minutes=copy)
            published = (data.article.published or event.recorded_at) + shift
            article = data.article.model_copy(
                update={"published": published, "outlet": OUTLETS[copy % len(OUTLETS)]}
            )
            batch.append(
                NewEvent(
                    stream=f"bench:{copy}",
                    data=data.model_copy(update={"article": article}),
                    idempotency_key=f"bench:{copy}:{event.id}",
                    occurred_at=published,
                )
            )
        batch = batch[: facts - have]
        store.append(batch)
        have += len(batch)
    for projection in all_projections():
        follow(store, projection)
    store.close()


def timed_ms(run: Callable[[], object], times: int = 5) -> tuple[float, float]:
    """The first run (nothing remembered for this log head yet) and the median of the rest."""
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return samples[0], statistics.median(samples[1:])


def new_fact(store: EventStore, template: StoredEvent, n: int, at: datetime) -> None:
    """Append one more casualty report, published at ``at``, as the pipeline would."""
    data = template.data
    assert isinstance(data, FactReported)
    article = data.article.model_copy(update={"published": at, "outlet": "Late Wire"})
    fact = data.fact.model_copy(update={"count": 1000 + n})
    store.append(
        [
            NewEvent(
                stream=f"bench-late:{n}",
                data=data.model_copy(update={"article": article, "fact": fact}),
                idempotency_key=f"bench-late:{n}",
                occurred_at=at,
            )
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="reuse (or build) this database file")
    parser.add_argument("--repeat", type=int, default=7, help="new facts timed, one at a time")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="bench-web")) / "web.db"
    if not path.exists():
        start = time.perf_counter()
        build(path, args.facts)
        print(f"built {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    # The facts appended below go to a copy, so that a reused database stays as built.
    work = Path(tempfile.mkdtemp(prefix="bench-web-run")) / "web.db"
    shutil.copyfile(path, work)
    url = f"sqlite:///{work}"
    writer = EventStore(url)
    store = EventStore(url, read_only=True)
    web = WebUI(store, lambda: [], lambda: {WATCH: "Nagorno-Karabakh conflict"})
    plain = sqlite3.connect(work)

    def baseline() -> None:
        plain.execute("SELECT * FROM events ORDER BY seq LIMIT 50 OFFSET 50000").fetchall()

    def get(page: str) -> None:
        answer = web.handle("GET", page, "127.0.0.1", None)
        assert answer.status == 200, (page, answer.status)

    facts = store.head()
    base = timed_ms(baseline)[1]
    print(f"log of {facts:,} events; baseline (50 rows by plain SQL): {base:.1f} ms")

    watch = f"/watch/{WATCH}"
    cold, warm = timed_ms(lambda: get(watch))
    print(f"{'watch page, cold (first request: full fold)':<52} {cold:9.1f} ms")
    print(f"{'watch page, warm (median of 4)':<52} {warm:9.1f} ms")
    casualty = next(
        e
        for e in store.read(types=["FactReported"])
        if isinstance(e.data, FactReported) and e.data.fact.type == "casualties"
    )
    with store.read_session() as session:
        last = session.execute(select(func.max(col(EventRow.occurred_at)))).scalar_one()
    latest = last.replace(tzinfo=UTC) if last.tzinfo is None else last
    early = casualty.occurred_at or latest
    for label, at in [
        ("after one new fact, latest in event time", lambda n: latest + timedelta(minutes=n)),
        ("after one new fact, early in event time", lambda n: early + timedelta(seconds=n)),
    ]:
        samples: list[float] = []
        for n in range(args.repeat):
            new_fact(writer, casualty, len(samples) + (0 if "latest" in label else 100), at(n + 1))
            start = time.perf_counter()
            get(watch)
            samples.append((time.perf_counter() - start) * 1000)
        print(
            f"{'watch page ' + label:<52} {statistics.median(samples):9.1f} ms "
            f"(median of {len(samples)}, max {max(samples):.1f})"
        )
    poll = FeedPolled(feed="bench", url="file:///bench.xml", items=1, new_items=0)
    writer.append([NewEvent(stream="feed:bench", data=poll)])
    once = timed_ms(lambda: get(watch), times=2)[0]
    print(f"{'watch page after one event of another kind':<52} {once:9.1f} ms")
    for label, query in [
        ("timeline page 1", {}),
        ("timeline page 1000", {"page": 1000}),
        ("timeline, ceasefire only", {"fact_type": "ceasefire"}),
        ("timeline, one outlet, page 100", {"outlet": "Wire C", "page": 100}),
    ]:
        first, again = timed_ms(lambda q=query: web.views.timeline_page(WATCH, **q))  # type: ignore[misc]
        print(f"{label:<52} first {first:9.1f} ms, then {again:8.1f} ms")
    pages = [
        f"/watch/{WATCH}?page=1000",
        f"/watch/{WATCH}?type=ceasefire",
        f"/watch/{WATCH}?outlet=Wire+C&page=100",
        "/",
        "/alerts",
        "/feeds",
    ]
    for page in pages:
        first, again = timed_ms(lambda page=page: get(page))  # type: ignore[misc]
        print(f"{page:<52} first {first:9.1f} ms, then {again:8.1f} ms")
    store.close()
    writer.close()
    shutil.rmtree(work.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
