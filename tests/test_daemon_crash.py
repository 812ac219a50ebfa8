"""The real daemon SIGKILLed while it works through a backlog, restarted, and killed again.

A poll appends its articles a group per transaction while the next pages are fetched and read:
a kill may land with a group half gathered, pages in the pool, a transaction open. Whatever
the moment, every article in the log must be whole (discovered, fetched, then extracted with
its facts, or failed), none twice; and once a daemon runs to the end, every article is there
exactly once: the polls the kills cut short were incomplete, so they were read again in full.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import RULES
from tests.support.daemon_helpers import feed_toml, free_port, start, stop, wait_for, write_config
from tests.support.httpserver import Reply, Request, TestServer

FEEDS = 8
ITEMS = 12
TRIALS = 6
DELAY = 0.1  # seconds each page takes to answer: the backlog lasts a few seconds
SENTENCE = (
    "<p>Armenian officials said {n} soldiers were killed near Stepanakert on {day}, and "
    "Azerbaijan said its forces had shot down {m} drones over the front line.</p>"
)
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def page(feed: int, item: int) -> bytes:
    n = 10 * feed + item + 3
    body = "".join(
        SENTENCE.format(n=n + k, m=item % 5 + 1, day=DAYS[(feed + k) % 7]) for k in range(6)
    )
    return (
        f"<html><head><title>Report {feed}-{item}</title></head><body><article>"
        f"<h1>Report {feed}-{item}</h1>{body}</article></body></html>"
    ).encode()


def feed_xml(base: str, feed: int) -> bytes:
    items = "".join(
        f"<item><title>Report {feed}-{i}</title><link>{base}/p/{feed}/{i}</link>"
        f"<guid>r{feed}-{i}</guid><pubDate>Sat, {1 + i:02d} Oct 2020 10:00:00 GMT</pubDate></item>"
        for i in range(ITEMS)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire {feed}</title>'
        f"{items}</channel></rss>"
    ).encode()


def serve(server: TestServer) -> None:
    def slowly(req: Request) -> Reply:
        time.sleep(DELAY)
        _, _, feed, item = req.path.split("/")
        return Reply(200, page(int(feed), int(item)), {"Content-Type": "text/html"})

    for f in range(FEEDS):
        server.route(f"/f/{f}.xml", Reply(200, feed_xml(server.base, f), {"ETag": f'"{f}"'}))
        for i in range(ITEMS):
            server.route(f"/p/{f}/{i}", slowly)


def article_streams(db: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT stream, type FROM events WHERE stream LIKE 'article:%' ORDER BY seq"
        ).fetchall()
    streams: dict[str, list[str]] = defaultdict(list)
    for stream, type_ in rows:
        streams[stream].append(type_)
    return streams


def check_whole(db: Path, where: str) -> dict[str, list[str]]:
    """Every article in the log is whole and ended once; no key twice; positions gap-free."""
    streams = article_streams(db)
    for stream, types in streams.items():
        ended = [t for t in types if t in ("ArticleExtracted", "ArticleFailed")]
        assert types[0] == "ArticleDiscovered" and ended, f"{where}: {stream} is partial: {types}"
        assert types.count("ArticleExtracted") <= 1 and types[-1] != "ArticleDiscovered", where
    with sqlite3.connect(db) as conn:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM events ORDER BY seq")]
        keys = [k for (k,) in conn.execute("SELECT idempotency_key FROM events") if k]
    assert seqs == list(range(1, len(seqs) + 1)), where
    assert len(keys) == len(set(keys)), where
    return streams


@pytest.mark.slow
def test_sigkill_mid_backlog_leaves_every_article_whole_and_none_twice(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    db = tmp_path / "m.db"
    log = tmp_path / "daemon.log"
    landed: list[int] = []  # articles in the log at each kill
    with TestServer() as server:
        serve(server)
        feeds = "".join(feed_toml(f"wire-{f}", f"{server.base}/f/{f}.xml") for f in range(FEEDS))
        config = write_config(
            tmp_path / "monitor.toml",
            f"sqlite:///{db}",
            RULES,
            free_port(),
            feeds,
            # A short lease, so the restarted daemon takes over the killed one's polls soon.
            extra='lease_period = "3s"\ncpu_workers = 2\nreplica_id = "crash-test"',
            channel=None,
        )
        for trial in range(TRIALS):
            if landed and landed[-1] == FEEDS * ITEMS:
                break  # all stored: a kill now would land after the work
            asked = len(server.requests)
            proc = start(config, log)
            try:
                wait_for(lambda a=asked: len(server.requests) > a + 2, 30, "pages asked for")
                time.sleep(rng.uniform(0.0, 1.5))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            streams = check_whole(db, f"seed {seed}, trial {trial}")
            landed.append(len(streams))
            time.sleep(1.2)  # its workers notice that it is gone and leave
        proc = start(config, log)
        try:
            wait_for(lambda: len(article_streams(db)) == FEEDS * ITEMS, 120, "every article")
            wait_for(lambda: "monitor running" in log.read_text(), 30, "the daemon to start")
        finally:
            code, _ = stop(proc)
    assert code == 0, f"seed {seed}: {landed}\n{log.read_text()[-3000:]}"
    streams = check_whole(db, f"seed {seed}, at the end")
    assert all(types.count("ArticleExtracted") == 1 for types in streams.values()), seed
    assert sum(0 < n < FEEDS * ITEMS for n in landed) >= 2, f"seed {seed}: kills at {landed}"
