"""The assembled pipeline: settings, store, watches, rules and channels, wired once.

Both the daemon and ``monitor replay`` drive the same object, so a replay exercises exactly
the code path that runs in production. The daemon's path adds coordination: ``run_feed``
polls a feed only under its lease, and ``advance`` and ``check_health`` run on one replica at
a time (a PostgreSQL advisory lock; SQLite has a single replica).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import BaseModel

from monitor.alerting.digest import Digester
from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import RuleSet, load_rules
from monitor.config import FeedConfig, Settings
from monitor.events import AlertRaised
from monitor.extract.pool import ExtractPool
from monitor.health import HealthChecker
from monitor.leases import FeedLeases, Lease, default_replica_id, singleton
from monitor.notify.channels import Channel, build_channels
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.observability import Metrics
from monitor.pipeline import History, Ingested, IngestResult, LogWriter, ingest_items
from monitor.sources import polling
from monitor.sources.feeds import FeedItem
from monitor.sources.fetch import USER_AGENT, FetchLimits, new_client
from monitor.sources.polling import PollOutcome
from monitor.store.log import EventStore
from monitor.store.projections import all_projections
from monitor.watches import Watch, load_watches

log = logging.getLogger(__name__)


def load_rule_dirs(rules_dir: Path) -> tuple[list[Watch], RuleSet]:
    """Watches from ``rules_dir/watches``, alert rules from ``rules_dir/alerts``."""
    return load_watches(rules_dir / "watches"), load_rules(rules_dir / "alerts")


def fetch_limits(settings: Settings) -> FetchLimits:
    f = settings.fetch
    return FetchLimits(
        max_bytes=f.max_bytes,
        connect_timeout=f.connect_timeout.total_seconds(),
        read_timeout=f.read_timeout.total_seconds(),
        total_timeout=f.total_timeout.total_seconds(),
        max_redirects=f.max_redirects,
        per_host=f.per_host,
        user_agent=f.user_agent or USER_AGENT,
        allow_networks=tuple(f.allow_networks),
    )


class FeedRun(BaseModel):
    """One leased poll of one feed, as the daemon and ``monitor poll`` report it."""

    feed: str
    outcome: PollOutcome
    results: list[IngestResult] = []
    recorded: bool = True  # False: the lease was lost, another replica owns the feed now


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        extra_notify: Sequence[str] = (),
        metrics: Metrics | None = None,
        cpu_workers: int = 0,
    ) -> None:
        """``cpu_workers``: processes for the CPU stages (the daemon passes its setting;
        ``monitor replay`` ingests one article at a time and reads it in-process)."""
        self.settings = settings
        self.extra_notify = list(extra_notify)
        self.metrics = metrics or Metrics()
        self.replica_id = settings.replica_id or default_replica_id()
        self.store = EventStore(settings.db)
        self.watches, self.rules = load_rule_dirs(settings.rules_dir)
        self.channels: list[Channel]
        self.channels, warnings = build_channels(settings.channels, self.extra_notify)
        for warning in warnings:
            log.warning(warning)
        self.limits = fetch_limits(settings)
        self.client: httpx.Client = new_client(self.limits)
        self._old_clients: list[httpx.Client] = []
        self.evaluator = Evaluator(self.rules, self._routes(self.channels))
        self.deliverer = Deliverer(
            self.store,
            self.channels,
            retry_policy(settings),
            explain_url=settings.delivery.explain_url,
        )
        self.health = HealthChecker(self.store, [c.name for c in self.channels if c.health])
        self.digester = Digester(self.store, settings.digest.channels, settings.digest.at)
        self.leases = FeedLeases(
            self.store, self.replica_id, settings.lease_period, settings.fetch.max_backoff
        )
        self.projections = all_projections()
        self._consumers = threading.Lock()
        self.extract_pool = ExtractPool(cpu_workers)
        self.writer = LogWriter(self.store)  # every poll's articles go to the log through it

    @staticmethod
    def _routes(channels: Sequence[Channel]) -> list[Route]:
        return [Route(name=c.name, tags=c.tags, health=c.health) for c in channels]

    def close(self) -> None:
        self.writer.close()
        self.extract_pool.close()
        for client in [self.client, *self._old_clients]:
            client.close()
        self.store.close()

    def reload(self, settings: Settings) -> list[str]:
        """Apply new settings: rules, watches, channels, feeds, fetch limits.

        Everything is loaded and validated before anything is swapped, so an error (raised to
        the caller) leaves the running configuration whole. Returns what could not change
        without a restart.
        """
        watches, rules = load_rule_dirs(settings.rules_dir)
        channels, warnings = build_channels(settings.channels, self.extra_notify)
        for warning in warnings:
            log.warning(warning)
        needs_restart = [
            name
            for name in ("db", "http_listen", "replica_id", "poll_workers", "cpu_workers")
            if getattr(settings, name) != getattr(self.settings, name)
        ]
        kept = {name: getattr(self.settings, name) for name in needs_restart}
        settings = settings.model_copy(update=kept)
        with self._consumers:
            self.watches, self.rules, self.channels = watches, rules, channels
            self.evaluator = Evaluator(rules, self._routes(channels))
            self.deliverer = Deliverer(
                self.store,
                channels,
                retry_policy(settings),
                explain_url=settings.delivery.explain_url,
            )
            self.health = HealthChecker(self.store, [c.name for c in channels if c.health])
            self.digester = Digester(self.store, settings.digest.channels, settings.digest.at)
            limits = fetch_limits(settings)
            if limits != self.limits:
                # Polls in flight keep the old client; it is closed with the runtime.
                self._old_clients.append(self.client)
                self.limits, self.client = limits, new_client(limits)
            self.leases.lease_period = settings.lease_period
            self.leases.max_backoff = settings.fetch.max_backoff
            self.settings = settings
        self.leases.ensure(settings.feeds)
        return needs_restart

    def poll(self, feed: FeedConfig) -> tuple[list[FeedItem], PollOutcome]:
        """Read a feed once, without a lease (``monitor replay``): the daemon's poll."""
        items, outcome, _ = polling.poll(
            self.store, feed, None, limits=self.limits, client=self.client
        )
        self.metrics.events_appended.inc(outcome.appended)
        return items, outcome

    def ingest(self, item: FeedItem) -> IngestResult:
        """One article (``monitor replay``, which evaluates rules after each)."""
        return self.ingest_all([item]).results[0]

    def ingest_all(
        self,
        items: Sequence[FeedItem],
        proceed: Callable[[], bool] = lambda: True,
        histories: Mapping[str, History] | None = None,
    ) -> Ingested:
        """Articles in the order given, through the one ingest path (``ingest_items``)."""
        done = ingest_items(
            self.store,
            items,
            self.watches,
            limits=self.limits,
            client=self.client,
            extract_budget=self.settings.extract_budget.total_seconds(),
            pool=self.extract_pool,
            writer=self.writer,
            proceed=proceed,
            histories=histories,
        )
        self.metrics.events_appended.inc(sum(r.new_events for r in done.results))
        return done

    def run_feed(
        self,
        feed: FeedConfig,
        *,
        force: bool = False,
        lease: Lease | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> FeedRun | None:
        """Poll ``feed`` under ``lease`` (the daemon's workers claim from the shared queue),
        or if this replica can claim it now (due and free, or ``force``d and free).

        Items are ingested oldest first; the lease is renewed as the poll goes on. When asked
        to stop, or when the lease is lost, no further article is fetched: the ones already
        fetched are finished and appended, and the poll is recorded as incomplete, so the next
        poll (on any replica) fetches the feed in full. Returns None when the feed was not
        ours to poll.
        """
        lease = lease or self.leases.claim(feed, force=force)
        if lease is None:
            return None
        renewed = time.monotonic()
        renew_every = self.leases.lease_period.total_seconds() / 3

        def proceed() -> bool:
            nonlocal renewed
            if stopping():
                return False
            if time.monotonic() - renewed > renew_every:
                if not self.leases.renew(lease):
                    return False
                renewed = time.monotonic()
            return True

        try:
            items, outcome, histories = polling.poll(
                self.store, feed, lease, limits=self.limits, client=self.client
            )
            self.metrics.events_appended.inc(outcome.appended)
            done = self.ingest_all(sorted(items, key=publication_order), proceed, histories)
            outcome.complete = outcome.complete and done.complete
        except Exception as exc:
            # A bug or a database error: recorded as the poll's failure, so the feed backs off
            # like any failing one. Released instead, it would be due at once, and the shared
            # queue would hand the same feed out again in a loop.
            failed = PollOutcome(
                ok=False, error=f"{type(exc).__name__}: {exc}", error_kind="internal"
            )
            with suppress(Exception):  # the database itself may be what failed
                self.leases.complete(lease, feed, failed)
            raise
        except BaseException:  # asked to exit: still due, for whoever runs next
            self.leases.release(lease)
            raise
        recorded = self.leases.complete(lease, feed, outcome)
        self._count(feed, outcome)
        return FeedRun(feed=feed.name, outcome=outcome, results=done.results, recorded=recorded)

    def _count(self, feed: FeedConfig, outcome: PollOutcome) -> None:
        if outcome.ok:
            label = "not_modified" if outcome.not_modified else "ok"
        else:
            label = "failed"
            self.metrics.poll_errors.labels(kind=outcome.error_kind or "other").inc()
        self.metrics.polls.labels(outcome=label).inc()
        self.metrics.last_poll.set_to_current_time()

    def advance(self, now: datetime | None = None) -> list[AlertRaised]:
        """Bring projections and rule evaluation up to the head of the log.

        With ``now`` (the daemon's periodic run), rule holds that are due by the wall clock
        fire too (``Evaluator.tick`` records the tick in the log first). One replica at a
        time: the others skip (the holder reads to the head, and every replica's periodic run
        picks up what arrives after it let go).
        """
        with self._consumers, singleton(self.store, "advance") as mine:
            if not mine:
                return []
            if now is None:
                alerts = self.evaluator.catch_up(self.store, also=self.projections)
            else:
                alerts = self.evaluator.tick(self.store, now, also=self.projections)
        self.metrics.alerts_raised.inc(len(alerts))
        return alerts

    def check_health(self) -> list[AlertRaised]:
        """Source health alerts for the configured feeds; one replica at a time."""
        with singleton(self.store, "health") as mine:
            if not mine:
                return []
            alerts = self.health.check(self.settings.feeds)
        self.metrics.alerts_raised.inc(len(alerts))
        return alerts

    def send_digests(self, now: datetime | None = None) -> list[AlertRaised]:
        """The daily digests that are due (one per watch and day); one replica at a time."""
        with singleton(self.store, "digest") as mine:
            if not mine:
                return []
            with self._consumers:
                digester, watches = self.digester, list(self.watches)
            sent = digester.run(watches, now or datetime.now(UTC))
        self.metrics.alerts_raised.inc(len(sent))
        return sent

    def deliver(self, *, flush: bool = False) -> int:
        attempts = self.deliverer.run_once(flush=flush)
        self.metrics.delivery_attempts.inc(attempts)
        return attempts


def retry_policy(settings: Settings) -> RetryPolicy:
    d = settings.delivery
    return RetryPolicy(base=d.retry_base, cap=d.retry_cap, max_age=d.max_age, lease=d.lease)


def publication_order(item: FeedItem) -> tuple[int, str, str]:
    """Oldest first; undated items last, in a stable order."""
    if item.published is None:
        return (1, "", item.url)
    return (0, item.published.isoformat(), item.url)
