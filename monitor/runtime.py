"""The assembled pipeline: settings, store, watches, rules and channels, wired once.

Both the daemon and ``monitor replay`` drive the same object, so a replay exercises exactly
the code path that runs in production.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import httpx

from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import RuleSet, load_rules
from monitor.config import FeedConfig, Settings
from monitor.events import AlertRaised
from monitor.notify.channels import Channel, build_channels
from monitor.notify.outbox import Deliverer
from monitor.pipeline import IngestResult, ingest_item, poll_feed
from monitor.sources.feeds import FeedItem
from monitor.sources.fetch import FetchLimits, new_client
from monitor.store.log import EventStore
from monitor.store.projections import all_projections, catch_up
from monitor.watches import Watch, load_watches

log = logging.getLogger(__name__)


def load_rule_dirs(rules_dir: Path) -> tuple[list[Watch], RuleSet]:
    """Watches from ``rules_dir/watches``, alert rules from ``rules_dir/alerts``."""
    return load_watches(rules_dir / "watches"), load_rules(rules_dir / "alerts")


class Runtime:
    def __init__(self, settings: Settings, *, extra_notify: Sequence[str] = ()) -> None:
        self.settings = settings
        self.store = EventStore(settings.db)
        self.watches, self.rules = load_rule_dirs(settings.rules_dir)
        self.channels: list[Channel]
        self.channels, warnings = build_channels(settings.channels, list(extra_notify))
        for warning in warnings:
            log.warning(warning)
        self.limits = FetchLimits()
        self.client: httpx.Client = new_client(self.limits)
        self.evaluator = Evaluator(self.rules, [Route(name=c.name, tags=c.tags) for c in self.channels])
        self.deliverer = Deliverer(self.store, self.channels)
        self.projections = all_projections()
        self._consumers = threading.Lock()

    def close(self) -> None:
        self.client.close()
        self.store.close()

    def reload_rules(self) -> None:
        """Swap in new watches and rules; on any error the old ones stay and the error is raised."""
        watches, rules = load_rule_dirs(self.settings.rules_dir)
        with self._consumers:
            self.watches, self.rules = watches, rules
            self.evaluator = Evaluator(rules, self.evaluator.routes)

    def poll(self, feed: FeedConfig) -> list[FeedItem]:
        return poll_feed(self.store, feed, limits=self.limits, client=self.client)

    def ingest(self, item: FeedItem) -> IngestResult:
        return ingest_item(self.store, item, self.watches, limits=self.limits, client=self.client)

    def advance(self) -> list[AlertRaised]:
        """Bring projections and rule evaluation up to the head of the log."""
        with self._consumers:
            for projection in self.projections:
                catch_up(self.store, projection)
            return self.evaluator.catch_up(self.store)

    def deliver(self) -> int:
        return self.deliverer.run_once()

    def poll_and_ingest(self, feed: FeedConfig) -> list[AlertRaised]:
        """One scheduled job: poll a feed, ingest its items oldest first, evaluate, deliver."""
        items = sorted(self.poll(feed), key=publication_order)
        for item in items:
            self.ingest(item)
        alerts = self.advance()
        self.deliver()
        return alerts


def publication_order(item: FeedItem) -> tuple[int, str, str]:
    """Oldest first; undated items last, in a stable order."""
    if item.published is None:
        return (1, "", item.url)
    return (0, item.published.isoformat(), item.url)
