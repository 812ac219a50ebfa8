"""Projections: read models derived from the log, each with its own checkpoint.

A projection applies events in ``seq`` order and writes its checkpoint in the same transaction
as the state those events produced, so a crash can never leave state and checkpoint apart.
``rebuild`` drops a projection's state and replays the whole log; the result must equal the
live state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel

from monitor.events import (
    AlertRaised,
    Casualties,
    Ceasefire,
    FactReported,
    FeedFailed,
    FeedPolled,
    ThirdParty,
    as_utc,
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
    """A read model: ``apply`` folds one event of ``types`` into ``tables``.

    A projection may set ``version``; when it differs from the version its checkpoint was
    written with, ``catch_up`` rebuilds it from the start (its code changed meaning).
    """

    name: str
    tables: Sequence[type[SQLModel]]
    types: Sequence[str]

    def apply(self, session: Session, event: StoredEvent) -> None: ...


def checkpoint(session: Session, name: str) -> int:
    """The consumer's position, locked until the transaction ends.

    The row is created if missing and then locked (``FOR UPDATE`` on PostgreSQL; SQLite's
    write transaction already excludes other writers), so two processes catching up the same
    consumer take turns instead of both applying the same events.
    """
    return _lock_checkpoint(session, name).seq


def _lock_checkpoint(session: Session, name: str) -> Checkpoint:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(Checkpoint).values(name=name, seq=0, version=1).on_conflict_do_nothing())
    stmt = select(Checkpoint).where(Checkpoint.name == name)
    if dialect == "postgresql":
        stmt = stmt.with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one()


def _save_checkpoint(session: Session, name: str, seq: int, version: int | None = None) -> None:
    row = session.get(Checkpoint, name) or Checkpoint(name=name)
    row.seq = seq
    if version is not None:
        row.version = version
    session.add(row)


def catch_up(store: EventStore, projection: Projection, batch: int = 500) -> int:
    """Apply the projection's events after its checkpoint, a batch per transaction.

    Each batch reads only the projection's event types up to the log head as seen at the start
    of its transaction; the checkpoint then moves to that head (or to the last event read when
    the batch was full). Returns how many events were applied.
    """
    version = getattr(projection, "version", 1)
    applied = 0
    while True:
        with store.transaction() as session:
            row = _lock_checkpoint(session, projection.name)
            start = row.seq
            if row.version != version:
                if start > 0:
                    _clear(session, projection)
                    start = 0
                _save_checkpoint(session, projection.name, 0, version)
            head = store.head(session)
            if head <= start:
                return applied
            events = list(
                store.read(
                    start,
                    types=projection.types,
                    until=head,
                    limit=batch,
                    session=session,
                    batch=batch,
                )
            )
            for event in events:
                projection.apply(session, event)
            end = events[-1].seq if len(events) == batch else head
            _save_checkpoint(session, projection.name, end)
            applied += len(events)


def _clear(session: Session, projection: Projection) -> None:
    for table in projection.tables:
        session.execute(delete(table))
    session.execute(delete(Checkpoint).where(Checkpoint.name == projection.name))
    session.flush()
    session.expunge_all()


def rebuild(store: EventStore, projection: Projection) -> int:
    """Drop the projection's state and checkpoint, then replay the log from the start.

    The drop commits before the replay; a crash half-way leaves a consistent, partly replayed
    projection whose next ``catch_up`` finishes the job.
    """
    with store.transaction() as session:
        _lock_checkpoint(session, projection.name)
        _clear(session, projection)
    return catch_up(store, projection)


def dump_state(store: EventStore, projections: Sequence[Projection]) -> str:
    """Every row of the projections' tables and their checkpoints, as canonical JSON lines.

    Rows are ordered by primary key and timestamps rendered in UTC, so two databases (or one
    before and after a rebuild) hold the same state exactly when the dumps are equal.
    """
    lines: list[str] = []
    with store.read_session() as session:
        for projection in projections:
            for model in projection.tables:
                table = model.__table__  # type: ignore[attr-defined]
                stmt = select(table).order_by(*table.primary_key.columns)
                for values in session.execute(stmt).mappings():
                    row = {k: _canonical(v) for k, v in values.items()}
                    lines.append(json.dumps([table.name, row], sort_keys=True))
            seq = session.execute(
                select(Checkpoint.seq).where(Checkpoint.name == projection.name)
            ).scalar()
            lines.append(json.dumps(["checkpoint", projection.name, seq]))
    return "\n".join(lines) + "\n"


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value


class ConflictState:
    """Per watch: latest cumulative casualty figure per series, ceasefire status, third parties.

    "Latest" is by publication time, not by arrival: a late report of an older figure or
    status counts as a report but does not replace what a newer one said.
    """

    name = "conflict_state"
    version = 2  # 2: latest by publication time
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
            if _older(when, row.updated_at):
                return
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
    def _casualties(
        session: Session, watch: str, fact: Casualties, event_id: str, when: datetime | None
    ) -> None:
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
            row.reports += 1
            if not _older(when, row.updated_at):
                row.count = fact.count
                row.last_event_id = event_id
                row.updated_at = when
        session.add(row)


def _older(when: datetime | None, than: datetime | None) -> bool:
    """Published before what the row holds (rows from SQLite come back naive: UTC)."""
    if when is None or than is None:
        return False
    return as_utc(when) < as_utc(than)


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
