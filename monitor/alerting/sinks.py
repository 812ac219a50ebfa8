"""Where the evaluator's conclusions go: the log and the outbox (live), or memory (backtests,
rule unit tests, explanations, which can never send or write anything)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlmodel import Session

from monitor.alerting.pending import Pending
from monitor.events import AlertRaised, AlertSuppressed, RuleFailed
from monitor.notify.outbox import enqueue_many
from monitor.store.log import EventStore, NewEvent


class Sink(Protocol):
    def raised(self, alert: AlertRaised, when: datetime, cause: str) -> bool:
        """Record an alert; False when it was recorded before (a replay)."""
        ...

    def suppressed(self, item: AlertSuppressed, when: datetime, cause: str) -> None: ...

    def failed(self, item: RuleFailed, when: datetime, cause: str) -> None: ...


class LogSink:
    """The live sink: buffers alerts, suppressions and failures, then ``flush`` appends them
    to the log in one batch and queues one outbox row per routed channel for each alert the
    log did not hold yet, all inside the transaction that moves the evaluator's checkpoint."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.pending: list[NewEvent] = []

    def _add(
        self,
        stream: str,
        data: AlertRaised | AlertSuppressed | RuleFailed,
        key: str,
        when: datetime,
        cause: str,
    ) -> None:
        self.pending.append(
            NewEvent(
                stream=stream,
                data=data,
                idempotency_key=key,
                occurred_at=when,
                metadata={"causation_id": cause},
            )
        )

    def raised(self, alert: AlertRaised, when: datetime, cause: str) -> bool:
        key = f"alert:{alert.alert_id}"
        self._add(f"alert:{alert.alert_id}", alert, key, when, cause)
        # Rule state records the alert either way: on a replay it was raised before, and
        # cooldowns must count from it.
        return True

    def suppressed(self, item: AlertSuppressed, when: datetime, cause: str) -> None:
        key = f"suppressed:{item.rule}:{item.dedup_key}:{cause}:{item.kind}"
        self._add(f"rule:{item.rule}", item, key, when, cause)

    def failed(self, item: RuleFailed, when: datetime, cause: str) -> None:
        key = f"rule-failed:{item.rule}:{item.event_id}"
        self._add(f"rule:{item.rule}", item, key, when, cause)

    def flush(self, session: Session) -> list[AlertRaised]:
        """Append what was buffered in ``session``'s transaction; returns the alerts that are
        new to the log."""
        if not self.pending:
            return []
        result = self.store.append(self.pending, session=session)
        self.pending = []
        now = datetime.now(UTC)  # delivery scheduling is wall-clock business, not rule time
        fresh: dict[str, AlertRaised] = {}
        for event, created in zip(result.events, result.created, strict=True):
            alert = event.data
            if not created or not isinstance(alert, AlertRaised) or alert.alert_id in fresh:
                continue  # raised before: a replay must not queue it again
            fresh[alert.alert_id] = alert
        enqueue_many(session, [(a.alert_id, a.channels) for a in fresh.values()], now)
        return list(fresh.values())


@dataclass
class CollectSink:
    """The backtest sink: keeps everything in memory, writes and sends nothing."""

    alerts: list[AlertRaised] = field(default_factory=list)
    suppressions: list[AlertSuppressed] = field(default_factory=list)
    failures: list[RuleFailed] = field(default_factory=list)
    times: dict[str, datetime] = field(default_factory=dict)

    def raised(self, alert: AlertRaised, when: datetime, cause: str) -> bool:
        if alert.alert_id in self.times:
            return False
        self.times[alert.alert_id] = when
        self.alerts.append(alert)
        return True

    def suppressed(self, item: AlertSuppressed, when: datetime, cause: str) -> None:
        self.suppressions.append(item)

    def failed(self, item: RuleFailed, when: datetime, cause: str) -> None:
        self.failures.append(item)


def suppress(sink: Sink, p: Pending, kind: str, reason: str, cause: str | None = None) -> None:
    """Record that a candidate was muted, and why (``cause``: the event that muted it, when
    it is not the candidate's own)."""
    sink.suppressed(p.suppression(kind, reason), p.when, cause or p.trigger)
