"""The real daemon in a subprocess: systemd notify over a real AF_UNIX socket, the watchdog,
conditional GET, `monitor poll`, SIGHUP reloads, /healthz and /metrics, and SIGTERM."""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from monitor.cli import main
from tests.conftest import RULES, SEEDS
from tests.support.daemon_helpers import (
    NotifySocket,
    conditional_file,
    feed_toml,
    free_port,
    start,
    stop,
    wait_for,
    write_config,
)
from tests.support.httpserver import Reply, Request, TestServer


@pytest.fixture
def notify() -> NotifySocket:
    sock = NotifySocket()
    yield sock
    sock.close()


def cli(_capsys: pytest.CaptureFixture, *args: str) -> int:
    """The real command in this process (the daemon under test runs in its own); the logging
    setup it does is undone afterwards, so pytest's own log capture stays in place."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    level = root.level
    try:
        return main(list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))


def requests_to(server: TestServer, path: str) -> list[Request]:
    return [r for r in list(server.requests) if r.path == path]


def test_systemd_lifecycle_conditional_get_poll_reload_and_stop(
    tmp_path: Path, notify: NotifySocket, capsys: pytest.CaptureFixture
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    port = free_port()
    db = f"sqlite:///{tmp_path / 'm.db'}"
    with TestServer(SEEDS) as server:
        server.route("/feeds/ap.xml", conditional_file(SEEDS / "feeds" / "ap.xml", '"ap-1"'))
        config = write_config(
            tmp_path / "monitor.toml",
            db,
            rules,
            port,
            feed_toml("ap", f"{server.base}/feeds/ap.xml"),
        )
        log = tmp_path / "daemon.log"
        env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}
        proc = start(config, log, env)
        try:
            wait_for(lambda: "READY=1" in notify.lines(), 30, "READY=1")
            assert any(line.startswith("STATUS=") for line in notify.lines())
            # The immediate first poll fetched the feed and its article.
            wait_for(
                lambda: requests_to(server, "/pages/ap/002_544d5ff0b48e60d1.html"), 20, "article"
            )
            health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
            assert health["ready"] is True and health["database"] == "ok"
            dashboard = httpx.get(f"http://127.0.0.1:{port}/")  # beside them, the dashboard
            assert dashboard.status_code == 200 and "Overview" in dashboard.text
            assert "default-src 'self'" in dashboard.headers["content-security-policy"]

            # Watchdog: WATCHDOG_USEC=1 s, so a ping about every half second.
            ready_at = notify.times("READY=1")[0]
            wait_for(lambda: len(notify.times("WATCHDOG=1")) >= 4, 10, "watchdog pings")
            pings = [t for t in notify.times("WATCHDOG=1") if t >= ready_at]
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert gaps and max(gaps) < 1.0  # never as late as WatchdogSec itself

            # A second daemon on the same SQLite file is refused, clearly.
            assert cli(capsys, "run", "--config", str(config)) == 2
            assert "SQLite supports one replica" in capsys.readouterr().err

            # `monitor poll` goes through the daemon, which sends the ETag back: 304.
            assert cli(capsys, "poll", "ap", "--config", str(config)) == 0
            assert "requested" in capsys.readouterr().out
            wait_for(lambda: len(requests_to(server, "/feeds/ap.xml")) >= 2, 10, "second poll")
            assert requests_to(server, "/feeds/ap.xml")[1].headers.get("If-None-Match") == '"ap-1"'
            metrics = ""

            def polled_not_modified() -> bool:
                nonlocal metrics
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                # The database's numbers are read every few seconds: wait for a fresh read.
                return 'monitor_polls_total{outcome="not_modified"} 1.0' in metrics and bool(
                    re.search(
                        r'monitor_deliveries_total\{channel="console",outcome="delivered"\}',
                        metrics,
                    )
                )

            wait_for(polled_not_modified, 15, "not_modified and deliveries in /metrics")
            assert 'monitor_polls_total{outcome="ok"} 1.0' in metrics
            assert 'monitor_feeds{state="ok"} 1.0' in metrics
            assert re.search(r'^monitor_feeds_lag_seconds\{quantile="1"\} [\d.]+', metrics, re.M)
            assert re.search(r'monitor_alerts_raised_total\{rule="[\w-]+"\} [1-9]', metrics)
            assert 'monitor_projection_lag{consumer="rules"}' in metrics
            assert 'monitor_outbox_depth{status="pending"}' in metrics
            assert re.search(r"^monitor_poll_queue_due \d", metrics, re.M)
            assert re.search(r"^monitor_poll_queue_oldest_due_seconds [\d.]+", metrics, re.M)

            # SIGHUP with a broken rule file: the daemon says why and keeps the old rules.
            broken = rules / "alerts" / "zz-broken.yaml"
            broken.write_text("- id: broken\n  type: no-such-type\n")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload failed" in log.read_text(), 10, "reload failure logged")
            assert "zz-broken.yaml" in log.read_text()
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["ready"] is True

            # A valid reload adds a feed, polled at once.
            broken.unlink()
            server.route(
                "/feeds/rferl.xml", conditional_file(SEEDS / "feeds" / "rferl.xml", '"r-1"')
            )
            feeds = feed_toml("ap", f"{server.base}/feeds/ap.xml") + feed_toml(
                "rferl", f"{server.base}/feeds/rferl.xml"
            )
            write_config(config, db, rules, port, feeds)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reloaded: 2 feeds" in log.read_text(), 10, "reload")
            wait_for(lambda: requests_to(server, "/feeds/rferl.xml"), 10, "new feed polled")
            assert "RELOADING=1" in notify.lines()

            assert cli(capsys, "status", "--config", str(config), "--format", "jsonl") == 0
            snapshot = json.loads(capsys.readouterr().out)
            assert snapshot["daemon"]["ready"] is True
            assert {f["feed"] for f in snapshot["feeds"]} == {"ap", "rferl"}
            queue = snapshot["daemon"]["queue"]  # the backlog the daemon reports
            assert queue["feeds"] == 2 and queue["due"] >= 0 and queue["oldest_due_age"] >= 0
            assert cli(capsys, "status", "--config", str(config)) == 0
            assert "poll queue: 2 feeds" in capsys.readouterr().out
        finally:
            code, took = stop(proc)
    assert code == 0, log.read_text()[-3000:]
    print(f"\nSIGTERM to exit: {took:.2f} s")
    assert took < 10
    assert "STOPPING=1" in notify.lines()
    assert "Traceback" not in log.read_text()


def slow_feed(base: str, count: int) -> bytes:
    items = "".join(
        f"<item><title>Story {i}</title><link>{base}/slow/{i}.html</link>"
        f"<guid>slow-{i}</guid><pubDate>Wed, 30 Sep 2020 1{i}:00:00 GMT</pubDate></item>"
        for i in range(count)
    )
    channel = f"<channel><title>Slow</title>{items}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()


@contextmanager
def slow_pages(count: int, delay: float, asked: threading.Event) -> Iterator[TestServer]:
    """A server with feed ``/slow.xml`` of ``count`` articles, each page answered after
    ``delay`` s; ``asked`` is set when the first page is requested."""
    page = (SEEDS / "pages" / "ap" / "002_544d5ff0b48e60d1.html").read_bytes()

    def slow_page(_req: Request) -> Reply:
        asked.set()
        time.sleep(delay)
        return Reply(200, page, {"Content-Type": "text/html; charset=utf-8"})

    with TestServer() as server:
        server.route("/slow.xml", Reply(200, slow_feed(server.base, count), {"ETag": '"s"'}))
        for i in range(count):
            server.route(f"/slow/{i}.html", slow_page)
        yield server


def test_sigterm_mid_poll_finishes_the_article_and_leaves_the_rest(tmp_path: Path) -> None:
    first_page = threading.Event()
    port = free_port()
    with slow_pages(4, 1.5, first_page) as server:
        db_path = tmp_path / "m.db"
        config = write_config(
            tmp_path / "monitor.toml",
            f"sqlite:///{db_path}",
            RULES,
            port,
            feed_toml("slow", f"{server.base}/slow.xml"),
            channel=None,  # the console channel writes alerts to stderr: not log lines
        )
        log = tmp_path / "daemon.log"
        proc = start(config, log, {"MONITOR_LOG_FORMAT": "json"})
        try:
            assert first_page.wait(30), log.read_text()
        finally:
            code, took = stop(proc)
        pages = [r.path for r in server.requests if r.path.startswith("/slow/")]
    assert code == 0 and took < 10, log.read_text()[-2000:]
    assert pages == ["/slow/0.html"]  # the article in flight finished; no new one was started
    lines = log.read_text().splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines)  # JSON lines only
    with sqlite3.connect(db_path) as conn:
        owner, etag = conn.execute("SELECT owner, etag FROM feed_leases").fetchone()
        extracted = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'ArticleExtracted'"
        ).fetchone()
    assert owner is None and etag is None  # lease given back; the next poll reads the feed whole
    assert extracted == (1,)


def test_poll_alone_when_no_daemon_answers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    port = free_port()  # nothing listens there
    with TestServer(SEEDS) as server:
        config = write_config(
            tmp_path / "monitor.toml",
            f"sqlite:///{tmp_path / 'm.db'}",
            RULES,
            port,
            feed_toml("rferl", f"{server.base}/feeds/rferl.xml"),
        )
        capsys.readouterr()
        assert cli(capsys, "poll", "rferl", "--config", str(config), "--format", "jsonl") == 0
        row = json.loads(capsys.readouterr().out)
        assert (row["via"], row["ok"], row["items"], row["extracted"]) == ("alone", True, 1, 1)
        assert cli(capsys, "poll", "nope", "--config", str(config)) == 2
        assert "no feed named 'nope'" in capsys.readouterr().err
        assert cli(capsys, "status", "--config", str(config)) == 0
        out = capsys.readouterr().out
        assert "rferl" in out and "none answering" in out


def test_editing_rule_files_reloads_them_without_a_signal(tmp_path: Path) -> None:
    """Hot reload on file change: a broken edit is refused and logged, a good one applied."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    config = write_config(
        tmp_path / "monitor.toml", f"sqlite:///{tmp_path / 'm.db'}", rules, free_port(), ""
    )
    log = tmp_path / "daemon.log"
    proc = start(config, log)
    try:
        wait_for(lambda: "monitor running" in log.read_text(), 30, "start-up")
        shipped = re.search(r"(\d+) rules", log.read_text())
        assert shipped is not None
        extra = rules / "alerts" / "zz-extra.yaml"
        extra.write_text("id: extra\ntype: match\nevent: downing\nseverty: critical\n")
        wait_for(lambda: "reload failed" in log.read_text(), 10, "broken edit refused")
        assert "did you mean 'severity'" in log.read_text()
        extra.write_text("id: extra\ntype: match\nevent: downing\nseverity: critical\n")
        wait_for(lambda: "rules" in log.read_text().split("reload failed")[-1], 10, "reload")
        wait_for(
            lambda: re.search(
                rf"reloaded: \d+ feeds, \d+ watches, {int(shipped[1]) + 1} rules", log.read_text()
            ),
            10,
            "the shipped rules and the new one",
        )
    finally:
        code, _ = stop(proc)
    assert code == 0, log.read_text()[-2000:]


def test_poll_requested_while_the_feed_is_being_polled_runs_right_after(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The lease of a feed in flight refuses a second poll; the request waits for it instead
    of being dropped, and runs as soon as the first poll ends, though the feed is not due."""
    in_page = threading.Event()
    port = free_port()
    with slow_pages(2, 1.0, in_page) as server:
        config = write_config(
            tmp_path / "monitor.toml",
            f"sqlite:///{tmp_path / 'm.db'}",
            RULES,
            port,
            feed_toml("slow", f"{server.base}/slow.xml"),  # interval 1 h: never due again here
            channel=None,
        )
        log = tmp_path / "daemon.log"
        proc = start(config, log)
        try:
            assert in_page.wait(30), log.read_text()
            assert cli(capsys, "poll", "slow", "--config", str(config)) == 0
            assert "requested" in capsys.readouterr().out
            assert len(requests_to(server, "/slow.xml")) == 1  # the first poll is still running
            wait_for(lambda: len(requests_to(server, "/slow.xml")) == 2, 15, "the asked-for poll")
            paths = [r.path for r in list(server.requests)]
        finally:
            code, _ = stop(proc)
    assert code == 0, log.read_text()[-2000:]
    # Right after the first poll's last article, not beside it.
    assert paths.index("/slow/1.html") < len(paths) - 1 - paths[::-1].index("/slow.xml")
    assert "Traceback" not in log.read_text()
