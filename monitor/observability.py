"""What the daemon tells operators: /healthz, /metrics, and the same facts for `monitor status`.

Two kinds of numbers. Counters of what *this replica* did (polls by outcome, poll errors by
kind, events it appended) live in a ``CollectorRegistry`` the daemon owns. Everything that is
a fact of the shared database (alerts raised and suppressed, deliveries by outcome, outbox
depth, projection lag, feed health) is read from the database at scrape time, so every replica
reports the same cluster-wide values and nothing is lost on restart.

The HTTP server listens on loopback by default; ``POST /poll/FEED`` makes a feed due now, and
the read-only dashboard (``monitor.web``) answers its pages on the same address.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import col

from monitor.config import FeedConfig
from monitor.events import as_utc
from monitor.store.log import EventStore
from monitor.store.tables import Checkpoint, FeedHealth, FeedLease, OutboxRow

if TYPE_CHECKING:
    from monitor.sources.schedule import Backlog
    from monitor.web.app import WebUI

log = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def status_snapshot(store: EventStore, feeds: Sequence[FeedConfig] = ()) -> dict[str, Any]:
    """Log head, lag per consumer, outbox by status, and every feed's health, as plain data."""
    with store.read_session() as session:
        head = store.head(session)
        checkpoints = {c.name: c.seq for c in session.execute(select(Checkpoint)).scalars()}
        by_status = select(col(OutboxRow.status), func.count()).group_by(col(OutboxRow.status))
        outbox = {status: int(n) for status, n in session.execute(by_status).all()}
        health = {h.feed: h for h in session.execute(select(FeedHealth)).scalars()}
        leases = {lease.feed: lease for lease in session.execute(select(FeedLease)).scalars()}
    names = [f.name for f in feeds]
    names += sorted((set(health) | set(leases)) - set(names))
    rows = []
    for name in names:
        h, lease = health.get(name), leases.get(name)
        rows.append(
            {
                "feed": name,
                "url": h.url if h else next((f.url for f in feeds if f.name == name), None),
                "last_poll": _iso(lease.last_polled_at) if lease else None,
                "last_success": _iso(lease.last_success_at if lease else None)
                or _iso(h.last_success if h else None),
                "last_new": _iso(lease.last_new_at) if lease else None,
                "next_due": _iso(lease.next_due) if lease else None,
                "polled_by": lease.polled_by if lease else None,
                "leased_by": lease.owner if lease and lease.owner else None,
                "consecutive_failures": lease.consecutive_failures
                if lease
                else (h.consecutive_failures if h else 0),
                "failing_since": _iso(lease.failing_since) if lease else None,
                "last_error": (lease.last_error if lease else None)
                or (h.last_error if h else None),
                "last_error_kind": lease.last_error_kind if lease else None,
                "last_items": lease.last_items if lease else (h.last_items if h else 0),
                "changes": h.polls if h else 0,
                "open_health_alert": lease.health_alert if lease else None,
            }
        )
    polls = [r["last_poll"] for r in rows if r["last_poll"]]
    return {
        "head": head,
        "lag": {name: head - seq for name, seq in sorted(checkpoints.items())},
        "outbox": outbox,
        "outbox_pending": int(outbox.get("pending", 0)),
        "last_poll": max(polls) if polls else None,
        "feeds": rows,
    }


class Metrics:
    """This replica's counters, on a registry of its own (never the global default)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.polls = Counter(
            "monitor_polls", "Feed polls by outcome", ["feed", "outcome"], registry=self.registry
        )
        self.poll_errors = Counter(
            "monitor_poll_errors",
            "Failed feed polls by kind of error",
            ["kind"],
            registry=self.registry,
        )
        self.events_appended = Counter(
            "monitor_events_appended",
            "Events this replica appended while polling and ingesting",
            registry=self.registry,
        )
        self.alerts_raised = Counter(
            "monitor_replica_alerts_raised",
            "Alerts raised by this replica's rule evaluation and health checks",
            registry=self.registry,
        )
        self.delivery_attempts = Counter(
            "monitor_replica_delivery_attempts",
            "Delivery attempts made by this replica",
            registry=self.registry,
        )
        self.ready = Gauge("monitor_ready", "1 when the daemon is serving", registry=self.registry)
        self.last_poll = Gauge(
            "monitor_replica_last_poll_timestamp_seconds",
            "When this replica last finished a poll",
            registry=self.registry,
        )

    def watch_queue(self, backlog: Callable[[], Backlog]) -> None:
        """The poll queue's backlog, read at scrape time: this replica's own numbers."""
        Gauge(
            "monitor_poll_queue_due",
            "Feeds due for a poll on this replica and not yet started",
            registry=self.registry,
        ).set_function(lambda: backlog().depth)
        Gauge(
            "monitor_poll_queue_oldest_due_seconds",
            "How long the longest-waiting due poll has waited (0 when none is due)",
            registry=self.registry,
        ).set_function(lambda: backlog().oldest_age)

    def watch_database(self, store: EventStore, feeds: Callable[[], Sequence[FeedConfig]]) -> None:
        self.registry.register(DatabaseCollector(store, feeds))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Cluster-wide numbers read at scrape time; log counts are read incrementally."""

    def __init__(self, store: EventStore, feeds: Callable[[], Sequence[FeedConfig]]) -> None:
        self.store = store
        self.feeds = feeds
        self._lock = threading.Lock()
        self._cursor = 0
        self._raised: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._deliveries: dict[tuple[str, str], int] = {}

    def describe(self) -> list[Metric]:
        return []  # values come from the database: nothing to ask it at registration

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = status_snapshot(self.store, self.feeds())
            self._tail()
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: database unavailable: %s", exc)
            up = GaugeMetricFamily("monitor_database_up", "1 when the database answered")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("monitor_database_up", "1 when the database answered")
        up.add_metric([], 1)
        yield up
        head = GaugeMetricFamily("monitor_log_head", "Position of the last event in the log")
        head.add_metric([], snapshot["head"])
        yield head
        lag = GaugeMetricFamily(
            "monitor_projection_lag", "Events not yet applied, per consumer", labels=["consumer"]
        )
        for name, value in snapshot["lag"].items():
            lag.add_metric([name], value)
        yield lag
        depth = GaugeMetricFamily(
            "monitor_outbox_depth", "Outbox rows by status", labels=["status"]
        )
        for status in sorted({"pending", *snapshot["outbox"]}):
            depth.add_metric([status], snapshot["outbox"].get(status, 0))
        yield depth
        with self._lock:
            raised = CounterMetricFamily(
                "monitor_alerts_raised", "Alerts raised (in the log)", labels=["rule"]
            )
            for rule, n in sorted(self._raised.items()):
                raised.add_metric([rule], n)
            suppressed = CounterMetricFamily(
                "monitor_alerts_suppressed", "Alerts suppressed (in the log)", labels=["rule"]
            )
            for rule, n in sorted(self._suppressed.items()):
                suppressed.add_metric([rule], n)
            deliveries = CounterMetricFamily(
                "monitor_deliveries",
                "Delivery attempts by channel and outcome (in the log)",
                labels=["channel", "outcome"],
            )
            for (channel, outcome), n in sorted(self._deliveries.items()):
                deliveries.add_metric([channel, outcome], n)
        yield raised
        yield suppressed
        yield deliveries
        yield from _feed_metrics(snapshot["feeds"])

    def _tail(self) -> None:
        """Count alert and delivery events appended since the last scrape."""
        with self._lock:
            for event in self.store.read(
                self._cursor, types=["AlertRaised", "AlertSuppressed", "DeliveryAttempted"]
            ):
                data: Any = event.data
                if event.type == "AlertRaised":
                    self._raised[data.rule] = self._raised.get(data.rule, 0) + 1
                elif event.type == "AlertSuppressed":
                    self._suppressed[data.rule] = self._suppressed.get(data.rule, 0) + 1
                else:
                    key = (data.channel, data.outcome)
                    self._deliveries[key] = self._deliveries.get(key, 0) + 1
                self._cursor = event.seq


def _feed_metrics(feeds: list[dict[str, Any]]) -> Iterator[Metric]:
    success = GaugeMetricFamily(
        "monitor_feed_last_success_timestamp_seconds",
        "When the feed was last polled successfully",
        labels=["feed"],
    )
    failures = GaugeMetricFamily(
        "monitor_feed_consecutive_failures", "Failed polls in a row", labels=["feed"]
    )
    items = GaugeMetricFamily(
        "monitor_feed_items", "Items in the feed's last poll", labels=["feed"]
    )
    for row in feeds:
        if row["last_success"]:
            success.add_metric(
                [row["feed"]], datetime.fromisoformat(row["last_success"]).timestamp()
            )
        failures.add_metric([row["feed"]], row["consecutive_failures"])
        items.add_metric([row["feed"]], row["last_items"])
    yield success
    yield failures
    yield items


class Endpoints:
    """What the HTTP server asks the daemon; kept small so the server can be tested alone."""

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        poll: Callable[[str], tuple[int, str]],
        web: WebUI | None = None,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.poll = poll
        self.web = web


class ObservabilityServer:
    """/healthz, /metrics, POST /poll/FEED and the dashboard on a small threaded HTTP server."""

    def __init__(self, listen: str, endpoints: Endpoints) -> None:
        host, _, port = listen.rpartition(":")
        handler = _handler(endpoints)
        self.httpd = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.httpd.socket.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> ObservabilityServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(endpoints: Endpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "monitor"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload, default=str).encode(), "application/json")

        def _web(self, method: str) -> bool:
            """Answer a dashboard path; False when the path is not the dashboard's."""
            web = endpoints.web
            if web is None or not web.serves(self.path.split("?", 1)[0]):
                return False
            from monitor.web.app import SECURITY_HEADERS, forwarded

            answer = web.handle(
                method,
                self.path,
                self.client_address[0],
                self.headers.get("Authorization"),
                proxied=forwarded(self.headers),
            )
            self.send_response(answer.status)
            for name, value in {**SECURITY_HEADERS, **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(answer.body)
            return True

        def do_HEAD(self) -> None:
            if not self._web("HEAD"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def do_GET(self) -> None:
            if self._web("GET"):
                return
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ready, payload = endpoints.health()
                self._json(200 if ready else 503, payload)
            elif path == "/metrics":
                self._send(200, endpoints.metrics.exposition(), CONTENT_TYPE_LATEST)
            else:
                self._json(404, {"error": "not found", "try": ["/healthz", "/metrics"]})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if self._web("POST"):
                return  # refused: the dashboard only reads
            if not path.startswith("/poll/"):
                self._json(404, {"error": "not found"})
                return
            feed = unquote(path.removeprefix("/poll/"))
            status, message = endpoints.poll(feed)
            self._json(status, {"feed": feed, "message": message, "at": datetime.now(UTC)})

    return Handler


def ask_daemon(listen: str, method: str, path: str, timeout: float = 3.0) -> tuple[int, Any] | None:
    """Call a running daemon's endpoint; None when nothing answers there."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    try:
        resp = httpx.request(method, f"http://{host}:{port}{path}", timeout=timeout)
    except httpx.HTTPError:
        return None
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text
