"""The real daemon falling behind: a feed whose due poll waits past two intervals (here, behind
a hung poll on the only worker) is reported once on the health channel, and its recovery too."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from tests.conftest import RULES
from tests.support.daemon_helpers import feed_toml, free_port, start, stop, wait_for, write_config
from tests.support.httpserver import Reply, Request, TestServer

FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>x</title>'
    b"<link>http://127.0.0.1:9/nowhere.html</link><guid>x-1</guid></item></channel></rss>"
)


def test_a_feed_left_waiting_two_intervals_raises_one_lagging_alert_and_one_recovery(
    tmp_path: Path,
) -> None:
    release = threading.Event()
    posts: list[dict] = []

    def hung(_req: Request) -> Reply:
        release.wait(20)
        return Reply(200, FEED, {"Content-Type": "application/rss+xml"})

    def hook(req: Request) -> Reply:
        posts.append(json.loads(req.body))
        return Reply(200, b"{}")

    with TestServer() as server:
        server.route("/hung.xml", hung)
        server.route("/quick.xml", Reply(200, FEED, {"Content-Type": "application/rss+xml"}))
        server.route("/ops", hook)
        host = server.base.removeprefix("http://")
        # One worker: "hung" goes first (config order) and holds it, so "quick" (every 1 s)
        # waits in the queue with its poll overdue.
        feeds = (
            feed_toml("hung", f"{server.base}/hung.xml")
            + feed_toml("quick", f"{server.base}/quick.xml", "1s", jitter="0s")
            + f'[[channels]]\nname = "ops"\nurl = "json://{host}/ops"\ntags = []\nhealth = true\n'
        )
        db = tmp_path / "m.db"
        config = write_config(
            tmp_path / "monitor.toml",
            f"sqlite:///{db}",
            RULES,
            free_port(),
            feeds,
            extra='poll_workers = 1\nhealth_check_interval = "1s"',
            channel=None,
        )
        log = tmp_path / "daemon.log"
        proc = start(config, log)
        try:

            def titles() -> list[str]:
                return [str(p.get("title", "")) + str(p.get("message", "")) for p in list(posts)]

            wait_for(
                lambda: any("Feed quick is lagging" in t for t in titles()), 20, "the lagging alert"
            )
            time.sleep(2.5)  # more health checks during the same episode: nothing new
            assert sum("Feed quick is lagging" in t for t in titles()) == 1
            release.set()
            wait_for(
                lambda: any("Feed quick recovered" in t for t in titles()),
                20,
                "the recovery notice",
            )
        finally:
            release.set()
            code, _ = stop(proc)
    assert code == 0, log.read_text()[-2000:]
    assert sum("Feed quick is lagging" in t for t in titles()) == 1
    assert sum("Feed quick recovered" in t for t in titles()) == 1
    assert not any("hung" in t for t in titles())  # in flight, but within its hour
    with sqlite3.connect(db) as conn:  # in the log, so a replay sees the same alerts
        rows = conn.execute(
            "SELECT json_extract(data, '$.status') FROM events WHERE type = 'AlertRaised' "
            "AND json_extract(data, '$.rule') = 'source-health'"
        ).fetchall()
    assert sorted(r[0] for r in rows) == ["firing", "resolved"]
    assert "Traceback" not in log.read_text()
