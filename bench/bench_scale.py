"""The daemon at scale: thousands of feeds on one local server, the real `monitor run`.

    python bench/bench_scale.py [--feeds 2000] [--duration 300] [--postgres] [--replicas 3]

Builds the fixture in memory and serves it from one ThreadingHTTPServer on 127.0.0.1: N feeds
of 12 or 13 items each (25,000 articles at 2,000 feeds), every item an article page made from
the seed pages with a paragraph of its own (so each article yields facts and none is a copy),
ETags and 304s on the feeds, 2% of feeds slow (2 s per answer) and 2% always 500. The daemon
runs as a subprocess (`monitor run`) with `interval = "60s"` on SQLite (or a throwaway
PostgreSQL with --postgres), and alerts go to a local aiosmtpd server through a rule that
fires on one kind of fact only the injected news carries (a toll of 5,000 or more).

All feeds share one host here, so the per-host politeness limit (2 requests in flight by
default) is raised to --per-host: the fixture stands for 2,000 hosts, not for one.

It prints:
- first full cycle: from start until every reachable article has been fetched once;
- polls/s and articles/s in that backlog, and polls/s in steady state;
- cores used (CPU of the daemon and its child processes / wall), CPU per article in the
  backlog and per poll in steady state;
- peak and final RSS (daemon and children), and RSS drift over the steady state;
- per feed in steady state: the gap between two polls and the lag past the interval
  (p50/p99/max over healthy feeds), and feeds polled twice within one interval;
- poll-to-alert: from the poll that finds a news item to its mail at the SMTP server;
- /metrics: how long a scrape takes (p50/p99/max) at this many feeds.

--replicas R runs R daemons on one database (PostgreSQL: SQLite has one replica) and, before
them, one daemon on a fresh database, both over the same backlog: the ratio of their backlog
throughput is printed beside the steady-state checks.

Targets (2 cores): first cycle of the 25k-article fixture <= 180 s; in steady state every
healthy feed polled within interval + jitter + 10%; RSS <= 250 MB and flat within 10%;
poll-to-alert p99 <= 1 s; /metrics under 50 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.pg import PostgresServer  # noqa: E402

SEED_PAGES = sorted((REPO / "seeds" / "pages").rglob("*.html"))
INTERVAL = 60.0
JITTER = INTERVAL / 10  # the daemon's default: a tenth of the interval
NEWS_FLOOR = 5000  # tolls of this size appear only in injected news: the alert rule's filter
PLACES = ["Martuni", "Hadrut", "Fuzuli", "Jabrayil", "Tartar", "Barda", "Goris", "Shusha"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

RULE = f"""\
id: bench-news
type: match
description: A toll of {NEWS_FLOOR} or more (only the bench's injected news reports one)
severity: warning
event: casualties
where:
  count: {{gte: {NEWS_FLOOR}}}
per_report: true
dedup_key: "{{{{ article.url }}}}"
channels: [all]
title: "bench news {{{{ article.url }}}}"
summary: "{{{{ article.url }}}}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the fixture ----------------------------------------------------------------------------


@dataclass
class Feed:
    index: int
    items: list[tuple[str, str, str]]  # (guid, url path, RFC 822 date), newest first
    kind: str = "ok"  # ok, slow, failing
    version: int = 0
    body: bytes = b""
    unseen_news: set[str] = field(default_factory=set)  # news paths not yet served


class Fixture:
    """Feeds, pages and a request log; thread-safe; served by ``serve``."""

    def __init__(self, feeds: int, items: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.templates = [p.read_text(encoding="utf-8") for p in SEED_PAGES]
        self.lock = threading.Lock()
        self.feeds: list[Feed] = []
        for i in range(feeds):
            count = items + (i % 2)  # 12 and 13: 12.5 a feed on average
            kind = "slow" if i % 50 == 7 else "failing" if i % 50 == 13 else "ok"
            entries = [
                (
                    f"f{i}-a{j}",
                    f"/a/{i}/{j}.html",
                    f"{DAYS[j % 7][:3]}, {1 + j % 28:02d} Oct 2020 "
                    f"{j % 24:02d}:{i % 60:02d}:00 GMT",
                )
                for j in range(count)
            ]
            feed = Feed(i, entries[::-1], kind)
            feed.body = self._render(feed)
            self.feeds.append(feed)
        self.feed_requests: dict[int, list[float]] = defaultdict(list)
        self.feed_statuses: dict[int, int] = defaultdict(int)
        self.pages_fetched: dict[str, float] = {}
        self.news_polled: dict[str, float] = {}  # news path -> when a poll first found it
        self.news_added: dict[str, float] = {}
        self._news = 0

    def reachable_pages(self) -> int:
        return sum(len(f.items) for f in self.feeds if f.kind != "failing")

    def _render(self, feed: Feed) -> bytes:
        items = "".join(
            f"<item><title>Report {guid}</title><link>{{base}}{path}</link><guid>{guid}</guid>"
            f"<pubDate>{date}</pubDate></item>"
            for guid, path, date in feed.items
        )
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel>'
            f"<title>Bench wire {feed.index}</title>{items}</channel></rss>"
        ).encode()

    def add_news(self, feed: Feed) -> str:
        """A new item at the top of ``feed``: its page reports a toll only news carries."""
        with self.lock:
            self._news += 1
            n = self._news
            path = f"/n/{feed.index}/{n}.html"
            feed.items.insert(0, (f"f{feed.index}-n{n}", path, "Sat, 31 Oct 2020 12:00:00 GMT"))
            feed.version += 1
            feed.body = self._render(feed)
            feed.unseen_news.add(path)
            self.news_added[path] = time.monotonic()
            return path

    def page(self, path: str) -> bytes | None:
        m = re.fullmatch(r"/(a|n)/(\d+)/(\d+)\.html", path)
        if m is None:
            return None
        kind, i, j = m[1], int(m[2]), int(m[3])
        template = self.templates[(i + j) % len(self.templates)]
        if kind == "n":
            count = NEWS_FLOOR + i * 10 + j % 10
            line = (
                f"The Armenian Defense Ministry said on {DAYS[j % 7]} that {count} Azerbaijani "
                f"soldiers were killed in the fighting near {PLACES[j % len(PLACES)]}."
            )
        else:
            count = 1 + (i * 13 + j * 7) % 900
            line = (
                f"Officials in Yerevan said {count} civilians were wounded in shelling of "
                f"{PLACES[(i + j) % len(PLACES)]} on {DAYS[(i + 2 * j) % 7]}, report {i}-{j}."
            )
        title = f"Bench report {kind}{i}-{j}"
        html = re.sub(
            r"<title>.*?</title>", f"<title>{title}</title>", template, count=1, flags=re.S
        )
        html = html.replace(
            '<div class="article-body">', f'<div class="article-body">\n<p>{line}</p>', 1
        )
        return html.encode()

    def handle(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        now = time.monotonic()
        m = re.fullmatch(r"/f/(\d+)\.xml", path)
        if m is not None:
            feed = self.feeds[int(m[1])]
            with self.lock:
                self.feed_requests[feed.index].append(now)
            if feed.kind == "failing":
                return 500, {}, b"internal error"
            if feed.kind == "slow":
                time.sleep(2.0)
            with self.lock:
                etag = f'"{feed.index}-{feed.version}"'
                if headers.get("if-none-match") == etag:
                    self.feed_statuses[304] += 1
                    return 304, {"ETag": etag}, b""
                self.feed_statuses[200] += 1
                for news in feed.unseen_news:
                    self.news_polled.setdefault(news, now)
                feed.unseen_news.clear()
                body = feed.body
            return 200, {"ETag": etag, "Content-Type": "application/rss+xml"}, body
        page = self.page(path)
        if page is None:
            return 404, {}, b"not found"
        with self.lock:
            self.pages_fetched.setdefault(path, now)
        return 200, {"Content-Type": "text/html; charset=utf-8"}, page

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                # As web servers do on keep-alive connections: without it, the body's last
                # segment waits for the client's delayed ACK of the headers (Nagle), some
                # 40 ms an answer that no real server adds.
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = fixture.handle("GET", self.path, headers)
                body = body.replace(b"{base}", base.encode())
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)  # a client hanging up is not

        httpd = Server(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd, base


class Inbox:
    """aiosmtpd handler: when each alert mail arrived, by the news path in its subject."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.messages = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.monotonic()
        message = message_from_bytes(envelope.content, policy=policy.default)
        text = f"{message['subject']} {message.get_body(('plain', 'html'))}"
        for path in re.findall(r"/n/\d+/\d+\.html", text):
            self.arrived.setdefault(path, now)
        self.messages += 1
        return "250 OK"


# --- processes ------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_and_rss(pids: list[int]) -> tuple[float, float]:
    """CPU seconds (own and reaped children's) and memory in MB of these processes.

    Memory is each process's proportional share (Pss): the extraction workers share the pages
    their fork server loaded, and summing RSS would count those once per worker. Where Pss is
    not readable, RSS."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = rss = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += sum(int(x) for x in fields[11:15]) / tick
            rss += _memory_kb(pid) / 1024
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


def own_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes themselves (user and system; no children)."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += sum(int(x) for x in fields[11:13]) / tick
        except (OSError, IndexError, ValueError):
            continue
    return cpu


def _memory_kb(pid: int) -> int:
    for name, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(name) as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


class Sampler:
    """CPU and RSS of the daemons' process trees, once a second."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        # (time, cpu s, rss MB, cpu s of the daemons' own processes, without their workers)
        self.samples: list[tuple[float, float, float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            pids = [p for r in self.roots for p in process_tree(r)]
            cpu, rss = cpu_and_rss(pids)
            self.samples.append((time.monotonic(), cpu, rss, own_cpu(self.roots)))
            self.stop.wait(1.0)

    def window(self, start: float, end: float) -> list[tuple[float, float, float, float]]:
        return [s for s in self.samples if start <= s[0] <= end]

    def cores(self, start: float, end: float) -> tuple[float, float]:
        """(cores used, CPU seconds) between two times."""
        inside = self.window(start, end)
        if len(inside) < 2:
            return float("nan"), float("nan")
        cpu = inside[-1][1] - inside[0][1]
        return cpu / (inside[-1][0] - inside[0][0]), cpu

    def own(self, start: float, end: float) -> float:
        """CPU seconds of the daemons' own processes (not their workers) between two times."""
        inside = self.window(start, end)
        return inside[-1][3] - inside[0][3] if len(inside) >= 2 else float("nan")


def write_config(
    path: Path, db: str, rules: Path, listen: str, base: str, smtp: int, feeds: int, args: Any
) -> None:
    lines = [
        f'db = "{db}"',
        f'rules_dir = "{rules}"',
        f'http_listen = "{listen}"',
        'deliver_interval = "1s"',
        'stop_timeout = "20s"',
        'log_level = "warning"',
    ]
    if args.workers:
        lines.append(f"poll_workers = {args.workers}")
    lines += ["[fetch]", f"per_host = {args.per_host}", 'allow_networks = ["127.0.0.1/32"]']
    mail = (
        f"mailto://127.0.0.1:{smtp}?from=monitor@example.org&to=desk@example.org"
        "&smtp=127.0.0.1&mode=insecure"
    )
    lines += ["[[channels]]", 'name = "mail"', f'url = "{mail}"', 'tags = ["all"]']
    for i in range(feeds):
        lines += [
            "[[feeds]]",
            f'name = "wire-{i:05d}"',
            f'url = "{base}/f/{i}.xml"',
            f'interval = "{int(INTERVAL)}s"',
        ]
    path.write_text("\n".join(lines) + "\n")


def start_daemon(config: Path, log: Path, replica: str, listen: str) -> subprocess.Popen:
    env = {**os.environ, "MONITOR_REPLICA_ID": replica, "MONITOR_HTTP_LISTEN": listen}
    env.pop("MONITOR_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=env,
        preexec_fn=lambda: os.nice(5),
    )


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


class Scraper:
    """GET /metrics every few seconds: how long each scrape takes, and the daemon's lag."""

    def __init__(self, listen: str, every: float = 2.0) -> None:
        self.url = f"http://{listen}/metrics"
        self.every = every
        self.took: list[tuple[float, float]] = []  # (when, seconds)
        self.lag_max: list[tuple[float, float]] = []
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(self.every):
                try:
                    started = time.perf_counter()
                    text = client.get(self.url).text
                    self.took.append((time.monotonic(), time.perf_counter() - started))
                except httpx.HTTPError:
                    continue
                m = re.search(r'^monitor_feeds_lag_seconds\{quantile="1"\} (\S+)', text, re.M)
                if m:
                    self.lag_max.append((time.monotonic(), float(m[1])))


# --- one run --------------------------------------------------------------------------------


@dataclass
class Run:
    replicas: int
    started: float
    cycle_end: float | None = None
    all_polled: float | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    listens: list[str] = field(default_factory=list)


def run_daemons(
    args: Any, fixture: Fixture, base: str, smtp: int, db: str, replicas: int, work: Path
) -> tuple[Run, Sampler]:
    rules = work / "rules"
    (rules / "alerts").mkdir(parents=True, exist_ok=True)
    (rules / "watches").mkdir(exist_ok=True)
    (rules / "watches" / "nagorno-karabakh.yaml").write_text(
        (REPO / "rules" / "watches" / "nagorno-karabakh.yaml").read_text()
    )
    (rules / "alerts" / "bench-news.yaml").write_text(RULE)
    run = Run(replicas, time.monotonic())
    for r in range(replicas):
        listen = f"127.0.0.1:{free_port()}"
        config = work / f"monitor-{r}.toml"
        write_config(config, db, rules, listen, base, smtp, len(fixture.feeds), args)
        run.procs.append(start_daemon(config, work / f"daemon-{r}.log", f"bench-{r}", listen))
        run.listens.append(listen)
    return run, Sampler([p.pid for p in run.procs])


def stop_daemons(run: Run) -> None:
    for proc in run.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in run.procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def first_cycle(fixture: Fixture, run: Run, timeout: float) -> None:
    """Wait until every reachable article page was fetched, and every feed polled once."""
    reachable = fixture.reachable_pages()
    n = len(fixture.feeds)

    def progress() -> bool:
        with fixture.lock:
            polled = len(fixture.feed_requests)
            pages = len(fixture.pages_fetched)
        if run.all_polled is None and polled >= n:
            run.all_polled = time.monotonic()
        return polled >= n and pages >= reachable

    last = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if progress():
            run.cycle_end = time.monotonic()
            return
        if any(p.poll() is not None for p in run.procs):
            raise SystemExit("a daemon exited during the first cycle: see its log")
        if time.monotonic() - last > 30:
            last = time.monotonic()
            with fixture.lock:
                print(
                    f"  ... {time.monotonic() - run.started:.0f} s: "
                    f"{len(fixture.feed_requests)}/{n} feeds polled, "
                    f"{len(fixture.pages_fetched)}/{reachable} articles",
                    file=sys.stderr,
                )
        time.sleep(0.5)


def backlog_rate(fixture: Fixture, run: Run) -> float:
    """Articles fetched per second from the first article to the end of the first cycle."""
    with fixture.lock:
        times = sorted(fixture.pages_fetched.values())
    if len(times) < 2:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def steady_state(
    args: Any, fixture: Fixture, run: Run, inbox: Inbox, start: float, end: float
) -> dict[str, Any]:
    """Per-feed gaps and lags in [start, end], double polls, news latency."""
    gap_limit = INTERVAL + JITTER + 0.1 * INTERVAL
    # The shared queue makes a feed due again an interval (plus a share of the jitter) after
    # its poll was claimed; a gap shorter than that, less a second for the fetch's own timing,
    # is a second poll in the same interval.
    double_limit = INTERVAL - 1.0
    gaps: list[float] = []
    per_feed_max: list[float] = []
    late_feeds: list[int] = []
    doubles = 0
    polls = 0
    with fixture.lock:
        requests = {i: list(t) for i, t in fixture.feed_requests.items()}
    for feed in fixture.feeds:
        times = [t for t in requests.get(feed.index, []) if start <= t <= end]
        polls += len(times)
        mine = [b - a for a, b in itertools.pairwise(times)]
        doubles += sum(1 for g in mine if g < double_limit)
        if feed.kind != "ok":
            continue
        # A feed not polled at all in the window, or polled last long before its end, is late.
        edges = [times[0] - start if times else end - start, end - times[-1] if times else 0.0]
        worst = max([*mine, *edges])
        gaps.extend(mine)
        per_feed_max.append(worst)
        if worst > gap_limit:
            late_feeds.append(feed.index)
    latencies = [inbox.arrived[p] - t for p, t in fixture.news_polled.items() if p in inbox.arrived]
    return {
        "window": end - start,
        "polls": polls,
        "gap_p50": pct(gaps, 0.5),
        "gap_p99": pct(gaps, 0.99),
        "gap_max": max(per_feed_max, default=float("nan")),
        "lag_p50": max(0.0, pct(per_feed_max, 0.5) - INTERVAL),
        "lag_p99": max(0.0, pct(per_feed_max, 0.99) - INTERVAL),
        "lag_max": max(0.0, max(per_feed_max, default=0.0) - INTERVAL),
        "late_feeds": late_feeds,
        "gap_limit": gap_limit,
        "doubles": doubles,
        "news": len(fixture.news_polled),
        "news_alerted": len(latencies),
        "alert_p50": pct(latencies, 0.5),
        "alert_p99": pct(latencies, 0.99),
        "alert_max": max(latencies, default=float("nan")),
    }


def polls_by_replica(listens: list[str]) -> list[float]:
    """Each replica's own count of the polls it made (its /metrics), to see the share."""
    counts = []
    for listen in listens:
        try:
            text = httpx.get(f"http://{listen}/metrics", timeout=10).text
        except httpx.HTTPError:
            counts.append(float("nan"))
            continue
        counts.append(
            sum(float(v) for v in re.findall(r"^monitor_polls_total\{[^}]*\} (\S+)", text, re.M))
        )
    return counts


def inject_news(fixture: Fixture, stop: threading.Event, every: float) -> None:
    healthy = [f for f in fixture.feeds if f.kind == "ok"]
    while not stop.wait(every):
        fixture.add_news(fixture.rng.choice(healthy))


def measure(
    args: Any, replicas: int, db: str, work: Path, steady: bool, server: int | None = None
) -> tuple[dict[str, Any], Fixture]:
    """``server``: the database server's process (PostgreSQL), whose CPU is counted apart."""
    fixture = Fixture(args.feeds, args.items)
    httpd, base = fixture.serve()
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    run, sampler = run_daemons(args, fixture, base, smtp_port, db, replicas, work)
    scraper = Scraper(run.listens[0])
    db_sampler = Sampler([server] if server else [])
    result: dict[str, Any] = {"replicas": replicas, "feeds": args.feeds}
    try:
        first_cycle(fixture, run, args.first_cycle_timeout)
        end_cycle = run.cycle_end or time.monotonic()
        result["first_cycle"] = (end_cycle - run.started) if run.cycle_end else None
        result["all_polled"] = (run.all_polled - run.started) if run.all_polled else None
        with fixture.lock:
            result["articles"] = len(fixture.pages_fetched)
            result["backlog_polls"] = sum(len(t) for t in fixture.feed_requests.values())
        result["reachable"] = fixture.reachable_pages()
        result["backlog_rate"] = backlog_rate(fixture, run)
        result["backlog_polls_s"] = result["backlog_polls"] / (end_cycle - run.started)
        result["backlog_cores"], cpu = sampler.cores(run.started, end_cycle)
        result["backlog_cpu_per_article_ms"] = 1000 * cpu / max(1, result["articles"])
        own = sampler.own(run.started, end_cycle)
        result["backlog_daemon_cpu_per_article_ms"] = 1000 * own / max(1, result["articles"])
        if server:
            result["backlog_db_cores"], _ = db_sampler.cores(run.started, end_cycle)
        if steady:
            settle = time.monotonic() + args.settle
            while time.monotonic() < settle:
                time.sleep(1)
            stop_news = threading.Event()
            news = threading.Thread(
                target=inject_news, args=(fixture, stop_news, args.news_every), daemon=True
            )
            window_start = time.monotonic()
            news.start()
            while time.monotonic() < window_start + args.duration:
                if any(p.poll() is not None for p in run.procs):
                    raise SystemExit("a daemon exited in steady state: see its log")
                time.sleep(1)
            window_end = time.monotonic()
            stop_news.set()
            time.sleep(3)  # the last news' mail
            result.update(steady_state(args, fixture, run, inbox, window_start, window_end))
            result["steady_polls_s"] = result["polls"] / result["window"]
            cores, cpu = sampler.cores(window_start, window_end)
            result["steady_cores"] = cores
            result["cpu_per_poll_ms"] = 1000 * cpu / max(1, result["polls"])
            if server:
                db_cores, db_cpu = db_sampler.cores(window_start, window_end)
                result["steady_db_cores"] = db_cores
                result["db_cpu_per_poll_ms"] = 1000 * db_cpu / max(1, result["polls"])
            inside = sampler.window(window_start, window_end)
            rss = [s[2] for s in inside]
            third = max(1, len(rss) // 3)
            early, late = statistics.median(rss[:third]), statistics.median(rss[-third:])
            result["rss_steady_start"], result["rss_steady_end"] = early, late
            result["rss_drift"] = (late - early) / early
        result["polls_by_replica"] = polls_by_replica(run.listens)
        result["rss_peak"] = max(s[2] for s in sampler.samples)
        result["rss_final"] = sampler.samples[-1][2]
        phases = {"backlog": (run.started, end_cycle)}
        if steady:
            phases["steady"] = (window_start, window_end)
        for phase, (a, b) in phases.items():
            took = [t for when, t in scraper.took if a <= when <= b]
            result[f"metrics_{phase}"] = (
                1000 * pct(took, 0.5),
                1000 * pct(took, 0.99),
                1000 * max(took, default=float("nan")),
                len(took),
            )
        result["daemon_lag_max"] = max((v for _, v in scraper.lag_max), default=float("nan"))
        result["mails"] = inbox.messages
    finally:
        scraper.stop.set()
        sampler.stop.set()
        db_sampler.stop.set()
        stop_daemons(run)
        controller.stop()
        httpd.shutdown()
        httpd.server_close()
    result["load"] = os.getloadavg()
    return result, fixture


def show(result: dict[str, Any]) -> None:
    def f(key: str, fmt: str = "{:.1f}") -> str:
        value = result.get(key)
        return "-" if value is None else fmt.format(value)

    r = result
    print(f"\n## {r['replicas']} replica(s), {r['feeds']} feeds, {r['reachable']} articles")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in r['load'])} (2 cores)")
    rows = [
        ("every feed polled once", f("all_polled") + " s"),
        ("first full cycle (every article fetched)", f("first_cycle") + " s  (target <= 180)"),
        ("backlog: articles/s", f("backlog_rate")),
        ("backlog: polls/s", f("backlog_polls_s")),
        ("backlog: cores used", f("backlog_cores", "{:.2f}")),
        ("backlog: CPU per article", f("backlog_cpu_per_article_ms") + " ms"),
        ("backlog: of it in the daemon's process", f("backlog_daemon_cpu_per_article_ms") + " ms"),
        ("backlog: PostgreSQL's cores", f("backlog_db_cores", "{:.2f}")),
    ]
    if "polls" in r:
        rows += [
            ("steady: polls/s", f("steady_polls_s")),
            ("steady: cores used", f("steady_cores", "{:.2f}")),
            ("steady: CPU per poll", f("cpu_per_poll_ms", "{:.2f}") + " ms"),
            (
                "steady: PostgreSQL's cores; its CPU per poll",
                f"{f('steady_db_cores', '{:.2f}')}; {f('db_cpu_per_poll_ms', '{:.2f}')} ms",
            ),
            ("steady: gap between polls p50 / p99", f"{f('gap_p50')} / {f('gap_p99')} s"),
            (
                "steady: per-feed worst gap max",
                f("gap_max") + f" s  (target <= {r['gap_limit']:.0f})",
            ),
            (
                "steady: lag past interval p50 / p99 / max",
                f"{f('lag_p50')} / {f('lag_p99')} / {f('lag_max')} s",
            ),
            ("steady: healthy feeds late", str(len(r["late_feeds"]))),
            ("steady: polled twice in one interval", str(r["doubles"])),
            ("RSS steady start -> end", f"{f('rss_steady_start')} -> {f('rss_steady_end')} MB"),
            ("RSS drift over steady state", f("rss_drift", "{:+.1%}") + "  (target within 10%)"),
            (
                "poll-to-alert p50 / p99 / max",
                f"{f('alert_p50', '{:.3f}')} / {f('alert_p99', '{:.3f}')} / "
                f"{f('alert_max', '{:.3f}')} s  ({r['news_alerted']}/{r['news']} news)",
            ),
        ]
    rows += [
        ("RSS peak / final", f"{f('rss_peak')} / {f('rss_final')} MB  (target <= 250)"),
        *(
            (
                f"/metrics scrape p50 / p99 / max, {phase}",
                "{:.1f} / {:.1f} / {:.1f} ms ({} scrapes; target < 50)".format(
                    *r[f"metrics_{phase}"]
                ),
            )
            for phase in ("backlog", "steady")
            if f"metrics_{phase}" in r
        ),
        ("daemon's own max feed lag seen (/metrics)", f("daemon_lag_max") + " s"),
        ("polls made by each replica", " / ".join(f"{n:.0f}" for n in r["polls_by_replica"])),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=12, help="items a feed (12 or 13)")
    parser.add_argument("--duration", type=float, default=300, help="steady-state seconds")
    parser.add_argument("--settle", type=float, default=INTERVAL, help="seconds before it")
    parser.add_argument("--first-cycle-timeout", type=float, default=1200)
    parser.add_argument("--news-every", type=float, default=3.0)
    parser.add_argument("--per-host", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="poll_workers (0: default)")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument(
        "--no-baseline", action="store_true", help="with --replicas: skip the one-replica run"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="work here (configs, logs) and keep it")
    args = parser.parse_args()
    if args.replicas > 1 and not args.postgres:
        parser.error("--replicas needs --postgres (SQLite supports one replica)")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pg = PostgresServer().start() if args.postgres else None
        try:

            def server() -> int | None:
                """PostgreSQL's postmaster: its process tree is the server's CPU."""
                if pg is None:
                    return None
                return int((pg.data / "postmaster.pid").read_text().split()[0])

            def database(name: str) -> str:
                if pg is not None:
                    return pg.new_database()
                return f"sqlite:///{work / name / 'bench.db'}"

            if args.replicas > 1 and not args.no_baseline:
                (work / "one").mkdir(exist_ok=True)
                print("backlog with one replica ...", file=sys.stderr)
                one, _ = measure(
                    args, 1, database("one"), work / "one", steady=False, server=server()
                )
                show(one)
                results.append(one)
            (work / "main").mkdir(exist_ok=True)
            print(f"{args.replicas} replica(s) ...", file=sys.stderr)
            main_result, _ = measure(
                args, args.replicas, database("main"), work / "main", steady=True, server=server()
            )
            show(main_result)
            results.append(main_result)
            if args.replicas > 1 and not args.no_baseline:
                ratio = main_result["backlog_rate"] / results[0]["backlog_rate"]
                print(
                    f"\nbacklog throughput, {args.replicas} replicas / 1: {ratio:.2f}x "
                    f"(articles/s {main_result['backlog_rate']:.1f} vs "
                    f"{results[0]['backlog_rate']:.1f}; target >= 2.5x)"
                )
        finally:
            if pg is not None:
                pg.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
