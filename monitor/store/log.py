"""The append-only event log.

Appends lock the single ``log_head`` row first, then check idempotency keys and stream
versions, then insert with consecutive ``seq`` values. Holding that lock until commit makes
commits happen in ``seq`` order, so a reader that has seen ``seq = n`` will never later find
an event below ``n``: positions are gap-free as readers see them, on SQLite and PostgreSQL.
A rolled-back append releases its positions with the lock, so the next writer reuses them.

Metadata carries ``correlation_id`` on every event: one id shared by all events appended in
one batch (one article's events), inherited by events whose ``causation_id`` names an earlier
event (an alert raised by a fact carries that article's correlation id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from monitor.events import SCHEMA_VERSIONS, EventData, as_utc, parse_event_data
from monitor.store import migrate
from monitor.store.db import (
    READ_ONLY,
    check_owner,
    check_sqlite_file,
    make_engine,
    store_error,
)
from monitor.store.tables import EVENTS, EventRow, LogHead

# Deterministic ids: the same idempotency key always yields the same event id, so a replay
# into a fresh database reproduces the same ids.
EVENT_NAMESPACE = uuid.UUID("6f1c2f4e-3b0a-4c55-9a51-2d1f0e7c9b11")


# Bound parameters per IN (...) list: well below SQLite's and PostgreSQL's limits.
IN_CHUNK = 500


class ConcurrencyError(RuntimeError):
    """A writer's expected stream version is stale: someone appended first."""

    def __init__(self, stream: str, actual: int, expected: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {actual}, writer expected {expected}: "
            "re-read the stream and decide again"
        )
        self.stream = stream
        self.actual = actual
        self.expected = expected


class NewEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream: str
    data: EventData
    idempotency_key: str | None = None
    occurred_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class StoredEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    id: str
    stream: str
    stream_version: int
    type: str
    schema_version: int
    occurred_at: datetime | None
    recorded_at: datetime
    idempotency_key: str | None
    data: EventData
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class AppendResult(BaseModel):
    events: list[StoredEvent]
    created: list[bool]

    @property
    def new(self) -> list[StoredEvent]:
        return [e for e, c in zip(self.events, self.created, strict=True) if c]


def event_id_for(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(EVENT_NAMESPACE, idempotency_key))


def row_fields(row: EventRow) -> dict[str, Any]:
    """A stored row as plain fields, timestamps in UTC, payload as stored (not upcast)."""
    return {
        "seq": row.seq,
        "id": row.id,
        "stream": row.stream,
        "stream_version": row.stream_version,
        "type": row.type,
        "schema_version": row.schema_version,
        "occurred_at": as_utc(row.occurred_at),
        "recorded_at": as_utc(row.recorded_at),
        "idempotency_key": row.idempotency_key,
        "data": row.data,
        "metadata": row.meta or {},
    }


def to_stored(row: EventRow) -> StoredEvent:
    fields = row_fields(row)
    fields["data"] = parse_event_data(row.type, row.schema_version, row.data)
    return StoredEvent(**fields)


class EventStore:
    """Append, read and follow the log; one instance per process, safe across threads."""

    def __init__(self, url: str, *, create: bool = True, read_only: bool = False) -> None:
        self.url = url
        check_sqlite_file(url)
        check_owner(url)
        self.engine: Engine = make_engine(url, read_only=read_only)
        self._reader: Engine = self.engine.execution_options(**{READ_ONLY: True})
        if create and not read_only:
            try:
                self.create_schema()
            except (SQLAlchemyError, OSError) as exc:
                self.engine.dispose()
                raise store_error(url, exc) from exc

    def create_schema(self) -> None:
        """Apply every pending migration (one query when there is none)."""
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def read_session(self) -> Session:
        """A session for reading only: on SQLite it never waits for, or blocks, a writer."""
        return Session(self._reader, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One database transaction: commits on success, rolls back on any error."""
        with self.session() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def append(
        self,
        events: Sequence[NewEvent],
        *,
        expected_versions: dict[str, int] | None = None,
        session: Session | None = None,
    ) -> AppendResult:
        """Append atomically; an event whose idempotency key is stored returns the stored one.

        ``expected_versions`` maps streams to the version the writer last saw; if another
        writer got there first the whole batch is refused with ``ConcurrencyError``. A batch
        whose events are all stored already is an idempotent retry and returns them instead.
        """
        if session is not None:
            return self._append(session, events, expected_versions or {})
        with self.transaction() as own:
            return self._append(own, events, expected_versions or {})

    def _append(
        self, session: Session, events: Sequence[NewEvent], expected: dict[str, int]
    ) -> AppendResult:
        head = self._lock_head(session)
        stored = self._by_keys(session, [e.idempotency_key for e in events if e.idempotency_key])
        fresh = [e for e in events if e.idempotency_key not in stored]
        versions = self._stream_versions(session, {e.stream for e in fresh} | set(expected))
        if fresh:
            for stream, want in expected.items():
                if versions.get(stream, 0) != want:
                    raise ConcurrencyError(stream, versions.get(stream, 0), want)
        ids = [event_id_for(e.idempotency_key) for e in events]
        correlation = self._batch_correlation(events, ids, stored)
        causation = {str(e.metadata["causation_id"]) for e in fresh if "causation_id" in e.metadata}
        causes = self._correlations(session, causation)
        now = datetime.now(UTC)
        out: list[StoredEvent] = []
        created: list[bool] = []
        rows: list[dict[str, Any]] = []
        for new, event_id in zip(events, ids, strict=True):
            key = new.idempotency_key
            if key is not None and key in stored:
                out.append(stored[key])
                created.append(False)
                continue
            version = versions.get(new.stream, 0) + 1
            versions[new.stream] = version
            head += 1
            event = _stored(new, event_id, head, version, now, correlation, causes)
            if key is not None:
                stored[key] = event  # a later event in this batch may repeat the key
            rows.append(_row_values(event, new))
            out.append(event)
            created.append(True)
        if rows:
            session.execute(insert(EVENTS), rows)
            session.execute(update(LogHead).where(col(LogHead.id) == 1).values(seq=head))
        return AppendResult(events=out, created=created)

    def _lock_head(self, session: Session) -> int:
        # SQLite: the write transaction began with BEGIN IMMEDIATE and holds the database lock.
        stmt = select(col(LogHead.seq)).where(col(LogHead.id) == 1)
        if self.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return int(session.execute(stmt).scalar_one())

    @staticmethod
    def _by_keys(session: Session, keys: list[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), IN_CHUNK):
            stmt = select(EventRow).where(
                col(EventRow.idempotency_key).in_(unique[i : i + IN_CHUNK])
            )
            for row in session.execute(stmt).scalars():
                assert row.idempotency_key is not None
                found[row.idempotency_key] = to_stored(row)
        return found

    @staticmethod
    def _stream_versions(session: Session, streams: set[str]) -> dict[str, int]:
        versions: dict[str, int] = {}
        names = sorted(streams)
        for i in range(0, len(names), IN_CHUNK):
            stmt = (
                select(col(EventRow.stream), func.max(col(EventRow.stream_version)))
                .where(col(EventRow.stream).in_(names[i : i + IN_CHUNK]))
                .group_by(col(EventRow.stream))
            )
            versions.update({s: int(v) for s, v in session.execute(stmt).all()})
        return versions

    @staticmethod
    def _correlations(session: Session, event_ids: set[str]) -> dict[str, str]:
        """Correlation id of each causing event that is stored (with no id of its own: its id)."""
        found: dict[str, str] = {}
        ids = sorted(event_ids)
        for i in range(0, len(ids), IN_CHUNK):
            stmt = select(col(EventRow.id), col(EventRow.meta)).where(
                col(EventRow.id).in_(ids[i : i + IN_CHUNK])
            )
            for event_id, meta in session.execute(stmt).all():
                found[event_id] = str((meta or {}).get("correlation_id") or event_id)
        return found

    @staticmethod
    def _batch_correlation(
        events: Sequence[NewEvent], ids: list[str], stored: dict[str, StoredEvent]
    ) -> str:
        """The batch's correlation id: given by the writer, else its first event's (or that
        event's own correlation id, when it was stored before)."""
        for new in events:
            if "correlation_id" in new.metadata:
                return str(new.metadata["correlation_id"])
        if not events:
            return ""
        first = events[0]
        if first.idempotency_key in stored:
            previous = stored[first.idempotency_key]
            return str(previous.metadata.get("correlation_id") or previous.id)
        return ids[0]

    def read(
        self,
        after: int = 0,
        *,
        types: Sequence[str] | None = None,
        limit: int | None = None,
        session: Session | None = None,
        batch: int = 500,
        until: int | None = None,
    ) -> Iterator[StoredEvent]:
        """Events with ``after < seq (<= until)`` in log order, read in batches."""
        remaining = limit
        position = after
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            stmt = select(EventRow).where(col(EventRow.seq) > position)
            if until is not None:
                stmt = stmt.where(col(EventRow.seq) <= until)
            if types:
                stmt = stmt.where(col(EventRow.type).in_(list(types)))
            stmt = stmt.order_by(col(EventRow.seq)).limit(size)
            if session is not None:
                rows = list(session.execute(stmt).scalars())
            else:
                with self.read_session() as own:
                    rows = list(own.execute(stmt).scalars())
            if not rows:
                return
            for row in rows:
                yield to_stored(row)
            position = rows[-1].seq
            if remaining is not None:
                remaining -= len(rows)

    def read_stream(self, stream: str, *, session: Session | None = None) -> list[StoredEvent]:
        stmt = select(EventRow).where(col(EventRow.stream) == stream).order_by(col(EventRow.seq))
        if session is not None:
            return [to_stored(r) for r in session.execute(stmt).scalars()]
        with self.read_session() as own:
            return [to_stored(r) for r in own.execute(stmt).scalars()]

    def get(self, event_id: str) -> StoredEvent | None:
        with self.read_session() as session:
            row = session.execute(select(EventRow).where(col(EventRow.id) == event_id)).scalar()
            return to_stored(row) if row is not None else None

    def head(self, session: Session | None = None) -> int:
        """The last committed position (in ``session``'s view, when given)."""
        stmt = select(col(LogHead.seq)).where(col(LogHead.id) == 1)
        if session is not None:
            return int(session.execute(stmt).scalar_one())
        with self.read_session() as own:
            return int(own.execute(stmt).scalar_one())


def _stored(
    new: NewEvent,
    event_id: str,
    seq: int,
    version: int,
    now: datetime,
    correlation: str,
    causes: dict[str, str],
) -> StoredEvent:
    metadata = dict(new.metadata)
    if "correlation_id" not in metadata:
        cause = metadata.get("causation_id")
        metadata["correlation_id"] = causes.get(str(cause), correlation) if cause else correlation
    return StoredEvent(
        seq=seq,
        id=event_id,
        stream=new.stream,
        stream_version=version,
        type=new.data.type,
        schema_version=SCHEMA_VERSIONS[new.data.type],
        occurred_at=as_utc(new.occurred_at),
        recorded_at=now,
        idempotency_key=new.idempotency_key,
        data=new.data,
        metadata=metadata,
    )


def _row_values(event: StoredEvent, new: NewEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "id": event.id,
        "stream": event.stream,
        "stream_version": event.stream_version,
        "type": event.type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "idempotency_key": event.idempotency_key,
        "data": new.data.model_dump(mode="json", exclude={"type"}),
        "metadata": event.metadata,
    }
