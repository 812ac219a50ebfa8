"""Projections: read models derived from the log, each with its own checkpoint.

A projection applies events in ``seq`` order and writes its checkpoint in the same transaction
as the state those events produced, so a crash can never leave state and checkpoint apart.
``rebuild`` drops a projection's state and replays the whole log; the result must equal the
live state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import delete
from sqlmodel import Session, SQLModel

from monitor.events import (
    AlertRaised,
    Casualties,
    Ceasefire,
    FactReported,
    FeedFailed,
    FeedPolled,
    ThirdParty,
)
from monitor.store.log import EventStore, StoredEvent
from monitor.store.tables import (
    AlertState,
    CeasefireState,
    Checkpoint,
    FeedHealth,
    SeriesState,
    ThirdPartyState,
)


class Projection(Protocol):
    name: str
    tables: Sequence[type[SQLModel]]
    types: Sequence[str]

    def apply(self, session: Session, event: StoredEvent) -> None: ...


def checkpoint(session: Session, name: str) -> int:
    row = session.get(Checkpoint, name)
    return row.seq if row else 0


def _save_checkpoint(session: Session, name: str, seq: int) -> None:
    row = session.get(Checkpoint, name)
    if row is None:
        session.add(Checkpoint(name=name, seq=seq))
    else:
        row.seq = seq
        session.add(row)


def catch_up(store: EventStore, projection: Projection, batch: int = 500) -> int:
    """Apply every event after the checkpoint, a batch per transaction; returns events applied."""
    applied = 0
    while True:
        with store.transaction() as session:
            start = checkpoint(session, projection.name)
            events = list(store.read(start, limit=batch, session=session))
            if not events:
                return applied
            for event in events:
                if event.type in projection.types:
                    projection.apply(session, event)
            _save_checkpoint(session, projection.name, events[-1].seq)
            applied += len(events)


def rebuild(store: EventStore, projection: Projection) -> int:
    """Drop the projection's state and checkpoint, then replay the log from the start."""
    with store.transaction() as session:
        for table in projection.tables:
            session.execute(delete(table))
        session.execute(delete(Checkpoint).where(Checkpoint.name == projection.name))
    return catch_up(store, projection)


class ConflictState:
    """Per watch: latest cumulative casualty figure per series, ceasefire status, third parties."""

    name = "conflict_state"
    tables = (SeriesState, CeasefireState, ThirdPartyState)
    types = ("FactReported",)

    def apply(self, session: Session, event: StoredEvent) -> None:
        data = event.data
        assert isinstance(data, FactReported)
        fact = data.fact
        when = data.article.published or event.occurred_at
        if isinstance(fact, Casualties):
            self._casualties(session, data.watch, fact, event.id, when)
        elif isinstance(fact, Ceasefire):
            row = session.get(CeasefireState, data.watch) or CeasefireState(
                watch=data.watch, status=fact.status, last_event_id=event.id
            )
            row.status, row.broker, row.last_event_id, row.updated_at = (
                fact.status,
                fact.broker,
                event.id,
                when,
            )
            session.add(row)
        elif isinstance(fact, ThirdParty):
            row = session.get(ThirdPartyState, (data.watch, fact.actor))
            if row is None:
                row = ThirdPartyState(
                    watch=data.watch,
                    actor=fact.actor,
                    kinds=[fact.kind],
                    first_event_id=event.id,
                    first_seen=when,
                )
            elif fact.kind not in row.kinds:
                row.kinds = sorted({*row.kinds, fact.kind})
            session.add(row)

    @staticmethod
    def _casualties(session: Session, watch: str, fact: Casualties, event_id: str, when) -> None:
        if not fact.cumulative or fact.historical or fact.count is None:
            return
        key = (watch, fact.side or "-", fact.category, fact.outcome)
        row = session.get(SeriesState, key)
        if row is None:
            row = SeriesState(
                watch=watch,
                side=key[1],
                category=fact.category,
                outcome=fact.outcome,
                count=fact.count,
                last_event_id=event_id,
                updated_at=when,
            )
        else:
            row.count = fact.count
            row.reports += 1
            row.last_event_id = event_id
            row.updated_at = when
        session.add(row)


class FeedHealthProjection:
    name = "feed_health"
    tables = (FeedHealth,)
    types = ("FeedPolled", "FeedFailed")

    def apply(self, session: Session, event: StoredEvent) -> None:
        data = event.data
        assert isinstance(data, FeedPolled | FeedFailed)
        row = session.get(FeedHealth, data.feed) or FeedHealth(feed=data.feed, url=data.url)
        row.polls += 1
        if isinstance(data, FeedPolled):
            row.last_success = event.recorded_at
            row.consecutive_failures = 0
            row.last_items = data.items
        else:
            row.last_error = data.reason
            row.last_error_at = event.recorded_at
            row.consecutive_failures += 1
        session.add(row)


class AlertsProjection:
    name = "alerts"
    tables = (AlertState,)
    types = ("AlertRaised",)

    def apply(self, session: Session, event: StoredEvent) -> None:
        data = event.data
        assert isinstance(data, AlertRaised)
        session.merge(
            AlertState(
                alert_id=data.alert_id,
                seq=event.seq,
                rule=data.rule,
                severity=data.severity,
                watch=data.watch,
                title=data.title,
                dedup_key=data.dedup_key,
                raised_at=event.occurred_at,
            )
        )


def all_projections() -> list[Projection]:
    return [ConflictState(), FeedHealthProjection(), AlertsProjection()]
