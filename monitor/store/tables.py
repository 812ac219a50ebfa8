"""Every table the daemon keeps, in one metadata so one migration history covers them.

The ``events`` table is the source of truth; everything else is derived from it (projections,
rule state) or is a work queue whose rows are facts-in-waiting (the outbox).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    UniqueConstraint,
    inspect,
)
from sqlmodel import Field, SQLModel

# Log positions are 64-bit. On SQLite the column must stay plain INTEGER: only
# ``INTEGER PRIMARY KEY`` is the rowid alias (already 64-bit), BIGINT would add a second index.
Position = BigInteger().with_variant(Integer(), "sqlite")


def _json(nullable: bool = False, name: str | None = None) -> Any:
    if name:
        return Field(default_factory=dict, sa_column=Column(name, JSON, nullable=nullable))
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=nullable))


def _seq(*, primary_key: bool = False, index: bool = False) -> Any:
    default = ... if primary_key else 0
    return Field(
        default=default,
        sa_column=Column(
            Position,
            primary_key=primary_key,
            autoincrement=False,
            nullable=False,
            index=index or None,
        ),
    )


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None if nullable else ...,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("stream", "stream_version", name="uq_events_stream_version"),
        Index("ix_events_type_seq", "type", "seq"),
    )

    seq: int = _seq(primary_key=True)
    id: str = Field(unique=True, max_length=36)
    stream: str = Field(max_length=200)
    stream_version: int
    type: str = Field(max_length=64)
    schema_version: int
    occurred_at: datetime | None = _ts()
    recorded_at: datetime = _ts(nullable=False)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)
    data: dict[str, Any] = _json()
    meta: dict[str, Any] = _json(name="metadata")


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a table model: bulk inserts by column name, dumps of every column.

    SQLModel's types do not declare ``__table__``; the mapper's table is the same object.
    """
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


EVENTS = table_of(EventRow)


class LogHead(SQLModel, table=True):
    """One row holding the last assigned ``seq``: appenders lock it, so commits are ordered."""

    __tablename__ = "log_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = _seq()


class Checkpoint(SQLModel, table=True):
    """How far a consumer has read the log, written in the same transaction as its state."""

    __tablename__ = "checkpoints"

    name: str = Field(primary_key=True, max_length=100)
    seq: int = _seq()
    version: int = 1


class SeriesState(SQLModel, table=True):
    """Conflict state: the latest cumulative figure of each casualty series."""

    __tablename__ = "proj_series"

    watch: str = Field(primary_key=True, max_length=100)
    side: str = Field(primary_key=True, max_length=100)
    category: str = Field(primary_key=True, max_length=20)
    outcome: str = Field(primary_key=True, max_length=20)
    count: int
    reports: int = 1
    last_event_id: str = Field(max_length=36)
    updated_at: datetime | None = _ts()


class CeasefireState(SQLModel, table=True):
    __tablename__ = "proj_ceasefire"

    watch: str = Field(primary_key=True, max_length=100)
    status: str = Field(max_length=20)
    broker: str | None = Field(default=None, max_length=20)
    last_event_id: str = Field(max_length=36)
    updated_at: datetime | None = _ts()


class ThirdPartyState(SQLModel, table=True):
    __tablename__ = "proj_third_parties"

    watch: str = Field(primary_key=True, max_length=100)
    actor: str = Field(primary_key=True, max_length=20)
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    first_event_id: str = Field(max_length=36)
    first_seen: datetime | None = _ts()


class FeedHealth(SQLModel, table=True):
    __tablename__ = "proj_feed_health"

    feed: str = Field(primary_key=True, max_length=200)
    url: str
    last_success: datetime | None = _ts()
    last_error: str | None = None
    last_error_at: datetime | None = _ts()
    consecutive_failures: int = 0
    polls: int = 0
    last_items: int = 0


class AlertState(SQLModel, table=True):
    """Alerts raised, by id: what `monitor alerts list` shows next to delivery state."""

    __tablename__ = "proj_alerts"

    alert_id: str = Field(primary_key=True, max_length=36)
    seq: int = _seq(index=True)
    rule: str = Field(max_length=200)
    severity: str = Field(max_length=20)
    watch: str | None = Field(default=None, max_length=100)
    title: str
    dedup_key: str = Field(max_length=300)
    raised_at: datetime | None = _ts()


class RuleState(SQLModel, table=True):
    """Per-rule memory (series values, values seen, last fire time), keyed by rule and key."""

    __tablename__ = "rule_state"

    rule: str = Field(primary_key=True, max_length=200)
    key: str = Field(primary_key=True, max_length=300)
    value: dict[str, Any] = _json()


class OutboxRow(SQLModel, table=True):
    """One pending delivery of one alert to one channel (or, ``kind="report"``, one health
    report about the given-up delivery in row ``ref``; its ``alert_id`` is then the report's id).

    ``attempts`` counts claims and is the fencing token: a worker records its attempt only
    while the row still carries the number it claimed. ``sent_at`` and ``message_id`` feed
    grouping and rate limits; ``requeued_at`` restarts the maximum age after a manual retry.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", name="uq_outbox_alert_channel"),
        Index("ix_outbox_channel_sent_at", "channel", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(max_length=36, index=True)
    channel: str = Field(max_length=100)
    status: str = Field(default="pending", max_length=20, index=True)
    attempts: int = 0
    next_attempt_at: datetime = _ts(nullable=False)
    lease_until: datetime | None = _ts()
    last_error: str | None = None
    created_at: datetime = _ts(nullable=False)
    kind: str = Field(default="alert", max_length=20, sa_column_kwargs={"server_default": "alert"})
    ref: int | None = None
    lease_owner: str | None = Field(default=None, max_length=200)
    message_id: str | None = Field(default=None, max_length=64)
    last_attempt_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    requeued_at: datetime | None = _ts()


class FeedLease(SQLModel, table=True):
    """The shared polling schedule of every replica: one row per feed.

    A replica polls a feed only while it holds the row's lease (``owner``, ``lease_until``),
    claimed when ``next_due`` has passed. ``version`` goes up on every claim and release and
    fences the result: a replica whose lease expired cannot write its outcome over the next
    holder's. The row also remembers what polite fetching needs (validators for conditional
    GET, failures for backoff) and what health needs (last success, failing since, silence).
    """

    __tablename__ = "feed_leases"

    feed: str = Field(primary_key=True, max_length=200)
    owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _ts()
    version: int = 0
    next_due: datetime = _ts(nullable=False, index=True)  # the shared queue of due polls
    etag: str | None = Field(default=None, max_length=500)
    last_modified: str | None = Field(default=None, max_length=100)
    last_polled_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    last_new_at: datetime | None = _ts()
    last_items: int = 0
    consecutive_failures: int = 0
    failing_since: datetime | None = _ts()
    last_error: str | None = None
    last_error_kind: str | None = Field(default=None, max_length=40)
    polled_by: str | None = Field(default=None, max_length=200)
    health_alert: str | None = Field(default=None, max_length=300)
