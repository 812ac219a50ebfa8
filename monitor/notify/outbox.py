"""The outbox worker: claim due deliveries, send each through its own channel, record the result.

Rows are claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer
at a time), sent outside any transaction, then the attempt is recorded as a
``DeliveryAttempted`` event together with the row's new state. A crash between the provider
accepting a message and that record being stored is the only way a message is sent twice;
every message carries its alert id so receivers can de-duplicate.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import or_, select

from monitor.events import AlertRaised, DeliveryAttempted
from monitor.notify.channels import Channel, DeliveryError, redact, send
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow

log = logging.getLogger(__name__)


class RetryPolicy(BaseModel):
    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=30)
    max_age: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=2)

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self.cap.total_seconds(), self.base.total_seconds() * 2 ** (attempt - 1))
        return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


def render_message(alert: AlertRaised) -> tuple[str, str]:
    """Title and plain-text body: the summary, the figures, and every evidence quote with link."""
    lines = [alert.summary, ""]
    for key, value in alert.data.items():
        lines.append(f"{key}: {value}")
    lines.append("")
    for ev in alert.evidence:
        when = ev.published.date().isoformat() if ev.published else "undated"
        lines.append(f"> {ev.quote}")
        lines.append(f"  {ev.outlet or 'source'}, {when}: {ev.url}")
    lines.append("")
    lines.append(f"alert {alert.alert_id} · rule {alert.rule} · severity {alert.severity}")
    return f"[{alert.severity.upper()}] {alert.title}", "\n".join(lines)


class Deliverer:
    """Delivers due outbox rows; one instance per process."""

    def __init__(
        self,
        store: EventStore,
        channels: list[Channel],
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()

    def run_once(self, limit: int = 50) -> int:
        """Deliver what is due now; returns how many attempts were made."""
        attempts = 0
        for row_id in self._claim(limit):
            self._deliver(row_id)
            attempts += 1
        return attempts

    def pending(self) -> int:
        with self.store.session() as session:
            stmt = select(OutboxRow.id).where(OutboxRow.status == "pending")
            return len(list(session.execute(stmt).scalars()))

    def _claim(self, limit: int) -> list[int]:
        now = datetime.now(UTC)
        with self.store.transaction() as session:
            stmt = (
                select(OutboxRow)
                .where(OutboxRow.status == "pending", OutboxRow.next_attempt_at <= now)
                .where(or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until < now))
                .order_by(OutboxRow.id)
                .limit(limit)
            )
            if self.store.engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(session.execute(stmt).scalars())
            for row in rows:
                row.lease_until = now + self.policy.lease
                session.add(row)
            return [r.id for r in rows if r.id is not None]

    def _deliver(self, row_id: int) -> None:
        with self.store.session() as session:
            row = session.get(OutboxRow, row_id)
            assert row is not None
            alert_id, channel_name, attempt = row.alert_id, row.channel, row.attempts + 1
            created_at = row.created_at
        alert = self._alert(alert_id)
        channel = self.channels.get(channel_name)
        started = time.monotonic()
        error: str | None = None
        if alert is None:
            error = f"alert {alert_id} not found in the log"
        elif channel is None:
            error = f"channel {channel_name!r} is not configured"
        else:
            title, body = render_message(alert)
            try:
                send(channel, title, body)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a broken plugin must not stop the worker
                error = redact(f"{type(exc).__name__}: {exc}")
        latency = int((time.monotonic() - started) * 1000)
        self._record(row_id, alert_id, channel_name, attempt, created_at, latency, error)

    def _alert(self, alert_id: str) -> AlertRaised | None:
        for event in self.store.read_stream(f"alert:{alert_id}"):
            if isinstance(event.data, AlertRaised):
                return event.data
        return None

    def _record(
        self,
        row_id: int,
        alert_id: str,
        channel: str,
        attempt: int,
        created_at: datetime,
        latency: int,
        error: str | None,
    ) -> None:
        now = datetime.now(UTC)
        created = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        if error is None:
            outcome = "delivered"
        elif now - created >= self.policy.max_age:
            outcome = "given_up"
        else:
            outcome = "failed"
        with self.store.transaction() as session:
            row = session.get(OutboxRow, row_id)
            assert row is not None
            row.attempts = attempt
            row.lease_until = None
            row.last_error = error
            row.status = {"delivered": "delivered", "given_up": "given_up"}.get(outcome, "pending")
            if outcome == "failed":
                row.next_attempt_at = now + self.policy.delay(attempt, self.rng)
            session.add(row)
            self.store.append(
                [
                    NewEvent(
                        stream=f"alert:{alert_id}",
                        data=DeliveryAttempted(
                            alert_id=alert_id,
                            channel=channel,
                            attempt=attempt,
                            outcome=outcome,
                            latency_ms=latency,
                            error=error,
                        ),
                        occurred_at=now,
                    )
                ],
                session=session,
            )
        if error:
            log.warning("delivery of alert %s to %s failed (attempt %d): %s", alert_id, channel, attempt, error)
        else:
            log.info("delivered alert %s to %s", alert_id, channel)
