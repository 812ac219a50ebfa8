"""The append-only event log.

Appends lock the single ``log_head`` row first, then check idempotency keys and stream
versions, then insert with consecutive ``seq`` values. Holding that lock until commit makes
commits happen in ``seq`` order, so a reader that has seen ``seq = n`` will never later find
an event below ``n``: positions are gap-free as readers see them, on SQLite and PostgreSQL.
A rolled-back append releases its positions with the lock, so the next writer reuses them.

Metadata carries ``correlation_id`` on every event: one id shared by all events appended in
one batch (one article's events), inherited by events whose ``causation_id`` names an earlier
event (an alert raised by a fact carries that article's correlation id).

``append_many`` commits several batches in one transaction (group commit): each batch keeps
its own correlation id, idempotency and stream version checks, exactly as if the batches had
been appended one after another, and the group is stored whole or not at all.

The hot paths (append, read) run fixed SQL text on the driver's cursor, inside the caller's
session or a short transaction of the store's own on a pooled connection. Per transaction,
whatever the number of batches: the head lock, one lookup each of idempotency keys, stream
versions and (if any) causing events, then the insert and the head's update. On PostgreSQL
these are two round trips: BEGIN, the lock and the lookups sent together; the insert (one
statement of column arrays), the head and, in the store's own transaction, the COMMIT sent
together. Rows read back are upcast and their payload validated from its JSON text by its
model; the envelope columns, typed by the table, are taken as they come.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import from_json, to_json
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from monitor.events import SCHEMA_VERSIONS, EventData, as_utc, parse_event_data
from monitor.store import migrate
from monitor.store.db import (
    READ_ONLY,
    SQLITE_BUSY_TIMEOUT_MS,
    check_owner,
    check_sqlite_file,
    make_engine,
    store_error,
)

if TYPE_CHECKING:
    # The ORM (SQLModel, the table classes) only for types here: a command that just reads
    # through ``read_connection`` (`monitor status`) must not pay for importing it.
    from sqlmodel import Session

    from monitor.store.tables import EventRow

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


def uuid5_text(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))``, computed on the SHA-1's hex digits
    (2.5 us, against 5 us through the digest's bytes and 10 us through UUID objects): every
    appended event and every alert has such an id. The version digit is 5, and the variant
    bits (10) replace the top two of the first digit of the fourth group."""
    h = hashlib.sha1(namespace + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# A hex digit with its top two bits set to the RFC 4122 variant (10).
_VARIANT = {d: format(int(d, 16) & 0x3 | 0x8, "x") for d in "0123456789abcdef"}
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def event_id_for(idempotency_key: str | None) -> str:
    """The event id an idempotency key derives (uuid5), or a random one for an event without."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return uuid5_text(_NAMESPACE_BYTES, idempotency_key)


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


# --- the lean path: fixed SQL on the driver's cursor ----------------------------------------------

# The payload model of each event type, to validate a stored payload straight from its JSON.
PAYLOADS: dict[str, type[BaseModel]] = {
    model.model_fields["type"].default: model for model in get_args(get_args(EventData)[0])
}
# Per type: its current schema version and its model's JSON validator (pydantic-core, no
# wrapper), taken on the type's first read: the models build their validators on first use.
_VALIDATORS: dict[str, tuple[int, Callable[[str], Any]]] = {}
_WITHOUT_TYPE = {"type"}  # the type has its own column
_FIELDS = set(StoredEvent.model_fields)
_RESULT_FIELDS = set(AppendResult.model_fields)
_new_object = object.__new__
_set = object.__setattr__


def _result(events: list[StoredEvent], created: list[bool]) -> AppendResult:
    """An AppendResult of values the store made itself, built as ``_envelope`` builds events
    (``model_construct`` costs more than the rest of an article's append bookkeeping)."""
    result = _new_object(AppendResult)
    _set(result, "__dict__", {"events": events, "created": created})
    _set(result, "__pydantic_fields_set__", _RESULT_FIELDS)
    _set(result, "__pydantic_extra__", None)
    _set(result, "__pydantic_private__", None)
    return result


def _envelope(fields: dict[str, Any]) -> StoredEvent:
    """A StoredEvent from fields that are already of their declared types, without validating
    them again: what ``model_construct`` does, minus its per-field default handling. Only for
    values the store produced itself (its table's typed columns, a validated payload)."""
    event = _new_object(StoredEvent)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", _FIELDS)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def _payload(type_: str, version: int, text: str) -> EventData:
    """A stored payload, upcast when older than the current schema, validated by its model."""
    known = _VALIDATORS.get(type_)
    if known is None and type_ in PAYLOADS:
        validator = PAYLOADS[type_].__pydantic_validator__
        known = _VALIDATORS[type_] = (SCHEMA_VERSIONS[type_], validator.validate_json)
    if known is not None and version == known[0]:
        return known[1](text)
    return parse_event_data(type_, version, json.loads(text))


Lookup = Literal["keys", "streams", "ids"]
LOOKUPS: tuple[Lookup, ...] = ("keys", "streams", "ids")


def _qualified(select: str) -> str:
    """The columns of ``SELECT ... FROM events``, each prefixed with ``events.``."""
    columns = select.removeprefix("SELECT ").removesuffix(" FROM events").split(", ")
    return ", ".join(f"events.{c}" for c in columns)


COLUMNS = (
    "seq, id, stream, stream_version, type, schema_version, occurred_at, recorded_at, "
    "idempotency_key, data, metadata"
)
# PostgreSQL: a whole append is one INSERT of column arrays; its text never changes, so the
# server plans it once per connection (psycopg prepares statements it sees repeatedly).
# Its arrays go in binary (``%b``): text-format arrays would be escaped element by element.
_UNNEST = (
    "%b::bigint[], %b::text[], %b::text[], %b::int[], %b::text[], %b::int[], "
    "%b::timestamptz[], %b::timestamptz[], %b::text[], %b::text[]::json[], %b::text[]::json[]"
)


class _Sql:
    """The statements of one dialect, and how its driver wants timestamps and JSON.

    SQLite binds a list as one value per ``?`` (in chunks of ``IN_CHUNK``); PostgreSQL takes
    it as one array parameter, so every statement text is fixed there.
    """

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        pg = self.postgres
        columns = COLUMNS.replace("data, metadata", "data::text, metadata::text") if pg else COLUMNS
        self.select = f"SELECT {columns} FROM events"
        self.lock_head = "SELECT seq FROM log_head WHERE id = 1" + (" FOR UPDATE" if pg else "")
        self.head = "SELECT seq FROM log_head WHERE id = 1"
        self.set_head = self.q("UPDATE log_head SET seq = ? WHERE id = 1")
        if pg:
            self.insert = f"INSERT INTO events ({COLUMNS}) SELECT * FROM unnest({_UNNEST})"
        else:
            self.insert = f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' * 11)})"
        self.stream = self.q(f"{self.select} WHERE stream = ? ORDER BY seq")
        self.last = self.q(f"{self.select} WHERE stream = ? ORDER BY stream_version DESC LIMIT 1")
        self.by_id = self.q(f"{self.select} WHERE id = ?")

    def q(self, sql: str) -> str:
        """``sql`` in the driver's parameter style (``?`` for sqlite3, ``%s`` for psycopg)."""
        return sql.replace("?", "%s") if self.postgres else sql

    @cache  # noqa: B019 - one instance per dialect, kept for the life of the process
    def lookup(self, kind: Lookup, n: int) -> str:
        """What an append looks up by a list of ``n`` values: stored events by idempotency
        key, the version of streams (by name), the metadata of events (by id).

        SQLite: ``IN (?, ...)``. PostgreSQL: one array, joined as a table, so that the text
        never changes and each value is one index lookup; ``= ANY(array)`` under a prepared
        statement's generic plan would compare every row with every value instead.
        """
        if self.postgres:
            return {
                "keys": f"SELECT {_qualified(self.select)} FROM unnest(%b::text[]) AS k(key) "
                "JOIN events ON events.idempotency_key = k.key",
                "streams": "SELECT s.name, (SELECT MAX(stream_version) FROM events "
                "WHERE stream = s.name) FROM unnest(%b::text[]) AS s(name)",
                "ids": "SELECT events.id, events.metadata::text FROM unnest(%b::text[]) AS i(v) "
                "JOIN events ON events.id = i.v",
            }[kind]
        values = f"({', '.join('?' * n)})"
        return {
            "keys": f"{self.select} WHERE idempotency_key IN {values}",
            "streams": f"SELECT stream, MAX(stream_version) FROM events WHERE stream IN {values} "
            "GROUP BY stream",
            "ids": f"SELECT id, metadata FROM events WHERE id IN {values}",
        }[kind]

    @cache  # noqa: B019
    def page(self, until: bool, types: int) -> str:
        sql = f"{self.select} WHERE seq > ?"
        if until:
            sql += " AND seq <= ?"
        if types:  # one value per ``?``, on PostgreSQL too: ``type = ?`` plans on (type, seq)
            sql += f" AND type IN ({', '.join('?' * types)})"
        return self.q(sql + " ORDER BY seq LIMIT ?")

    def timestamp(self, value: datetime | None) -> Any:
        """A timestamp as the column stores it: SQLite keeps SQLAlchemy's naive UTC text."""
        aware = as_utc(value)
        if aware is None or self.postgres:
            return aware
        return aware.replace(tzinfo=None).isoformat(" ", "microseconds")

    def events(self, rows: Sequence[Sequence[Any]]) -> Iterator[StoredEvent]:
        """Stored rows as events, made one at a time as the caller takes them (a page of
        events alive at once costs allocations and garbage-collector passes, measurably).
        Timestamps repeat (an article's events share them, a transaction's share
        ``recorded_at``): each distinct one is converted once per call."""
        times: dict[Any, datetime | None] = {None: None}
        for seq, id_, stream, version, type_, schema, occurred, recorded, key, data, meta in rows:
            if occurred not in times:
                times[occurred] = read_time(occurred)
            if recorded not in times:
                times[recorded] = read_time(recorded)
            yield _envelope(
                {
                    "seq": seq,
                    "id": id_,
                    "stream": stream,
                    "stream_version": version,
                    "type": type_,
                    "schema_version": schema,
                    "occurred_at": times[occurred],
                    "recorded_at": times[recorded],
                    "idempotency_key": key,
                    "data": _payload(type_, schema, data),
                    "metadata": from_json(meta) or {},
                }
            )


def read_time(value: str | datetime | None) -> datetime | None:
    """A timestamp column as the driver returns it (SQLite: naive UTC text), in UTC."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: naive UTC text
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else as_utc(value)  # PostgreSQL sessions run in UTC


class EventStore:
    """Append, read and follow the log; one instance per process, safe across threads."""

    def __init__(self, url: str, *, create: bool = True, read_only: bool = False) -> None:
        self.url = url
        check_sqlite_file(url)
        check_owner(url)
        self.engine: Engine = make_engine(url, read_only=read_only)
        self._reader: Engine = self.engine.execution_options(**{READ_ONLY: True})
        self._sql = _Sql(self.engine.dialect.name)
        # SQLite: this process's writers queue here, handed the lock the moment it is free;
        # on SQLite's own lock they would poll, sleeping up to 100 ms a try (other processes
        # still queue there). Reentrant: a nested transaction fails on SQLite's lock, as before.
        self._writers = None if self._sql.postgres else threading.RLock()
        self._driver_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
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
        from sqlmodel import Session

        return Session(self.engine, expire_on_commit=False)

    def read_session(self) -> Session:
        """A session for reading only: on SQLite it never waits for, or blocks, a writer."""
        from sqlmodel import Session

        return Session(self._reader, expire_on_commit=False)

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """One read transaction on SQLAlchemy Core alone, for Core statements and fixed SQL:
        what ``read_session`` gives, without importing the ORM, for reads that must start
        fast (`monitor status`). On SQLite it never waits for, or blocks, a writer."""
        with self._reader.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One database transaction: commits on success, rolls back on any error."""
        with self._writing(), self.session() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this process's write turn (SQLite) for one write transaction."""
        if self._writers is None:
            yield
            return
        if not self._writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            locked = self._driver_error("database is locked (by another thread of this process)")
            raise DBAPIError.instance(None, None, locked, self._driver_error)
        try:
            yield
        finally:
            self._writers.release()

    @contextmanager
    def _cursor(self, session: Session | Connection | None, *, write: bool) -> Iterator[Any]:
        """The driver's cursor inside ``session``'s transaction, or inside a short transaction
        of its own on a pooled connection: a writer's begins with ``BEGIN IMMEDIATE`` on
        SQLite (as every write transaction here does) and commits when the block ends (or
        earlier, in the block, on PostgreSQL: see ``_write``); a reader's is its statement's
        own snapshot (autocommit: no BEGIN, no ROLLBACK, one round trip on PostgreSQL). Driver
        errors come out as SQLAlchemy's, as from any other statement."""
        try:
            if session is not None:
                if isinstance(session, Connection):  # a transaction of ``read_connection``
                    cursor = session.connection.cursor()
                else:
                    session.flush()  # ORM changes made earlier in the session go first
                    cursor = session.connection().connection.cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
                return
            with self._writing() if write else nullcontext():
                yield from self._own_cursor(write)
        except self._driver_error as exc:
            raise DBAPIError.instance(None, None, exc, self._driver_error) from exc

    def _own_cursor(self, write: bool) -> Iterator[Any]:
        """A cursor in a short transaction of its own on a pooled connection (see ``_cursor``)."""
        connection = self.engine.raw_connection()
        autocommit = self._sql.postgres and not write
        try:
            if autocommit:
                connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            cursor = connection.cursor()
            try:
                if write and not self._sql.postgres:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
            finally:
                cursor.close()
            if write:
                connection.commit()
            else:
                connection.rollback()
        except BaseException as error:
            self._abandon(connection, error)
            raise
        finally:
            if autocommit and connection.is_valid:
                with suppress(self._driver_error):
                    connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]
            connection.close()  # back to the pool

    def _abandon(self, connection: Any, error: BaseException) -> None:
        """Roll back a failed transaction of the store's own. When the connection is gone
        (the server restarted, or dropped it), discard it and every idle one in the pool, as
        SQLAlchemy does for its own statements: they all went to the same server."""
        dbapi = connection.dbapi_connection
        if isinstance(error, self._driver_error) and self.engine.dialect.is_disconnect(
            cast(Any, error), dbapi, None
        ):
            connection.invalidate(error)
            self.engine.dispose()
            return
        with suppress(self._driver_error):
            connection.rollback()

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
        return self.append_many([events], expected_versions=[expected_versions], session=session)[0]

    def append_many(
        self,
        batches: Sequence[Sequence[NewEvent]],
        *,
        expected_versions: Sequence[Mapping[str, int] | None] | None = None,
        session: Session | None = None,
    ) -> list[AppendResult]:
        """Append several batches (say, one article's events each) in one transaction.

        Each batch is handled as ``append`` would handle it after the batches before it:
        its own correlation id, idempotent keys (also against earlier batches of the call),
        and ``expected_versions[i]`` checked against the stream versions the earlier batches
        left. One stale expectation refuses the whole call with ``ConcurrencyError`` and
        nothing of it is stored. Returns one result per batch.
        """
        if expected_versions is not None and len(expected_versions) != len(batches):
            raise ValueError("expected_versions needs one entry (or None) per batch")
        expected = [dict(e or {}) for e in (expected_versions or [None] * len(batches))]
        if not any(batches):
            return [AppendResult(events=[], created=[]) for _ in batches]
        with self._cursor(session, write=True) as cursor:
            return self._append(cursor, batches, expected, commit=session is None)

    def _append(
        self,
        cursor: Any,
        batches: Sequence[Sequence[NewEvent]],
        expected: list[dict[str, int]],
        *,
        commit: bool,
    ) -> list[AppendResult]:
        sql = self._sql
        everything = [e for batch in batches for e in batch]
        head, stored, versions, causes = self._state(
            cursor,
            list(dict.fromkeys(e.idempotency_key for e in everything if e.idempotency_key)),
            sorted({e.stream for e in everything}.union(*expected)),
            sorted(
                {
                    str(e.metadata["causation_id"])
                    for e in everything
                    if e.metadata.get("causation_id")
                }
            ),
        )
        now = datetime.now(UTC)
        recorded = sql.timestamp(now)
        # An article's events share their time; a batch's its correlation id (and metadata).
        stamps: dict[datetime | None, tuple[datetime | None, Any]] = {None: (None, None)}
        plain_meta: dict[str, str] = {}
        rows: list[tuple[Any, ...]] = []
        add_row = rows.append
        envelope = _envelope
        results: list[AppendResult] = []
        for events, want in zip(batches, expected, strict=True):
            if want and any(e.idempotency_key not in stored for e in events):
                for stream, version in want.items():
                    if versions.get(stream, 0) != version:
                        raise ConcurrencyError(stream, versions.get(stream, 0), version)
            correlation = _batch_correlation(events, stored)
            out: list[StoredEvent] = []
            created: list[bool] = []
            for new in events:
                key = new.idempotency_key
                if key is not None and key in stored:
                    out.append(stored[key])
                    created.append(False)
                    continue
                event_id = event_id_for(key)
                stream = new.stream
                version = versions.get(stream, 0) + 1
                versions[stream] = version
                head += 1
                when = new.occurred_at
                if when not in stamps:
                    aware = as_utc(when)
                    stamps[when] = (aware, sql.timestamp(aware))
                occurred, occurred_column = stamps[when]
                data = new.data
                type_ = data.type
                schema = SCHEMA_VERSIONS[type_]
                correlation = correlation or event_id  # a batch's first new event names it
                if new.metadata:
                    metadata = _metadata(new.metadata, correlation, causes)
                    meta_json = to_json(metadata).decode()
                else:
                    metadata = {"correlation_id": correlation}
                    shared = plain_meta.get(correlation)
                    if shared is None:
                        shared = plain_meta[correlation] = to_json(metadata).decode()
                    meta_json = shared
                event = envelope(
                    {
                        "seq": head,
                        "id": event_id,
                        "stream": stream,
                        "stream_version": version,
                        "type": type_,
                        "schema_version": schema,
                        "occurred_at": occurred,
                        "recorded_at": now,
                        "idempotency_key": key,
                        "data": data,
                        "metadata": metadata,
                    }
                )
                if key is not None:
                    stored[key] = event  # a later event in this call may repeat the key
                causes[event_id] = metadata["correlation_id"]  # for later batches
                add_row(
                    (
                        head,
                        event_id,
                        stream,
                        version,
                        type_,
                        schema,
                        occurred_column,
                        recorded,
                        key,
                        data.__pydantic_serializer__.to_json(data, exclude=_WITHOUT_TYPE).decode(),
                        meta_json,
                    )
                )
                out.append(event)
                created.append(True)
            results.append(_result(out, created))
        if rows:
            self._write(cursor, rows, head, commit=commit)
        return results

    def _state(
        self, cursor: Any, keys: list[str], streams: list[str], causation: list[str]
    ) -> tuple[int, dict[str, StoredEvent], dict[str, int], dict[str, str]]:
        """What an append must know, read under the head lock: the head, the stored events of
        these idempotency keys, the version of these streams and the correlation id of each
        stored causing event (none of its own: its id). On PostgreSQL the lock and the three
        lookups go to the server together, with the transaction's BEGIN: one round trip. Each
        lookup still starts after the lock is granted, so it sees every earlier append."""
        sql = self._sql
        if not sql.postgres:
            cursor.execute(sql.lock_head)
            head = int(cursor.fetchone()[0])
            found = self._in(cursor, "keys", keys)
            versions = self._in(cursor, "streams", streams)
            metadata = self._in(cursor, "ids", causation)
        else:
            connection = cursor.connection
            asked = (keys, streams, causation)
            others = [connection.cursor() for _ in asked]
            try:
                with connection.pipeline():
                    cursor.execute(sql.lock_head)
                    for other, kind, values in zip(others, LOOKUPS, asked, strict=True):
                        if values:
                            other.execute(sql.lookup(kind, 1), [values])
                head = int(cursor.fetchone()[0])
                found, versions, metadata = [
                    c.fetchall() if values else [] for c, values in zip(others, asked, strict=True)
                ]
            finally:
                for other in others:
                    other.close()
        stored = {event.idempotency_key: event for event in sql.events(found)}
        causes = {
            event_id: str(from_json(meta or "{}").get("correlation_id") or event_id)
            for event_id, meta in metadata
        }
        known = {name: int(version) for name, version in versions if version is not None}
        return head, cast(dict[str, StoredEvent], stored), known, causes

    def _write(self, cursor: Any, rows: list[tuple[Any, ...]], head: int, *, commit: bool) -> None:
        """Insert the rows and move the head. On PostgreSQL one statement inserts them all (as
        column arrays), sent with the head's update and, in a transaction of the store's own,
        the COMMIT: one round trip. SQLite, in-process, inserts row by row (``executemany``
        beats one multi-row statement there)."""
        sql = self._sql
        if not sql.postgres:
            cursor.executemany(sql.insert, rows)
            cursor.execute(sql.set_head, (head,))
            return
        with cursor.connection.pipeline():
            cursor.execute(sql.insert, [list(column) for column in zip(*rows, strict=True)])
            cursor.execute(sql.set_head, (head,))
            if commit:
                cursor.connection.commit()

    def _in(self, cursor: Any, kind: Lookup, values: Sequence[str]) -> list[Any]:
        """Rows of ``_Sql.lookup(kind)`` for these values: in chunks of ``IN_CHUNK`` on SQLite,
        as one array on PostgreSQL."""
        if self._sql.postgres:
            if not values:
                return []
            cursor.execute(self._sql.lookup(kind, 1), [list(values)])
            return list(cursor.fetchall())
        rows: list[Any] = []
        for i in range(0, len(values), IN_CHUNK):
            chunk = values[i : i + IN_CHUNK]
            cursor.execute(self._sql.lookup(kind, len(chunk)), chunk)
            rows += cursor.fetchall()
        return rows

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
        """Events with ``after < seq (<= until)`` in log order, read in batches.

        Each batch is one statement in its own short read transaction (or in ``session``'s),
        so a slow consumer of the iterator holds no snapshot open between batches.
        """
        wanted = list(types or ())
        remaining = limit
        position = after
        statement = self._sql.page(until is not None, len(wanted))
        filters: list[Any] = [] if until is None else [until]
        filters += wanted
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            with self._cursor(session, write=False) as cursor:
                cursor.execute(statement, [position, *filters, size])
                rows = cursor.fetchall()
            if not rows:
                return
            yield from self._sql.events(rows)
            position = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def _query(
        self, statement: str, params: Sequence[Any], session: Session | Connection | None
    ) -> list[Any]:
        with self._cursor(session, write=False) as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())

    def read_stream(self, stream: str, *, session: Session | None = None) -> list[StoredEvent]:
        return list(self._sql.events(self._query(self._sql.stream, (stream,), session)))

    def last_of(self, stream: str) -> StoredEvent | None:
        """The stream's latest event: one index lookup, however long the stream has grown."""
        return next(self._sql.events(self._query(self._sql.last, (stream,), None)), None)

    def get(self, event_id: str) -> StoredEvent | None:
        return next(self._sql.events(self._query(self._sql.by_id, (event_id,), None)), None)

    def head(self, session: Session | Connection | None = None) -> int:
        """The last committed position (in ``session``'s view, when given)."""
        return int(self._query(self._sql.head, (), session)[0][0])


def _metadata(given: Mapping[str, Any], correlation: str, causes: dict[str, str]) -> dict[str, Any]:
    """An event's metadata with its correlation id: given, else its cause's, else the batch's."""
    metadata = dict(given)
    if "correlation_id" not in metadata:
        cause = metadata.get("causation_id")
        metadata["correlation_id"] = causes.get(str(cause), correlation) if cause else correlation
    return metadata


def _batch_correlation(events: Sequence[NewEvent], stored: dict[str, StoredEvent]) -> str:
    """The batch's correlation id: given by the writer, else its first event's own id (or
    that event's correlation id, when it was stored before); "" when that is the first event
    about to be stored, whose id is made in the append loop."""
    for new in events:
        if "correlation_id" in new.metadata:
            return str(new.metadata["correlation_id"])
    if not events:
        return ""
    first = events[0]
    if first.idempotency_key in stored:
        previous = stored[first.idempotency_key]
        return str(previous.metadata.get("correlation_id") or previous.id)
    return ""
