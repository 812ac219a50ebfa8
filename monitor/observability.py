"""What the daemon tells operators: /healthz and /metrics (`monitor status` reads the same facts
through ``monitor.status``).

Two kinds of numbers. Counters of what *this replica* did (polls by outcome, poll errors by
kind, events it appended) live in a ``CollectorRegistry`` the daemon owns. Everything that is
a fact of the shared database (alerts raised and suppressed, deliveries by outcome, outbox
depth, projection lag, feed health) is read from the database by ``ClusterMetrics.refresh``,
which the daemon runs every few seconds, so every replica reports the same cluster-wide
values, nothing is lost on restart, and a scrape never waits on the database.

The HTTP server listens on loopback by default; ``POST /poll/FEED`` makes a feed due now, and
the read-only dashboard (``monitor.web``) answers its pages on the same address.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import select
from sqlmodel import col

from monitor.config import FeedConfig
from monitor.events import as_utc
from monitor.leases import LAGGING_AFTER, db_now, lag
from monitor.status import checkpoints, outbox_counts
from monitor.store.log import EventStore
from monitor.store.tables import FeedLease

if TYPE_CHECKING:
    from monitor.sources.schedule import Backlog
    from monitor.web.app import WebUI

log = logging.getLogger(__name__)


class Metrics:
    """This replica's counters, on a registry of its own (never the global default), and the
    cluster-wide numbers from the database, rendered ahead of scrapes (``ClusterMetrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.cluster: ClusterMetrics | None = None
        # Labelled by outcome only: a series per feed would grow with the feeds (thousands).
        self.polls = Counter(
            "monitor_polls", "Feed polls by outcome", ["outcome"], registry=self.registry
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
        """The shared poll queue's backlog as this replica last read it (the same queue for every
        replica, so each reports the same numbers)."""
        Gauge(
            "monitor_poll_queue_due",
            "Feeds due for a poll and not yet started (the queue all replicas share)",
            registry=self.registry,
        ).set_function(lambda: backlog().depth)
        Gauge(
            "monitor_poll_queue_oldest_due_seconds",
            "How long the longest-waiting due poll has waited (0 when none is due)",
            registry=self.registry,
        ).set_function(lambda: backlog().oldest_age)

    def watch_database(
        self, store: EventStore, feeds: Callable[[], Sequence[FeedConfig]]
    ) -> ClusterMetrics:
        self.cluster = ClusterMetrics(store, feeds)
        Gauge(
            "monitor_cluster_metrics_age_seconds",
            "How old the database-derived numbers in this answer are",
            registry=self.registry,
        ).set_function(lambda: self.cluster.age() if self.cluster else 0.0)
        return self.cluster

    def exposition(self) -> bytes:
        own = generate_latest(self.registry)
        if self.cluster is None:
            return own
        return own + self.cluster.exposition()


class _Families:
    """Metric families already built, in the shape ``generate_latest`` reads."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class ClusterMetrics:
    """Cluster-wide numbers from the shared database, read and rendered by ``refresh`` (the
    daemon calls it every few seconds off the request path), so that a scrape costs the
    same at 2,000 feeds as at 2: it copies bytes and never waits for the database.

    The feed numbers are aggregates (feeds by state, lag quantiles) plus per-feed series for
    at most ``TROUBLED`` feeds, the worst first: the series count stays bounded however many
    feeds are configured. Log counters (alerts, deliveries) are read incrementally.
    """

    TROUBLED = 20

    def __init__(self, store: EventStore, feeds: Callable[[], Sequence[FeedConfig]]) -> None:
        self.store = store
        self.feeds = feeds
        self._lock = threading.Lock()
        self._cursor = 0
        self._raised: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._deliveries: dict[tuple[str, str], int] = {}
        self._text: bytes | None = None
        self._at = 0.0

    def age(self) -> float:
        return time.monotonic() - self._at if self._text is not None else 0.0

    def exposition(self) -> bytes:
        """The last rendering; the first scrape before any refresh renders one itself."""
        if self._text is None:
            self.refresh()
        return self._text or b""

    def refresh(self) -> None:
        """Read the database and render; a database that does not answer says so."""
        with self._lock:
            try:
                families = list(self._collect())
            except Exception as exc:  # a scrape must answer even when the database does not
                log.warning("metrics: database unavailable: %s", exc)
                up = GaugeMetricFamily("monitor_database_up", "1 when the database answered")
                up.add_metric([], 0)
                families = [up]
            self._text = generate_latest(_Families(families))
            self._at = time.monotonic()

    def _collect(self) -> Iterator[Metric]:
        configured = {f.name: f for f in self.feeds()}
        with self.store.read_session() as session:
            now = db_now(session)
            head = self.store.head(session)
            positions = checkpoints(session.connection())
            outbox = outbox_counts(session.connection())
            schedule = session.execute(
                select(
                    col(FeedLease.feed),
                    col(FeedLease.next_due),
                    col(FeedLease.last_polled_at),
                    col(FeedLease.last_success_at),
                    col(FeedLease.consecutive_failures),
                )
            ).all()
        self._tail()
        up = GaugeMetricFamily("monitor_database_up", "1 when the database answered")
        up.add_metric([], 1)
        yield up
        log_head = GaugeMetricFamily("monitor_log_head", "Position of the last event in the log")
        log_head.add_metric([], head)
        yield log_head
        behind = GaugeMetricFamily(
            "monitor_projection_lag", "Events not yet applied, per consumer", labels=["consumer"]
        )
        for name, seq in sorted(positions.items()):
            behind.add_metric([name], head - seq)
        yield behind
        depth = GaugeMetricFamily(
            "monitor_outbox_depth", "Outbox rows by status", labels=["status"]
        )
        for status in sorted({"pending", *outbox}):
            depth.add_metric([status], outbox.get(status, 0))
        yield depth
        raised = CounterMetricFamily(
            "monitor_alerts_raised", "Alerts raised (in the log)", labels=["rule"]
        )
        for rule, n in sorted(self._raised.items()):
            raised.add_metric([rule], n)
        yield raised
        suppressed = CounterMetricFamily(
            "monitor_alerts_suppressed", "Alerts suppressed (in the log)", labels=["rule"]
        )
        for rule, n in sorted(self._suppressed.items()):
            suppressed.add_metric([rule], n)
        yield suppressed
        deliveries = CounterMetricFamily(
            "monitor_deliveries",
            "Delivery attempts by channel and outcome (in the log)",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), n in sorted(self._deliveries.items()):
            deliveries.add_metric([channel, outcome], n)
        yield deliveries
        yield from _feed_metrics(
            [FeedState(*row, now=now) for row in schedule if row[0] in configured],
            configured,
            self.TROUBLED,
        )

    def _tail(self) -> None:
        """Count alert and delivery events appended since the last refresh."""
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


class FeedState:
    """One feed's row of the shared schedule, reduced to what the metrics say about it."""

    def __init__(
        self,
        feed: str,
        next_due: datetime | None,
        last_polled: datetime | None,
        last_success: datetime | None,
        failures: int,
        *,
        now: datetime,
    ) -> None:
        self.feed = feed
        self.lag = lag(as_utc(next_due), now)
        self.polled = last_polled is not None
        self.last_success = as_utc(last_success)
        self.failures = failures


def _feed_metrics(
    states: list[FeedState], feeds: dict[str, FeedConfig], troubled: int
) -> Iterator[Metric]:
    def lagging(s: FeedState) -> bool:
        return s.lag > LAGGING_AFTER * feeds[s.feed].interval.total_seconds()

    by_state = dict.fromkeys(("lagging", "failing", "never_polled", "ok"), 0)
    for s in states:
        if lagging(s):
            by_state["lagging"] += 1
        elif s.failures:
            by_state["failing"] += 1
        elif not s.polled:
            by_state["never_polled"] += 1
        else:
            by_state["ok"] += 1
    count = GaugeMetricFamily(
        "monitor_feeds",
        "Configured feeds by state: lagging (due poll waiting over two intervals), failing, "
        "never polled, ok",
        labels=["state"],
    )
    for state, n in by_state.items():
        count.add_metric([state], n)
    yield count
    lags = sorted(s.lag for s in states)
    quantiles = GaugeMetricFamily(
        "monitor_feeds_lag_seconds",
        "How long feeds' due polls have waited, across feeds (0 for a feed not yet due)",
        labels=["quantile"],
    )
    for q in ("0.5", "0.99", "1"):
        at = min(len(lags) - 1, int(float(q) * len(lags)))
        quantiles.add_metric([q], lags[at] if lags else 0.0)
    yield quantiles
    worst = sorted(
        (s for s in states if lagging(s) or s.failures),
        key=lambda s: (not lagging(s), -s.lag, -s.failures, s.feed),
    )[:troubled]
    feed_lag = GaugeMetricFamily(
        "monitor_feed_lag_seconds",
        f"Lag of the (at most {troubled}) worst lagging or failing feeds",
        labels=["feed"],
    )
    failures = GaugeMetricFamily(
        "monitor_feed_consecutive_failures",
        f"Failed polls in a row, for the same (at most {troubled}) feeds",
        labels=["feed"],
    )
    success = GaugeMetricFamily(
        "monitor_feed_last_success_timestamp_seconds",
        f"Last successful poll, for the same (at most {troubled}) feeds",
        labels=["feed"],
    )
    for s in worst:
        feed_lag.add_metric([s.feed], s.lag)
        failures.add_metric([s.feed], s.failures)
        if s.last_success is not None:
            success.add_metric([s.feed], s.last_success.timestamp())
    yield feed_lag
    yield failures
    yield success


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
