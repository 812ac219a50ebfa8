"""Following the log: ``follow`` feeds each consumer (the read models here, and the rule
evaluator) its events after its own checkpoint.

A consumer applies events in ``seq`` order and ``follow`` writes its checkpoint in the same
transaction as the state those events produced, so a crash can never leave state and
checkpoint apart.
``rebuild`` drops a projection's state and replays the whole log; the result must equal the
live state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col

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
    table_of,
)


class Consumer:
    """Something that follows the log: ``apply`` folds one event of ``types`` in.

    ``follow`` calls ``begin`` before a batch's first event (with the position the consumer
    starts after) and ``apply`` for each event, in a read transaction: state is read there
    and changed in memory (``rows``). ``end`` comes in the write transaction that moves the
    checkpoint (with the position it will then hold): a consumer that keeps its state in
    memory writes it there; ``discard`` instead when that batch is not committed. ``version``
    changes when the code changes meaning, and the consumer is then ``reset`` (its
    ``tables`` emptied) and replayed from the start.
    """

    name: str
    types: Sequence[str]
    version: int = 1
    tables: Sequence[type[SQLModel]] = ()

    def __init__(self) -> None:
        self.held = Held()

    def rows(self, model: type[SQLModel]) -> Rows:
        """The consumer's rows of one of its tables, read once and kept (see ``Held``)."""
        return self.held.table(model)

    def begin(self, session: Session, at: int) -> None:
        self.held.begin(at)

    def apply(self, session: Session, event: StoredEvent) -> None:
        raise NotImplementedError

    def end(self, session: Session, to: int) -> None:
        self.held.write(session)

    def committed(self, to: int) -> None:
        self.held.committed(to)

    def discard(self) -> None:
        self.held.discard()

    def reset(self, session: Session) -> None:
        self.held.discard()
        for table in self.tables:
            session.execute(delete(table))


CHECKPOINTS = table_of(Checkpoint)


def checkpoint(session: Session, name: str) -> int:
    """The consumer's position, locked until the transaction ends (see ``_lock``)."""
    return _lock(session, [name])[name][0]


def _lock(session: Session, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """The consumers' positions and versions, each row created if missing and then locked
    (``FOR UPDATE`` on PostgreSQL, in name order; SQLite's write transaction already excludes
    other writers), so two processes catching up the same consumer take turns instead of both
    applying the same events."""
    connection = session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    rows = [{"name": name, "seq": 0, "version": 1} for name in names]
    connection.execute(insert(CHECKPOINTS).values(rows).on_conflict_do_nothing())
    return _locked(session, names)


def _locked(session: Session, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``_lock`` for checkpoints known to exist (a batch's: ``follow_all`` made them)."""
    connection = session.connection()
    c = CHECKPOINTS.c
    stmt = select(c.name, c.seq, c.version).where(c.name.in_(names)).order_by(c.name)
    if connection.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {name: (seq, version) for name, seq, version in connection.execute(stmt)}


def _save(session: Session, positions: dict[str, int], versions: dict[str, int]) -> None:
    c = CHECKPOINTS.c
    for name, seq in positions.items():
        values: dict[str, int] = {"seq": seq}
        if name in versions:
            values["version"] = versions[name]
        session.connection().execute(update(CHECKPOINTS).where(c.name == name).values(values))


def follow(store: EventStore, consumer: Consumer, batch: int = 500) -> int:
    """``follow_all`` for one consumer."""
    return follow_all(store, [consumer], batch)


def follow_all(store: EventStore, consumers: Sequence[Consumer], batch: int = 500) -> int:
    """Apply each consumer's events after its own checkpoint, reading the log once for all of
    them: the one loop that reads the log for projections and the rule evaluator alike.

    A batch reads the consumers' event types up to the log head and applies them in a read
    transaction, which never waits for nor blocks the log's writer; then one short write
    transaction locks the checkpoints and, if no other process moved them meanwhile, writes
    the consumers' state with every checkpoint: to that head, or, when the batch was full, to
    the end of the last report it holds whole (a batch never ends inside an article's facts,
    so that rules see a report whole). If one moved, the batch is forgotten and redone from
    where it now is. Events a consumer appends (alerts) are read by the next batch. Returns
    how many events were applied, counted once per consumer.
    """
    applied = 0
    names = [c.name for c in consumers]
    while True:
        with store.read_session() as session:
            at = _positions(session, names)
            stale = [c for c in consumers if at.get(c.name, (0, 0))[1] != c.version]
            if not stale:
                head = store.head(session)
                behind = [c for c in consumers if at[c.name][0] < head]
                if not behind:
                    return applied
                work = _Batch(session, behind, {c.name: at[c.name][0] for c in behind})
                try:
                    end = work.run(store, head, batch)
                    applied += work.commit(store, end, {c.name: at[c.name] for c in behind})
                except BaseException:
                    work.discard()  # what it changed in memory was not committed
                    raise
                continue
        _prepare(store, stale)


def _positions(session: Session, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    c = CHECKPOINTS.c
    stmt = select(c.name, c.seq, c.version).where(c.name.in_(names))
    return {name: (seq, version) for name, seq, version in session.connection().execute(stmt)}


def _prepare(store: EventStore, consumers: Sequence[Consumer]) -> None:
    """Create the consumers' checkpoints, and restart those whose code changed version."""
    with store.transaction() as session:
        at = _lock(session, [c.name for c in consumers])
        for consumer in consumers:
            if at[consumer.name][1] != consumer.version:
                _restart(session, consumer)


def _restart(session: Session, consumer: Consumer) -> None:
    """Empty the consumer's tables and set its checkpoint to the start, at its version."""
    consumer.reset(session)
    session.expunge_all()  # rows of the emptied tables may be in the session
    _save(session, {consumer.name: 0}, {consumer.name: consumer.version})


class _Batch:
    """One batch of ``follow_all``: events are applied as they are read and then dropped (a
    batch of live objects held in a list costs allocations and garbage-collector passes,
    measurably), all but the current report's facts, held until the report ends."""

    def __init__(self, session: Session, consumers: Sequence[Consumer], at: dict[str, int]):
        self.session = session
        self.consumers = consumers
        self.at = at
        self.begun: set[str] = set()
        self.applied = 0

    def run(self, store: EventStore, head: int, batch: int) -> int:
        """Apply the batch's events; returns the position it ends at."""
        start = min(self.at.values())
        types = sorted({t for c in self.consumers for t in c.types})
        limit = batch
        while True:
            held: list[StoredEvent] = []
            held_report: str | None = None
            done: int | None = None
            read = 0
            events = store.read(
                start, types=types, until=head, limit=limit, session=self.session, batch=batch
            )
            for event in events:
                read += 1
                report = _report_of(event)
                if held and (held_report is None or report != held_report):
                    done = self._apply(held)
                    held = []
                held.append(event)
                held_report = report
            if read < limit:
                if held:
                    self._apply(held)
                return head
            if done is not None:
                return done
            limit *= 2  # all one report, maybe unfinished: read a larger batch

    def commit(self, store: EventStore, end: int, expected: dict[str, tuple[int, int]]) -> int:
        """Write the consumers' state and checkpoints at ``end``, unless another process
        moved a checkpoint since the batch read it; returns how many events it applied."""
        with store.transaction() as session:
            if _locked(session, list(expected)) != expected:
                self.discard()
                return 0
            moved = [c for c in self.consumers if self.at[c.name] < end]
            for consumer in moved:
                self._begin(consumer)
                consumer.end(session, end)
            _save(session, {c.name: end for c in moved}, {})
        for consumer in moved:
            consumer.committed(end)
        return self.applied

    def discard(self) -> None:
        for consumer in self.consumers:
            consumer.discard()

    def _apply(self, events: Sequence[StoredEvent]) -> int:
        for event in events:
            for consumer in self.consumers:
                if event.seq > self.at[consumer.name] and event.type in consumer.types:
                    self._begin(consumer)
                    consumer.apply(self.session, event)
                    self.applied += 1
        return events[-1].seq

    def _begin(self, consumer: Consumer) -> None:
        if consumer.name not in self.begun:
            self.begun.add(consumer.name)
            consumer.begin(self.session, self.at[consumer.name])


def _report_of(event: StoredEvent) -> str | None:
    """The article whose facts the event reports: its facts are appended together."""
    data = event.data
    return data.article.article_id if isinstance(data, FactReported) else None


def rebuild(store: EventStore, projection: Consumer, batch: int = 2000) -> int:
    """Drop the projection's state and checkpoint, then replay the log from the start.

    The drop commits before the replay; a crash half-way leaves a consistent, partly replayed
    projection whose next ``follow`` finishes the job.
    """
    with store.transaction() as session:
        _lock(session, [projection.name])
        _restart(session, projection)
    return follow(store, projection, batch)


def dump_state(store: EventStore, projections: Sequence[Consumer]) -> str:
    """Every row of the projections' tables and their checkpoints, as canonical JSON lines.

    Rows are ordered by primary key and timestamps rendered in UTC, so two databases (or one
    before and after a rebuild) hold the same state exactly when the dumps are equal.
    """
    lines: list[str] = []
    with store.read_session() as session:
        for projection in projections:
            for model in projection.tables:
                table = table_of(model)
                stmt = select(table).order_by(*table.primary_key.columns)
                for values in session.execute(stmt).mappings():
                    row = {k: _canonical(v) for k, v in values.items()}
                    lines.append(json.dumps([table.name, row], sort_keys=True))
            seq = session.execute(
                select(col(Checkpoint.seq)).where(col(Checkpoint.name) == projection.name)
            ).scalar()
            lines.append(json.dumps(["checkpoint", projection.name, seq]))
    return "\n".join(lines) + "\n"


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value


# --- rows held between batches ------------------------------------------------------------------


class Rows:
    """One projection table's rows as plain dicts, each read at most once and written back,
    changed rows only, in one upsert when the batch commits.

    A projection folds hundreds of events into a handful of rows; reading and writing each
    row once per batch instead of once per event is what makes a rebuild fast, and keeping
    the rows read from one batch to the next (``Held``) is what makes following the log
    cheap: a busy series is read once, not once per batch.
    """

    def __init__(self, model: type[SQLModel]) -> None:
        self.table: Table = table_of(model)
        self.keys = [c.name for c in self.table.primary_key.columns]
        self.rows: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self.dirty: set[tuple[Any, ...]] = set()
        self.read: set[tuple[Any, ...]] = set()
        self.by_key = select(self.table).where(
            *(self.table.c[k] == bindparam(k) for k in self.keys)
        )

    def get(self, session: Session, *key: Any) -> dict[str, Any] | None:
        if key not in self.rows:
            values = dict(zip(self.keys, key, strict=True))
            found = session.connection().execute(self.by_key, values).first()
            self.rows[key] = dict(found._mapping) if found is not None else None
            self.read.add(key)
        return self.rows[key]

    def put(self, row: dict[str, Any]) -> None:
        key = tuple(row[k] for k in self.keys)
        self.rows[key] = row
        self.dirty.add(key)

    def write(self, into: Session) -> None:
        changed = [row for k in sorted(self.dirty, key=repr) if (row := self.rows[k])]
        if not changed:
            return
        dialect = into.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(self.table)
        others = [c.name for c in self.table.columns if c.name not in self.keys]
        stmt = stmt.on_conflict_do_update(
            index_elements=self.keys, set_={c: stmt.excluded[c] for c in others}
        )
        into.connection().execute(stmt, changed)

    def committed(self) -> None:
        """Keep the rows read (what the table now holds for them); forget the rows only
        written (an alert's row is never read again: kept, they would only pile up)."""
        for key in self.dirty - self.read:
            del self.rows[key]
        self.dirty.clear()


class Held:
    """A consumer's rows, kept from one batch to the next for as long as its checkpoint stays
    where the consumer's last commit left it: they are then what the tables hold. When the
    checkpoint has moved (another process followed the log, the consumer was reset) or a
    batch did not commit, they are forgotten and read again."""

    def __init__(self) -> None:
        self.tables: dict[type[SQLModel], Rows] = {}
        self.at: int | None = None

    def table(self, model: type[SQLModel]) -> Rows:
        rows = self.tables.get(model)
        if rows is None:
            rows = self.tables[model] = Rows(model)
        return rows

    def begin(self, at: int) -> None:
        if at != self.at:
            self.discard()

    def write(self, into: Session) -> None:
        for rows in self.tables.values():
            rows.write(into)

    def committed(self, at: int) -> None:
        for rows in self.tables.values():
            rows.committed()
        self.at = at

    def discard(self) -> None:
        self.tables.clear()
        self.at = None


class ConflictState(Consumer):
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
            ceasefires = self.rows(CeasefireState)
            row = ceasefires.get(session, data.watch)
            if row is not None and _older(when, row["updated_at"]):
                return
            ceasefires.put(
                {
                    "watch": data.watch,
                    "status": fact.status,
                    "broker": fact.broker,
                    "last_event_id": event.id,
                    "updated_at": when,
                }
            )
        elif isinstance(fact, ThirdParty):
            parties = self.rows(ThirdPartyState)
            row = parties.get(session, data.watch, fact.actor)
            if row is None:
                parties.put(
                    {
                        "watch": data.watch,
                        "actor": fact.actor,
                        "kinds": [fact.kind],
                        "first_event_id": event.id,
                        "first_seen": when,
                    }
                )
            elif fact.kind not in row["kinds"]:
                parties.put({**row, "kinds": sorted({*row["kinds"], fact.kind})})

    def _casualties(
        self, session: Session, watch: str, fact: Casualties, event_id: str, when: datetime | None
    ) -> None:
        if not fact.cumulative or fact.historical or fact.count is None:
            return
        series = self.rows(SeriesState)
        key = (watch, fact.side or "-", fact.category, fact.outcome)
        row = series.get(session, *key)
        if row is None:
            row = {
                "watch": watch,
                "side": key[1],
                "category": fact.category,
                "outcome": fact.outcome,
                "count": fact.count,
                "reports": 1,
                "last_event_id": event_id,
                "updated_at": when,
            }
        else:
            row = {**row, "reports": row["reports"] + 1}
            if not _older(when, row["updated_at"]):
                row.update(count=fact.count, last_event_id=event_id, updated_at=when)
        series.put(row)


def _older(when: datetime | None, than: datetime | None) -> bool:
    """Published before what the row holds (rows from SQLite come back naive: UTC)."""
    if when is None or than is None:
        return False
    # Aware datetimes compare by instant whatever their zone: only naive ones need one.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if than.tzinfo is None:
        than = than.replace(tzinfo=UTC)
    return when < than


class FeedHealthProjection(Consumer):
    name = "feed_health"
    tables = (FeedHealth,)
    types = ("FeedPolled", "FeedFailed")

    def apply(self, session: Session, event: StoredEvent) -> None:
        data = event.data
        assert isinstance(data, FeedPolled | FeedFailed)
        feeds = self.rows(FeedHealth)
        row = dict(feeds.get(session, data.feed) or NEW_FEED, feed=data.feed)
        row["url"] = row["url"] or data.url
        row["polls"] += 1
        if isinstance(data, FeedPolled):
            row.update(
                last_success=event.recorded_at, consecutive_failures=0, last_items=data.items
            )
        else:
            row.update(last_error=data.reason, last_error_at=event.recorded_at)
            row["consecutive_failures"] += 1
        feeds.put(row)


NEW_FEED: dict[str, Any] = {
    "url": None,
    "last_success": None,
    "last_error": None,
    "last_error_at": None,
    "consecutive_failures": 0,
    "polls": 0,
    "last_items": 0,
}


class AlertsProjection(Consumer):
    name = "alerts"
    tables = (AlertState,)
    types = ("AlertRaised",)

    def apply(self, session: Session, event: StoredEvent) -> None:
        data = event.data
        assert isinstance(data, AlertRaised)
        self.rows(AlertState).put(
            {
                "alert_id": data.alert_id,
                "seq": event.seq,
                "rule": data.rule,
                "severity": data.severity,
                "watch": data.watch,
                "title": data.title,
                "dedup_key": data.dedup_key,
                "raised_at": event.occurred_at,
            }
        )


def all_projections() -> list[Consumer]:
    return [ConflictState(), FeedHealthProjection(), AlertsProjection()]
