"""Time the dashboard's pages over a log of 100,000 facts (SQLite).

    python bench/bench_web.py [--facts 100000] [--db PATH]

The seeds are replayed once; their facts are then appended again and again (each copy a
minute later in event time, spread over five outlets) until the log holds ``--facts`` facts
of one watch, and the projections catch up. Each page is rendered in process through the
dashboard's own request handler (no HTTP), five times: the first time (a new log head: the
watch's state is folded again) and the median of the other four (folded state remembered, the
page of the timeline still read from the database) are printed beside a baseline measured in
the same run: reading one page of 50 rows by plain SQL.
Target: a page of the timeline, filtered or not, deep or not, under 200 ms.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.events import FactReported  # noqa: E402
from monitor.store.log import EventStore, NewEvent  # noqa: E402
from monitor.store.projections import all_projections, follow  # noqa: E402
from monitor.web.app import WebUI  # noqa: E402
from monitor.web.views import timeline_page  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="reuse (or build) this database file")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="bench-web")) / "web.db"
    if not path.exists():
        start = time.perf_counter()
        build(path, args.facts)
        print(f"built {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    store = EventStore(f"sqlite:///{path}", read_only=True)
    web = WebUI(store, lambda: [], lambda: {WATCH: "Nagorno-Karabakh conflict"})
    plain = sqlite3.connect(path)

    def baseline() -> None:
        plain.execute("SELECT * FROM events ORDER BY seq LIMIT 50 OFFSET 50000").fetchall()

    facts = store.head()
    base = timed_ms(baseline)[1]
    print(f"log of {facts:,} events; baseline (50 rows by plain SQL): {base:.1f} ms")
    for label, query in [
        ("timeline page 1", {}),
        ("timeline page 1000", {"page": 1000}),
        ("timeline, ceasefire only", {"fact_type": "ceasefire"}),
        ("timeline, one outlet, page 100", {"outlet": "Wire C", "page": 100}),
    ]:
        first, again = timed_ms(lambda q=query: timeline_page(store, WATCH, **q))  # type: ignore[misc]
        print(f"{label:<45} first {first:9.1f} ms, then {again:8.1f} ms")
    pages = [
        f"/watch/{WATCH}",
        f"/watch/{WATCH}?page=1000",
        f"/watch/{WATCH}?type=ceasefire",
        f"/watch/{WATCH}?outlet=Wire+C&page=100",
        "/",
        "/alerts",
        "/feeds",
    ]
    for page in pages:

        def get(page: str = page) -> None:
            answer = web.handle("GET", page, "127.0.0.1", None)
            assert answer.status == 200, (page, answer.status)

        first, again = timed_ms(get)
        print(f"{page:<45} first {first:9.1f} ms, then {again:8.1f} ms")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
