"""The append-only event log.

Appends lock the single ``log_head`` row first, then check idempotency keys and stream
versions, then insert with consecutive ``seq`` values. Holding that lock until commit makes
commits happen in ``seq`` order, so a reader that has seen ``seq = n`` will never later find
an event below ``n``: positions are gap-free as readers see them, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, SQLModel

from monitor.events import SCHEMA_VERSIONS, EventData, parse_event_data
from monitor.store.db import make_engine
from monitor.store.tables import EventRow, LogHead

# Deterministic ids: the same idempotency key always yields the same event id, so a replay
# into a fresh database reproduces the same ids.
EVENT_NAMESPACE = uuid.UUID("6f1c2f4e-3b0a-4c55-9a51-2d1f0e7c9b11")


class ConcurrencyError(RuntimeError):
    """A writer's expected stream version is stale: someone appended first."""


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


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_stored(row: EventRow) -> StoredEvent:
    return StoredEvent(
        seq=row.seq,
        id=row.id,
        stream=row.stream,
        stream_version=row.stream_version,
        type=row.type,
        schema_version=row.schema_version,
        occurred_at=_utc(row.occurred_at),
        recorded_at=_utc(row.recorded_at) or datetime.now(UTC),
        idempotency_key=row.idempotency_key,
        data=parse_event_data(row.type, row.schema_version, row.data),
        metadata=row.meta or {},
    )


class EventStore:
    """Append, read and follow the log; one instance per process, safe across threads."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        SQLModel.metadata.create_all(self.engine)
        with self.session() as session:
            if session.get(LogHead, 1) is None:
                session.add(LogHead(id=1, seq=0))
            session.commit()

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

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
        """Append atomically; an event whose idempotency key is stored returns the stored one."""
        if session is not None:
            return self._append(session, events, expected_versions or {})
        with self.transaction() as own:
            return self._append(own, events, expected_versions or {})

    def _append(
        self, session: Session, events: Sequence[NewEvent], expected: dict[str, int]
    ) -> AppendResult:
        head = self._lock_head(session)
        versions: dict[str, int] = {}
        out: list[StoredEvent] = []
        created: list[bool] = []
        rows: list[EventRow] = []
        for new in events:
            existing = self._by_key(session, new.idempotency_key)
            if existing is not None:
                out.append(existing)
                created.append(False)
                continue
            version = versions.get(new.stream)
            if version is None:
                version = self._stream_version(session, new.stream)
                want = expected.get(new.stream)
                if want is not None and want != version:
                    raise ConcurrencyError(
                        f"stream {new.stream!r} is at version {version}, writer expected {want}"
                    )
            version += 1
            versions[new.stream] = version
            head += 1
            row = self._row(new, head, version)
            rows.append(row)
            session.add(row)
            session.flush()  # a later event in this batch may share an idempotency key
            out.append(to_stored(row))
            created.append(True)
        if rows:
            session.execute(update(LogHead).where(LogHead.id == 1).values(seq=head))
        return AppendResult(events=out, created=created)

    def _lock_head(self, session: Session) -> int:
        stmt = select(LogHead.seq).where(LogHead.id == 1)
        if self.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return int(session.execute(stmt).scalar_one())

    def _by_key(self, session: Session, key: str | None) -> StoredEvent | None:
        if key is None:
            return None
        row = session.execute(select(EventRow).where(EventRow.idempotency_key == key)).scalar()
        return to_stored(row) if row is not None else None

    @staticmethod
    def _stream_version(session: Session, stream: str) -> int:
        stmt = select(func.max(EventRow.stream_version)).where(EventRow.stream == stream)
        return int(session.execute(stmt).scalar() or 0)

    @staticmethod
    def _row(new: NewEvent, seq: int, version: int) -> EventRow:
        type_ = new.data.type
        return EventRow(
            seq=seq,
            id=event_id_for(new.idempotency_key),
            stream=new.stream,
            stream_version=version,
            type=type_,
            schema_version=SCHEMA_VERSIONS[type_],
            occurred_at=_utc(new.occurred_at),
            recorded_at=datetime.now(UTC),
            idempotency_key=new.idempotency_key,
            data=new.data.model_dump(mode="json", exclude={"type"}),
            meta=dict(new.metadata),
        )

    def read(
        self,
        after: int = 0,
        *,
        types: Sequence[str] | None = None,
        limit: int | None = None,
        session: Session | None = None,
        batch: int = 500,
    ) -> Iterator[StoredEvent]:
        """Events with ``seq > after`` in log order, read in batches."""
        remaining = limit
        position = after
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            stmt = select(EventRow).where(EventRow.seq > position)
            if types:
                stmt = stmt.where(EventRow.type.in_(list(types)))
            stmt = stmt.order_by(EventRow.seq).limit(size)
            if session is not None:
                rows = list(session.execute(stmt).scalars())
            else:
                with self.session() as own:
                    rows = list(own.execute(stmt).scalars())
            if not rows:
                return
            for row in rows:
                yield to_stored(row)
            position = rows[-1].seq
            if remaining is not None:
                remaining -= len(rows)

    def read_stream(self, stream: str) -> list[StoredEvent]:
        with self.session() as session:
            stmt = select(EventRow).where(EventRow.stream == stream).order_by(EventRow.seq)
            return [to_stored(r) for r in session.execute(stmt).scalars()]

    def get(self, event_id: str) -> StoredEvent | None:
        with self.session() as session:
            row = session.execute(select(EventRow).where(EventRow.id == event_id)).scalar()
            return to_stored(row) if row is not None else None

    def head(self) -> int:
        with self.session() as session:
            return int(session.execute(select(LogHead.seq).where(LogHead.id == 1)).scalar_one())
