"""Moving a log between databases as JSON lines, losslessly.

An export line is one stored event exactly as the database holds it: its position, id,
stream version, schema version (payloads are not upcast, so an old event stays old), both
timestamps in UTC, idempotency key, payload and metadata. Import writes the same rows at the
same positions, so ids, positions and idempotency keys survive a move from SQLite to PostgreSQL.
Import is resumable: lines already in the target, identical, are skipped; anything that
differs, or a position that would leave a gap, stops the import with the line number.
Projections and rule state are not exported: they are derived, and rebuild from the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from monitor.events import as_utc, parse_event_data
from monitor.store.db import StoreError
from monitor.store.log import EventStore, row_fields
from monitor.store.tables import EVENTS, EventRow, LogHead


class TransferError(StoreError):
    """An import line cannot be stored as it is (malformed, conflicting, or leaving a gap)."""


class RawEvent(BaseModel):
    """One exported event: the stored row, payload as stored (not upcast)."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(gt=0)
    id: str
    stream: str
    stream_version: int = Field(gt=0)
    type: str
    schema_version: int = Field(gt=0)
    occurred_at: AwareDatetime | None
    recorded_at: AwareDatetime
    idempotency_key: str | None
    data: dict[str, Any]
    metadata: dict[str, Any]

    def line(self) -> str:
        return json.dumps(self.canonical(), ensure_ascii=False, sort_keys=True)

    def canonical(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["occurred_at"] = _iso(self.occurred_at)
        out["recorded_at"] = _iso(self.recorded_at)
        return out


class TransferResult(BaseModel):
    written: int = 0
    skipped: int = 0
    head: int = 0


def _iso(value: datetime | None) -> str | None:
    aware = as_utc(value)
    return aware.isoformat() if aware else None


def _raw(row: EventRow) -> RawEvent:
    return RawEvent(**row_fields(row))


def raw_events(store: EventStore, after: int = 0, batch: int = 1000) -> Iterator[RawEvent]:
    """Stored rows in log order, untouched by upcasting."""
    position = after
    while True:
        with store.read_session() as session:
            stmt = select(EventRow).where(col(EventRow.seq) > position).order_by(col(EventRow.seq))
            rows = list(session.execute(stmt.limit(batch)).scalars())
        if not rows:
            return
        for row in rows:
            yield _raw(row)
        position = rows[-1].seq


def export_jsonl(store: EventStore, out: TextIO, after: int = 0) -> TransferResult:
    """Write every event after ``after`` as one JSON object per line."""
    result = TransferResult(head=after)
    for raw in raw_events(store, after):
        out.write(raw.line() + "\n")
        result.written += 1
        result.head = raw.seq
    return result


def import_jsonl(store: EventStore, lines: Iterable[str], batch: int = 1000) -> TransferResult:
    """Store exported events at their own positions, one transaction per ``batch`` lines."""
    result = TransferResult()
    pending: list[tuple[int, RawEvent]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        pending.append((number, _parse_line(number, line)))
        if len(pending) >= batch:
            _import_batch(store, pending, result)
            pending = []
    if pending:
        _import_batch(store, pending, result)
    result.head = store.head()
    return result


def _parse_line(number: int, line: str) -> RawEvent:
    try:
        raw = RawEvent.model_validate_json(line)
        parse_event_data(raw.type, raw.schema_version, raw.data)  # typed, or refused
    except (ValidationError, ValueError) as exc:
        raise TransferError(f"line {number}: not a valid event: {exc}") from exc
    return raw


def _import_batch(
    store: EventStore, pending: list[tuple[int, RawEvent]], result: TransferResult
) -> None:
    with store.transaction() as session:
        stmt = select(col(LogHead.seq)).where(col(LogHead.id) == 1)
        if store.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        head = int(session.execute(stmt).scalar_one())
        seqs = [raw.seq for _, raw in pending if raw.seq <= head]
        existing = (
            {
                row.seq: _raw(row)
                for row in session.execute(
                    select(EventRow).where(col(EventRow.seq).in_(seqs))
                ).scalars()
            }
            if seqs
            else {}
        )
        rows: list[dict[str, Any]] = []
        for number, raw in pending:
            if raw.seq <= head:
                stored = existing.get(raw.seq)
                if stored is None or stored.canonical() != raw.canonical():
                    raise TransferError(
                        f"line {number}: position {raw.seq} holds a different event in the target"
                    )
                result.skipped += 1
                continue
            if raw.seq != head + 1:
                raise TransferError(
                    f"line {number}: position {raw.seq} would leave a gap after {head}"
                )
            head = raw.seq
            rows.append(_values(raw))
        if not rows:
            return
        try:
            session.execute(insert(EVENTS), rows)
        except IntegrityError as exc:
            first = pending[0][0]
            raise TransferError(
                f"lines {first}-{pending[-1][0]}: an id, idempotency key or stream version "
                f"is already used by another event in the target ({exc.orig})"
            ) from exc
        session.execute(update(LogHead).where(col(LogHead.id) == 1).values(seq=head))
        result.written += len(rows)


def _values(raw: RawEvent) -> dict[str, Any]:
    return {
        "seq": raw.seq,
        "id": raw.id,
        "stream": raw.stream,
        "stream_version": raw.stream_version,
        "type": raw.type,
        "schema_version": raw.schema_version,
        "occurred_at": raw.occurred_at.astimezone(UTC) if raw.occurred_at else None,
        "recorded_at": raw.recorded_at.astimezone(UTC),
        "idempotency_key": raw.idempotency_key,
        "data": raw.data,
        "metadata": raw.metadata,
    }
