"""The outbox worker: claim due deliveries, send each through its own channel, record the result.

The evaluator writes one outbox row per routed channel in the same transaction as the
``AlertRaised`` event, so an alert is never raised without its deliveries being queued. This
worker then, one message at a time:

1. claims the next due unit (one row, or every due row of a grouped channel) in a short
   transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the transaction begins
   ``IMMEDIATE`` and so holds the single write lock. The claim sets a lease and increments
   ``attempts``, which doubles as the fencing token;
2. sends outside any transaction, through Apprise, one URL at a time;
3. records the attempt as a ``DeliveryAttempted`` event and the row's new state in one
   transaction, but only while the row still carries the attempt number it claimed: a worker
   whose lease expired and was overtaken records its attempt as ``superseded`` and leaves the
   row alone.

A worker that dies holding a lease leaves the row claimed until the lease expires; a worker on
the same host (and PID namespace) releases it at once when the owner process no longer exists.
A crash between the provider accepting a message and step 3 is the only way a message is sent
twice; the attempt that sent the copy then has no event (attempt numbers have a gap) and every
message names its alert ids and attempt numbers, so receivers can de-duplicate.

Failed attempts are retried with exponential backoff and full jitter, capped; past the maximum
age the delivery is given up, and each health channel gets one report about it, queued in the
same transaction through this same outbox.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, insert, or_, select, update
from sqlmodel import Session, col

from monitor.events import AlertRaised, DeliveryAttempted, DeliveryOutcome, as_utc
from monitor.notify.channels import Channel, DeliveryError, send
from monitor.notify.message import Message, Section, render_group, render_report
from monitor.notify.redaction import redact, secret_scope
from monitor.store.db import rowcount
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow

log = logging.getLogger(__name__)

REPORT_NAMESPACE = uuid.UUID("9b7e2c51-0d8a-4f3e-b6c4-7a1e5d9f2c30")
Clock = Callable[[], datetime]


def enqueue(
    session: Session,
    alert_id: str,
    channels: Sequence[str],
    at: datetime,
    *,
    kind: str = "alert",
    ref: int | None = None,
    status: str = "pending",
    attempts: int = 0,
    last_error: str | None = None,
) -> None:
    """Queue one delivery of ``alert_id`` per channel, due at ``at``, in the caller's
    transaction (the one that appended the alert).

    ``kind="report"`` queues a health report about the given-up delivery in row ``ref``;
    ``status``, ``attempts`` and ``last_error`` let ``monitor outbox rebuild`` restore rows
    as the log last saw them.
    """
    row = {"kind": kind, "ref": ref, "status": status, "attempts": attempts}
    enqueue_many(session, [(alert_id, channels)], at, **row, last_error=last_error)


def enqueue_many(
    session: Session,
    alerts: Iterable[tuple[str, Sequence[str]]],
    at: datetime,
    **fields: Any,
) -> None:
    """Queue ``(alert id, channels)`` deliveries (``enqueue``'s ``fields``) in one statement:
    the only place an outbox row is made. Rows are inserted as plain values, in order (the
    evaluator queues a batch's alerts at once: one model object a row cost more than the
    alert)."""
    base = {"next_attempt_at": at, "created_at": at, "kind": "alert", "ref": None}
    base |= {"status": "pending", "attempts": 0, "last_error": None, **fields}
    rows = [
        {**base, "alert_id": alert_id, "channel": channel}
        for alert_id, channels in alerts
        for channel in channels
    ]
    if rows:
        session.execute(insert(OutboxRow), rows)


class RetryPolicy(BaseModel):
    """Backoff ``base * 2**(attempt-1)`` (full jitter in its upper half), capped at ``cap``;
    given up after ``max_age``. ``lease`` must exceed the longest send (Apprise's timeouts are
    seconds), else a slow send can be overtaken and sent twice."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=30)
    max_age: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=2)
    max_group: int = 50

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Exponential backoff with jitter, capped."""
        ceiling = min(self.cap.total_seconds(), self.base.total_seconds() * 2 ** (attempt - 1))
        return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


@dataclass
class Claimed:
    """One row as claimed: ``attempt`` is the fencing token the record step must still see."""

    id: int
    alert_id: str
    channel: str
    attempt: int
    kind: str
    ref: int | None
    age_from: datetime
    subject_alert: str = ""  # the alert the message is about (a report's row has its own id)
    reports_on: str | None = None
    error: str | None = None  # a problem with this row alone (e.g. its alert is missing)


@dataclass
class Unit:
    """What one message covers: one row, or the due rows of a grouped channel."""

    channel: str
    rows: list[Claimed] = field(default_factory=list)


def worker_identity() -> str:
    """``host|pid-namespace|pid|nonce``: enough for a peer to tell that this process died."""
    try:
        pidns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pidns = "?"
    return f"{socket.gethostname()}|{pidns}|{os.getpid()}|{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str, me: str) -> bool:
    """True only when certain: same host and PID namespace, and no such live process."""
    try:
        host, pidns, pid_text, _nonce = owner.split("|")
        my_host, my_pidns, my_pid, _ = me.split("|")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != my_host or pidns != my_pidns or pidns == "?" or pid_text == my_pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie is dead too, it only waits for its parent
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class Deliverer:
    """Delivers due outbox rows. Safe to run in several threads and processes at once."""

    def __init__(
        self,
        store: EventStore,
        channels: Sequence[Channel],
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        *,
        clock: Clock | None = None,
        worker: str | None = None,
        scan: int = 200,
        explain_url: str | None = None,
    ) -> None:
        self.store = store
        self.explain_url = explain_url
        self.channels = {c.name: c for c in channels}
        self.health = [c for c in channels if c.health]
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.worker = worker or worker_identity()
        self.scan = scan
        self._postgres = store.engine.dialect.name == "postgresql"

    # --- the loop ---------------------------------------------------------------------------

    def run_once(self, limit: int = 50, *, flush: bool = False) -> int:
        """Send what is due now, up to ``limit`` messages; returns how many were attempted.

        A row is attempted at most once per run, so a run ends even when retries are due at once.
        ``flush`` (at shutdown) also sends the alerts still waiting for their group window, so
        nothing queued waits for the next start; retries keep their backoff and rate limits hold.
        """
        sent = 0
        done: set[int] = set()
        with secret_scope(self.channels.values()):
            self.release_dead_leases()
            while sent < limit:
                unit, deferred = self._claim_next(done, flush)
                if unit is not None:
                    done.update(r.id for r in unit.rows)
                    self._deliver(unit)
                    sent += 1
                elif flush or not deferred:
                    break
        return sent

    def pending(self) -> int:
        with self.store.read_session() as session:
            stmt = (
                select(func.count())
                .select_from(OutboxRow)
                .where(col(OutboxRow.status) == "pending")
            )
            return int(session.execute(stmt).scalar_one())

    def release_dead_leases(self) -> int:
        """End the leases of processes on this host that died holding them; returns how many."""
        now = self.clock()
        with self.store.read_session() as session:
            stmt = (
                select(col(OutboxRow.lease_owner))
                .where(col(OutboxRow.status) == "pending", col(OutboxRow.lease_until) > now)
                .where(
                    col(OutboxRow.lease_owner).is_not(None),
                    col(OutboxRow.lease_owner) != self.worker,
                )
                .distinct()
            )
            owners = [o for o in session.execute(stmt).scalars() if o]
        dead = [o for o in owners if owner_is_dead(o, self.worker)]
        if not dead:
            return 0
        with self.store.transaction() as session:
            result = session.execute(
                update(OutboxRow)
                .where(col(OutboxRow.lease_owner).in_(dead), col(OutboxRow.status) == "pending")
                .values(lease_until=None, lease_owner=None)
            )
        count = rowcount(result)
        log.warning("released %d deliveries claimed by %d dead worker(s)", count, len(dead))
        return count

    # --- 1. claim ---------------------------------------------------------------------------

    def _claim_next(self, skip: set[int], flush: bool = False) -> tuple[Unit | None, bool]:
        """Claim one unit (not among ``skip``); the flag says rows were deferred meanwhile
        (grouping, rate limit), so the caller should look again."""
        now = self.clock()
        deferred: set[tuple[str, str]] = set()
        # Never-tried rows may have been deferred only by their group window.
        due = col(OutboxRow.next_attempt_at) <= now
        if flush:
            due = or_(due, col(OutboxRow.attempts) == 0)
        with self.store.transaction() as session:
            stmt = (
                select(OutboxRow)
                .where(col(OutboxRow.status) == "pending", due)
                .where(or_(col(OutboxRow.lease_until).is_(None), col(OutboxRow.lease_until) <= now))
                .where(col(OutboxRow.id).not_in(sorted(skip)))
                .order_by(col(OutboxRow.next_attempt_at), col(OutboxRow.id))
                .limit(self.scan)
            )
            if self._postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(session.execute(stmt).scalars())
            for row in rows:
                if (row.channel, row.kind) in deferred:
                    continue
                channel = self.channels.get(row.channel)
                members = [row]
                if channel is not None and channel.grouped and row.kind == "alert":
                    members = [r for r in rows if r.channel == row.channel and r.kind == "alert"]
                    members = members[: self.policy.max_group]
                if channel is not None:
                    ready = self._ready_at(session, channel, members, now, grouping=not flush)
                    if ready > now:
                        for r in rows:
                            if (r.channel, r.kind) == (row.channel, row.kind):
                                r.next_attempt_at = ready
                                session.add(r)
                        deferred.add((row.channel, row.kind))
                        continue
                unit = Unit(channel=row.channel)
                for m in members:
                    m.attempts += 1
                    m.lease_until = now + self.policy.lease
                    m.lease_owner = self.worker
                    m.last_attempt_at = now
                    session.add(m)
                    assert m.id is not None
                    unit.rows.append(
                        Claimed(
                            id=m.id,
                            alert_id=m.alert_id,
                            channel=m.channel,
                            attempt=m.attempts,
                            kind=m.kind,
                            ref=m.ref,
                            age_from=as_utc(m.requeued_at or m.created_at),
                            subject_alert=m.alert_id,
                        )
                    )
                return unit, bool(deferred)
        return None, bool(deferred)

    def _ready_at(
        self,
        session: Session,
        channel: Channel,
        members: Sequence[OutboxRow],
        now: datetime,
        grouping: bool = True,
    ) -> datetime:
        """When the channel may send next: group wait and interval, then its rate limit."""
        ready = now
        if grouping and channel.grouped and members and members[0].kind == "alert":
            # The group is every fresh row of the channel too, due or not: an alert queued
            # while the group waits joins it rather than starting a wait of its own.
            fresh = session.execute(
                select(
                    func.min(func.coalesce(col(OutboxRow.requeued_at), col(OutboxRow.created_at)))
                ).where(
                    col(OutboxRow.channel) == channel.name,
                    col(OutboxRow.kind) == "alert",
                    col(OutboxRow.status) == "pending",
                    col(OutboxRow.attempts) == 0,
                )
            ).scalar()
            starts = [as_utc(m.requeued_at or m.created_at) for m in members]
            oldest = min([*starts, as_utc(fresh)] if fresh is not None else starts)
            ready = max(ready, oldest + channel.group_wait)
            last = session.execute(
                select(func.max(col(OutboxRow.sent_at))).where(
                    col(OutboxRow.channel) == channel.name
                )
            ).scalar()
            if last is not None:
                ready = max(ready, as_utc(last) + channel.group_interval)
        limit = channel.rate_limit
        if limit is not None:
            stmt = (
                select(col(OutboxRow.message_id), func.min(col(OutboxRow.sent_at)))
                .where(
                    col(OutboxRow.channel) == channel.name, col(OutboxRow.sent_at) > now - limit.per
                )
                .group_by(col(OutboxRow.message_id))
            )
            times = sorted(as_utc(t) for _m, t in session.execute(stmt).all() if t is not None)
            if len(times) >= limit.count:
                ready = max(ready, times[len(times) - limit.count] + limit.per)
        return ready

    # --- 2. send ----------------------------------------------------------------------------

    def _deliver(self, unit: Unit) -> None:
        channel = self.channels.get(unit.channel)
        message: Message | None = None
        error: str | None = None
        latency: int | None = None
        if channel is None:
            error = f"channel {unit.channel!r} is not configured"
        else:
            message = self._compose(unit)
        if message is not None and channel is not None:
            try:
                latency = send(channel, message)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # never let one message stop the worker
                error = redact(f"{type(exc).__name__}: {exc}", channel.secrets)
        elif channel is not None and error is None:
            error = "nothing to send"
        self._record(unit, message, channel, error, latency)

    def _compose(self, unit: Unit) -> Message | None:
        """The message for a unit; rows whose alert is missing get their own error instead."""
        sections: list[Section] = []
        for row in unit.rows:
            if row.kind == "report":
                return self._compose_report(row)
            alert = self._alert(row.alert_id)
            if alert is None:
                row.error = f"alert {row.alert_id} not found in the log"
            else:
                sections.append(Section(alert=alert, attempt=row.attempt))
        if not sections:
            return None
        return render_group(sections, unit.channel, self.explain_url)

    def _compose_report(self, row: Claimed) -> Message | None:
        with self.store.read_session() as session:
            subject = session.get(OutboxRow, row.ref) if row.ref is not None else None
        if subject is None:
            row.error = f"reported delivery {row.ref} not found"
            return None
        row.subject_alert, row.reports_on = subject.alert_id, subject.channel
        return render_report(
            report_id=row.alert_id,
            alert=self._alert(subject.alert_id),
            alert_id=subject.alert_id,
            channel=subject.channel,
            attempts=subject.attempts,
            last_error=subject.last_error,
            queued_at=as_utc(subject.requeued_at or subject.created_at),
        )

    def _alert(self, alert_id: str) -> AlertRaised | None:
        for event in self.store.read_stream(f"alert:{alert_id}"):
            if isinstance(event.data, AlertRaised):
                return event.data
        return None

    # --- 3. record --------------------------------------------------------------------------

    def _record(
        self,
        unit: Unit,
        message: Message | None,
        channel: Channel | None,
        error: str | None,
        latency: int | None,
    ) -> None:
        now = self.clock()
        group = message.alert_ids if message is not None and len(message.alert_ids) > 1 else []
        target = channel.safe_url() if channel is not None else None
        events: list[NewEvent] = []
        notes: list[tuple[Claimed, DeliveryOutcome, str | None, bool, datetime | None]] = []
        with self.store.transaction() as session:
            for row in unit.rows:
                row_error = row.error or error
                outcome: DeliveryOutcome
                if row_error is None:
                    outcome = "delivered"
                elif now - row.age_from >= self.policy.max_age:
                    outcome = "given_up"
                else:
                    outcome = "failed"
                values: dict[str, object] = {
                    "lease_until": None,
                    "lease_owner": None,
                    "last_error": row_error,
                    "status": "pending" if outcome == "failed" else outcome,
                }
                retry_at = None
                if outcome == "failed":
                    retry_at = now + self.policy.delay(row.attempt, self.rng)
                    values["next_attempt_at"] = retry_at
                if outcome == "delivered" and message is not None:
                    values["sent_at"] = now
                    values["message_id"] = message.key
                result = session.execute(
                    update(OutboxRow)
                    .where(
                        col(OutboxRow.id) == row.id,
                        col(OutboxRow.attempts) == row.attempt,
                        col(OutboxRow.status) == "pending",
                    )
                    .values(**values)
                )
                superseded = rowcount(result) == 0
                if outcome == "given_up" and not superseded and row.kind == "alert":
                    self._queue_reports(session, row, now)
                events.append(
                    NewEvent(
                        stream=f"alert:{row.subject_alert}",
                        data=DeliveryAttempted(
                            alert_id=row.subject_alert,
                            channel=row.channel,
                            attempt=row.attempt,
                            outcome=outcome,
                            latency_ms=latency,
                            error=row_error,
                            message_id=message.key if message is not None else None,
                            group=group,
                            superseded=superseded,
                            reports_on=row.reports_on,
                            target=target,
                        ),
                        idempotency_key=f"delivery:{row.alert_id}:{row.channel}:{row.attempt}",
                        occurred_at=now,
                    )
                )
                notes.append((row, outcome, row_error, superseded, retry_at))
            self.store.append(events, session=session)
        for row, outcome, row_error, superseded, retry_at in notes:
            self._log(row, outcome, row_error, superseded, retry_at, now)

    def _queue_reports(self, session: Session, row: Claimed, now: datetime) -> None:
        """One report per health channel about this given-up delivery, queued atomically."""
        report_id = str(uuid.uuid5(REPORT_NAMESPACE, f"{row.id}|{row.attempt}"))
        for health in self.health:
            if health.name == row.channel:
                log.warning("health channel %s gave up itself; not reporting to it", health.name)
                continue
            enqueue(session, report_id, [health.name], now, kind="report", ref=row.id)

    @staticmethod
    def _log(
        row: Claimed,
        outcome: DeliveryOutcome,
        error: str | None,
        superseded: bool,
        retry_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """One line per attempt; a failure says when the next try is."""
        what = f"alert {row.subject_alert} to {row.channel} (attempt {row.attempt})"
        if row.kind == "report":
            what = f"report on {row.subject_alert}/{row.reports_on} to {row.channel}"
        if superseded:
            log.warning(
                "%s: lease lost to a newer claim; %s not recorded on the row", what, outcome
            )
        elif outcome == "delivered":
            log.info("delivered %s", what)
        elif outcome == "given_up":
            log.error(
                "gave up delivering %s: %s; re-queue with: monitor alerts retry %s",
                what,
                error,
                row.subject_alert,
            )
        elif retry_at is not None and now is not None:
            wait = max(0, round((retry_at - now).total_seconds()))
            log.warning(
                "delivery of %s failed: %s; next try at %s UTC (in %ss)",
                what,
                error,
                retry_at.strftime("%Y-%m-%d %H:%M:%S"),
                wait,
            )
        else:
            log.warning("delivery of %s failed: %s", what, error)
