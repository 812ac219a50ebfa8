"""Operator actions on delivery: what `monitor alerts list` shows, `alerts retry`, `notify test`.

The CLI only parses arguments and prints; the logic lives here so it is tested directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlmodel import col

from monitor.events import AlertRaised, DeliveryAttempted, DeliveryRequeued
from monitor.notify.channels import Channel, DeliveryError, secret_scope, send
from monitor.notify.message import render_test
from monitor.notify.outbox import enqueue
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow


class DeliveryState(BaseModel):
    """One alert's delivery to one channel, as an operator needs to see it."""

    channel: str
    status: str
    attempts: int
    last_error: str | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None

    def describe(self) -> str:
        if self.status == "given_up":
            reason = f": {self.last_error}" if self.last_error else ""
            return f"{self.channel}:GIVEN UP after {self.attempts} attempts{reason}"
        if self.status == "pending" and self.attempts:
            return f"{self.channel}:retrying ({self.attempts} attempts)"
        return f"{self.channel}:{self.status}"


def delivery_states(store: EventStore) -> dict[str, list[DeliveryState]]:
    """Alert id -> its deliveries (health reports are not alert deliveries and are left out)."""
    out: dict[str, list[DeliveryState]] = {}
    with store.read_session() as session:
        rows = session.execute(
            select(OutboxRow).where(col(OutboxRow.kind) == "alert").order_by(col(OutboxRow.id))
        ).scalars()
        for row in rows:
            out.setdefault(row.alert_id, []).append(
                DeliveryState(
                    channel=row.channel,
                    status=row.status,
                    attempts=row.attempts,
                    last_error=row.last_error,
                    sent_at=row.sent_at,
                    next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
                )
            )
    return out


class RequeueError(LookupError):
    """No delivery matches, or the id prefix is ambiguous; the message says which."""


def requeue(
    store: EventStore, alert_ref: str, channel: str | None = None, *, now: datetime | None = None
) -> list[DeliveryState]:
    """Put an alert's given-up (or waiting) deliveries back in the queue, due now.

    ``alert_ref`` is an alert id or an unambiguous prefix of one (``alerts list`` shows 8
    characters). Delivered rows are left alone. The maximum age restarts now; each re-queue is
    recorded as a ``DeliveryRequeued`` event in the alert's stream.
    """
    now = now or datetime.now(UTC)
    with store.transaction() as session:
        stmt = select(OutboxRow).where(
            col(OutboxRow.kind) == "alert",
            col(OutboxRow.alert_id).startswith(alert_ref, autoescape=True),
        )
        if channel:
            stmt = stmt.where(col(OutboxRow.channel) == channel)
        rows = list(session.execute(stmt.order_by(col(OutboxRow.id))).scalars())
        ids = sorted({r.alert_id for r in rows})
        if not ids:
            where = f" on channel {channel!r}" if channel else ""
            raise RequeueError(f"no deliveries of alert {alert_ref!r}{where}")
        if len(ids) > 1:
            raise RequeueError(f"{alert_ref!r} matches {len(ids)} alerts: {', '.join(ids)}")
        chosen = [r for r in rows if r.status != "delivered"]
        if not chosen:
            raise RequeueError(f"alert {ids[0]}: every delivery was already delivered")
        events = []
        for row in chosen:
            events.append(
                NewEvent(
                    stream=f"alert:{row.alert_id}",
                    data=DeliveryRequeued(
                        alert_id=row.alert_id,
                        channel=row.channel,
                        previous_status=row.status,
                        attempts=row.attempts,
                    ),
                    occurred_at=now,
                )
            )
            if row.status != "pending":  # a pending row may be mid-delivery: keep its lease
                row.lease_until = None
                row.lease_owner = None
            row.status = "pending"
            row.next_attempt_at = now
            row.requeued_at = now
            session.add(row)
        store.append(events, session=session)
        return [
            DeliveryState(channel=r.channel, status=r.status, attempts=r.attempts) for r in chosen
        ]


class ProbeResult(BaseModel):
    """One channel's answer to a test message; ``target`` is the redacted URL."""

    channel: str
    target: str
    ok: bool
    latency_ms: int | None = None
    error: str | None = None


def send_test_messages(channels: Sequence[Channel]) -> list[ProbeResult]:
    """Send a test message to each channel, one URL at a time; nothing is queued or recorded."""
    results = []
    with secret_scope(channels):
        for channel in channels:
            try:
                latency = send(channel, render_test(channel.name))
            except DeliveryError as exc:
                results.append(
                    ProbeResult(
                        channel=channel.name, target=channel.safe_url(), ok=False, error=str(exc)
                    )
                )
                continue
            results.append(
                ProbeResult(
                    channel=channel.name, target=channel.safe_url(), ok=True, latency_ms=latency
                )
            )
    return results


class _Delivery(BaseModel):
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None


def restore_outbox(store: EventStore) -> int:
    """Recreate the outbox rows a log implies but this database lacks (after `events import`).

    The outbox is derived state: every ``AlertRaised`` names its channels, and the delivery
    events since say how far each got. An imported log arrives without rows, so without this an
    alert still undelivered at export would never be sent. Returns the rows written, pending ones
    included; rows already present are left alone.
    """
    deliveries: dict[tuple[str, str], _Delivery] = {}
    types = ["AlertRaised", "DeliveryAttempted", "DeliveryRequeued"]
    for event in store.read(types=types):
        data = event.data
        if isinstance(data, AlertRaised):
            for channel in data.channels:
                deliveries.setdefault((data.alert_id, channel), _Delivery())
        elif isinstance(data, DeliveryAttempted):
            state = deliveries.get((data.alert_id, data.channel))
            if state is None or data.superseded:
                continue  # a health report, or an attempt that changed nothing
            state.attempts = max(state.attempts, data.attempt)
            state.status = "pending" if data.outcome == "failed" else data.outcome
            state.last_error = data.error
        elif isinstance(data, DeliveryRequeued):
            state = deliveries.get((data.alert_id, data.channel))
            if state is not None:
                state.status = "pending"
    now = datetime.now(UTC)
    with store.transaction() as session:
        present = {
            (a, c)
            for a, c in session.execute(select(col(OutboxRow.alert_id), col(OutboxRow.channel)))
        }
        missing = [(key, d) for key, d in deliveries.items() if key not in present]
        for (alert_id, channel), d in missing:
            enqueue(
                session,
                alert_id,
                [channel],
                now,
                status=d.status,
                attempts=d.attempts,
                last_error=d.last_error,
            )
    return len(missing)
