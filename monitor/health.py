"""Source health alerts: a feed that keeps failing, falls behind, or goes silent is itself news
to someone.

The check reads the shared feed schedule (``feed_leases``), so it sees every replica's polls.
A problem is one *outage*: it starts at a time stored in the database (``failing_since``; for a
lagging feed the time its overdue poll became due, ``next_due``; for a silent one the last time
it had something new), and the alert's id and idempotency key derive from the feed, the kind of
problem and that start. So however many replicas run the check, and
however often, one outage raises one alert; when the feed recovers, one "resolved" notice
follows. Alerts take the same path as rule alerts: the operator's silences, then
``AlertRaised`` in the log and one outbox row per health channel (``health = true`` in the
config), written in one transaction. A silenced outage is recorded as ``AlertSuppressed`` and
stays open, so it is told if it still lasts when the silence ends.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session, col

from monitor.alerting.silences import silences_in_log, silencing
from monitor.alerting.state import FAILING, GLOBAL
from monitor.config import FeedConfig
from monitor.events import AlertRaised, AlertSuppressed, as_utc
from monitor.leases import LAGGING_AFTER, db_now, lag
from monitor.notify.outbox import enqueue
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import FeedLease, RuleState

log = logging.getLogger(__name__)

HEALTH_NAMESPACE = uuid.UUID("0b6f2d0e-8a1c-4d57-b3e9-5c2a7f41d6e8")
RULE = "source-health"
# A rule that failed on this many events in a row (no clean evaluation between) makes
# /healthz report the daemon unhealthy: alerts of that rule are being lost.
KEEPS_FAILING = 3
# More feeds than this lagging at once raise one backlog alert instead of one each.
MANY_LAGGING = 10
BACKLOG = "backlog"  # the RuleState key of the open backlog episode


def failing_rules(store: EventStore) -> dict[str, dict[str, Any]]:
    """Rules whose latest evaluations failed: id -> failures in a row, since, last error.

    The evaluator keeps this in its own state, written in the transaction of the events it
    evaluated, so every replica reads the same answer.
    """
    with store.read_session() as session:
        row = session.get(RuleState, (GLOBAL, FAILING))
        return dict(row.value) if row is not None else {}


def rules_health(store: EventStore) -> tuple[bool, dict[str, Any]]:
    """For /healthz: False when some rule keeps failing, with what is known of each."""
    failing = failing_rules(store)
    stuck = sorted(r for r, f in failing.items() if int(f.get("failures", 0)) >= KEEPS_FAILING)
    return not stuck, {"failing": failing, "keeps_failing": stuck}


VERBS = {"failing": "is failing", "lagging": "is lagging", "silent": "went silent"}


class Problem:
    """What is wrong with one feed now, and since when (the outage's identity)."""

    def __init__(self, kind: str, since: datetime, detail: str) -> None:
        self.kind = kind
        self.since = since
        self.detail = detail

    def key(self, feed: str) -> str:
        return f"{RULE}:{feed}:{self.kind}:{self.since.isoformat()}"


def problem_of(feed: FeedConfig, row: FeedLease, now: datetime) -> Problem | None:
    """Failing for longer than the feed's failure period; else lagging: its due poll not done
    for more than ``LAGGING_AFTER`` intervals (``monitor.leases.lag``); else silent past its
    expected period."""
    failing_since = as_utc(row.failing_since)
    failing = bool(row.consecutive_failures and failing_since is not None)
    if failing and failing_since is not None and now - failing_since >= feed.failure_period():
        detail = f"{row.consecutive_failures} failed polls; last error: {row.last_error}"
        return Problem("failing", failing_since, detail)
    due = as_utc(row.next_due)
    late = lag(due, now)
    if due is not None and late > LAGGING_AFTER * feed.interval.total_seconds():
        polled = as_utc(row.last_polled_at)
        last = f"last poll {polled:%Y-%m-%d %H:%M:%S} UTC" if polled else "never polled"
        detail = (
            f"its poll has been due for {late:.0f} s (interval {feed.interval}); {last}. "
            "The replicas are not keeping up, or no replica is running."
        )
        return Problem("lagging", due, detail)
    if failing:
        return None  # failing, but not for long enough: neither failing nor silent yet
    last_new = as_utc(row.last_new_at)
    period = feed.expected_period
    if period is not None and last_new is not None and now - last_new >= period:
        return Problem("silent", last_new, f"nothing new since {last_new:%Y-%m-%d %H:%M} UTC")
    return None


def covered_by_backlog(feed: str, problem: Problem | None, open_key: str | None) -> bool:
    """A lag episode of this feed starting or ending while a backlog alert speaks for all."""
    lagging = problem is not None and problem.kind == "lagging"
    return lagging or (open_key or "").startswith(f"{RULE}:{feed}:lagging:")


class HealthChecker:
    """Raises and resolves source health alerts; run it on one replica at a time."""

    def __init__(self, store: EventStore, channels: Sequence[str]) -> None:
        """``channels``: the names of the channels marked ``health = true`` in the config."""
        self.store = store
        self.channels = list(channels)

    def check(self, feeds: Sequence[FeedConfig]) -> list[AlertRaised]:
        """One read of the whole schedule; a transaction only for a feed whose alert state
        changes (thousands of healthy feeds cost one query, not one write each).

        Many feeds lagging at once (more than ``MANY_LAGGING``) is one problem, the replicas not
        keeping up, not thousands: it raises one *backlog* alert, open until no feed lags, and
        while it is open lagging feeds raise nothing of their own.
        """
        with self.store.read_session() as session:
            now = db_now(session)
            rows = {r.feed: r for r in session.execute(select(FeedLease)).scalars()}
            backlog = session.get(RuleState, (RULE, BACKLOG))
        problems = {
            feed.name: problem_of(feed, rows[feed.name], now) for feed in feeds if feed.name in rows
        }
        lagging = sorted(
            (n for n, p in problems.items() if p is not None and p.kind == "lagging"),
            key=lambda n: (problems[n].since, n),  # type: ignore[union-attr]
        )
        raised: list[AlertRaised] = []
        is_open = backlog is not None and bool(backlog.value.get("open"))
        if (len(lagging) > MANY_LAGGING and not is_open) or (is_open and not lagging):
            alert, is_open = self._check_backlog(lagging, len(problems))
            if alert is not None:
                raised.append(alert)
        for feed in feeds:
            row = rows.get(feed.name)
            if row is None:
                continue
            problem = problems[feed.name]
            wanted = problem.key(feed.name) if problem is not None else None
            if wanted == row.health_alert:
                continue  # nothing new; checked again under the transaction if it moved
            if is_open and covered_by_backlog(feed.name, problem, row.health_alert):
                continue
            raised += self._check_feed(feed, quiet_lag=is_open)
        return raised

    def _check_backlog(self, lagging: list[str], feeds: int) -> tuple[AlertRaised | None, bool]:
        """Open or close the backlog episode; returns the alert raised (if any) and whether
        the episode is open afterwards."""
        with self.store.transaction() as session:
            now = db_now(session)
            row = session.get(RuleState, (RULE, BACKLOG), populate_existing=True)
            open_key = str(row.value.get("open") or "") if row is not None else ""
            if lagging and not open_key:
                key = f"{RULE}:backlog:{now.isoformat()}"
                alert = self._backlog_alert(key, lagging, feeds, None)
                state: dict[str, Any] = {"open": key, "since": now.isoformat()}
            elif open_key and not lagging:
                alert = self._backlog_alert(f"{open_key}:resolved", [], feeds, open_key)
                state = {}
            else:
                return None, bool(open_key)
            if not self._emit(session, alert, now):
                return None, bool(open_key)  # silenced: the episode stays as it was
            if row is None:
                session.add(RuleState(rule=RULE, key=BACKLOG, value=state))
            else:
                row.value = state
                session.add(row)
        log.warning("source health: %s", alert.title)
        return alert, bool(state)

    def _check_feed(self, feed: FeedConfig, *, quiet_lag: bool = False) -> list[AlertRaised]:
        """Raise or resolve this feed's alert; ``quiet_lag``: a backlog alert covers lagging
        feeds now, so a lag episode is neither opened nor closed here. A feed whose problem
        changes (silent, then failing) has the old alert resolved as the new one is raised, so
        every firing alert gets its notice."""
        with self.store.transaction() as session:
            now = db_now(session)
            row = session.get(FeedLease, feed.name, populate_existing=True)
            if row is None:
                return []
            problem = problem_of(feed, row, now)
            open_key = row.health_alert
            if quiet_lag and covered_by_backlog(feed.name, problem, open_key):
                return []
            alerts = []
            if open_key and (problem is None or open_key != problem.key(feed.name)):
                alerts.append(self._alert(feed, f"{open_key}:resolved", None, open_key))
            if problem is not None and open_key != problem.key(feed.name):
                alerts.append(self._alert(feed, problem.key(feed.name), problem, None))
            if not alerts:
                return []
            created = [self._emit(session, alert, now) for alert in alerts]
            # Silenced (None): the episode stays as it was, told when the silence ends; a
            # notice already in the log is not sent again then (its id is fixed by its key).
            if created[-1] is not None:
                session.execute(
                    update(FeedLease)
                    .where(col(FeedLease.feed) == feed.name)
                    .values(health_alert=problem.key(feed.name) if problem else None)
                )
        raised = [alert for alert, new in zip(alerts, created, strict=True) if new]
        for alert in raised:
            log.warning("source health: %s", alert.title)
        return raised

    def _emit(self, session: Session, alert: AlertRaised, now: datetime) -> bool | None:
        """The alert through silences, into the log and the outbox; True when new, False when
        it was in the log already, None when a silence holds it (recorded as suppressed)."""
        silence = silencing(
            [s for s in silences_in_log(self.store, session) if s.active(now)],
            {**alert.labels, "rule": RULE, "severity": alert.severity, "status": alert.status},
        )
        if silence is not None:
            self._suppress(session, alert, f"silenced by {silence.describe()}", now)
            return None
        created = self.store.append(
            [
                NewEvent(
                    stream=f"alert:{alert.alert_id}",
                    data=alert,
                    idempotency_key=f"alert:{alert.alert_id}",
                    occurred_at=now,
                )
            ],
            session=session,
        ).created[0]
        if created:
            enqueue(session, alert.alert_id, alert.channels, now)
        return created

    def _backlog_alert(
        self, key: str, lagging: list[str], feeds: int, resolves: str | None
    ) -> AlertRaised:
        if resolves is None:
            title = f"{len(lagging)} of {feeds} feeds are lagging"
            shown = ", ".join(lagging[:10]) + (", ..." if len(lagging) > 10 else "")
            summary = (
                f"{len(lagging)} of {feeds} feeds have had a poll due for more than "
                f"{LAGGING_AFTER} intervals (longest first: {shown}): the replicas are not "
                "keeping up with the schedule, or none is running. Add poll workers or replicas."
            )
            data: dict[str, Any] = {"problem": "backlog", "lagging": len(lagging)}
            data["feeds"] = lagging[:50]
        else:
            title = "The feed schedule caught up"
            summary = "No feed's poll has been due for more than two intervals any more."
            data = {"problem": "backlog", "resolves": resolves}
        return self._health_alert(key, "*", title, summary, data, firing=resolves is None)

    def _suppress(self, session: Session, alert: AlertRaised, reason: str, now: datetime) -> None:
        item = AlertSuppressed(
            rule=RULE,
            dedup_key=alert.dedup_key,
            reason=reason,
            trigger_event_id=alert.alert_id,
            kind="silence",
            alert_id=alert.alert_id,
            title=alert.title,
        )
        key = f"suppressed:{RULE}:{alert.dedup_key}:silence"
        event = NewEvent(stream=f"rule:{RULE}", data=item, idempotency_key=key, occurred_at=now)
        self.store.append([event], session=session)

    def _alert(
        self, feed: FeedConfig, key: str, problem: Problem | None, resolves: str | None
    ) -> AlertRaised:
        if problem is not None:
            verb = VERBS[problem.kind]
            title = f"Feed {feed.name} {verb}"
            since = f"{problem.since:%Y-%m-%d %H:%M} UTC"
            summary = f"Feed {feed.name} ({feed.url}) {verb} since {since}: {problem.detail}"
            data: dict[str, str | None] = {
                "feed": feed.name,
                "url": feed.url,
                "problem": problem.kind,
                "since": problem.since.isoformat(),
            }
        else:
            title = f"Feed {feed.name} recovered"
            summary = f"Feed {feed.name} ({feed.url}) is healthy again."
            data = {"feed": feed.name, "url": feed.url, "resolves": resolves}
        return self._health_alert(key, feed.name, title, summary, data, firing=problem is not None)

    def _health_alert(
        self, key: str, feed: str, title: str, summary: str, data: dict[str, Any], *, firing: bool
    ) -> AlertRaised:
        """A source-health alert (or its recovery notice), its id fixed by its key."""
        return AlertRaised(
            alert_id=str(uuid.uuid5(HEALTH_NAMESPACE, key)),
            rule=RULE,
            rule_hash=hashlib.sha256(RULE.encode()).hexdigest()[:16],
            severity="warning" if firing else "info",
            title=title,
            summary=summary,
            body=summary,
            dedup_key=key,
            data=data,
            channels=list(self.channels),
            labels={"kind": "source_health", "feed": feed},
            status="firing" if firing else "resolved",
        )
