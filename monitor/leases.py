"""Coordination between replicas: the shared queue of due feeds, singleton locks, and the
SQLite one-replica rule.

The ``feed_leases`` table is the poll schedule of every replica: one row per feed with its
next due time. A replica's idle poll worker *claims* the earliest due feed that nobody holds
(``claim_next``: one ``UPDATE ... RETURNING`` whose subquery takes the row with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer and one replica), so each due
poll is made by exactly one replica and no replica tries a feed another one is polling. A lease
whose replica died expires and its feed, never moved on, is the most overdue in the queue:
the next claim anywhere takes it. The lease's ``version`` is a fencing token: a replica that
stalled past its lease cannot record an outcome over the replica that took over.

Times come from the database clock on PostgreSQL, so replicas on machines whose clocks
disagree still agree on who holds what and what is due.

Work that must run on one replica at a time (rule evaluation, health checks) takes a
PostgreSQL advisory lock with ``singleton``; others skip their turn instead of waiting.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import random
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Interval,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlmodel import Session, col

from monitor.config import FeedConfig
from monitor.events import as_utc
from monitor.store.db import StoreError, rowcount
from monitor.store.log import EventStore
from monitor.store.tables import FeedLease

if TYPE_CHECKING:
    from monitor.sources.polling import PollOutcome

log = logging.getLogger(__name__)

LEASES = FeedLease.__table__  # type: ignore[attr-defined]
CLAIMED = (
    LEASES.c.feed,
    LEASES.c.version,
    LEASES.c.lease_until,
    LEASES.c.etag,
    LEASES.c.last_modified,
    LEASES.c.consecutive_failures,
)


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def db_now(session: Session) -> datetime:
    """The database's clock on PostgreSQL (one clock for all replicas), ours on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(select(func.now())).scalar_one()
        return as_utc(value) or datetime.now(UTC)
    return datetime.now(UTC)


class Lease(BaseModel):
    """A claim on one feed's next poll, valid while ``version`` is the row's version."""

    feed: str
    owner: str
    version: int
    claimed_at: datetime
    until: datetime
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0


# A feed whose due poll has waited this many of its intervals is lagging: a source health alert
# once per episode (one overdue due time), resolved when a poll completes.
LAGGING_AFTER = 2


def lag(due: datetime | None, now: datetime) -> float:
    """A feed's lag, in seconds: how long its next poll has been due (``next_due``) and not
    yet completed; 0 while it is not due. ``next_due`` moves on only when a poll completes
    (an interval after that poll began, less a small allowance for jitter; the backoff after a
    failure; the moment a poll was asked for), so the lag covers waiting in a queue, a poll
    in flight, and a feed no running replica is polling. A feed backing off is not lagging."""
    if due is None:
        return 0.0
    return max(0.0, (now - due).total_seconds())


def poll_gap(feed: FeedConfig, spread: float = 0.0) -> timedelta:
    """Time from one poll's claim to the feed being due again: its interval plus ``spread``
    (in [0, 1)) of its jitter, so that feeds of one host do not stay in lockstep."""
    return feed.interval + timedelta(seconds=feed.jitter_seconds() * spread)


def backoff(feed: FeedConfig, failures: int, cap: timedelta) -> timedelta:
    """Exponential backoff for a failing feed: the gap, doubled per further failure, capped."""
    if failures <= 1:
        return poll_gap(feed)
    grown = poll_gap(feed) + feed.interval * (2 ** min(failures - 1, 30) - 1)
    return min(grown, max(cap, poll_gap(feed)))


class FeedLeases:
    """Claims, renews and completes feed polls for one replica (``owner``)."""

    def __init__(
        self,
        store: EventStore,
        owner: str,
        lease_period: timedelta = timedelta(minutes=2),
        max_backoff: timedelta = timedelta(hours=6),
        spread: Callable[[], float] = random.random,
    ) -> None:
        """``spread``: picks each poll's share of its feed's jitter (``poll_gap``)."""
        self.store = store
        self.owner = owner
        self.lease_period = lease_period
        self.max_backoff = max_backoff
        self.spread = spread
        self.postgres = store.engine.dialect.name == "postgresql"
        self._statements: dict[tuple[Any, ...], Any] = {}

    def ensure(self, feeds: Sequence[FeedConfig]) -> None:
        """A row for every configured feed, due at once when new (one statement for all)."""
        if not feeds:
            return
        insert = pg_insert if self.postgres else sqlite_insert
        with self.store.transaction() as session:
            now = db_now(session)
            rows = [
                {
                    "feed": feed.name,
                    "version": 0,
                    "next_due": now,
                    "last_items": 0,
                    "consecutive_failures": 0,
                }
                for feed in feeds
            ]
            session.connection().execute(insert(LEASES).on_conflict_do_nothing(), rows)

    # The statements below are built once per shape and reused with new parameters: built
    # afresh for every poll, constructing them and their cache keys cost more CPU than
    # running them. "now" is the database's clock on PostgreSQL (one clock for all replicas,
    # read by the statement itself), ours on SQLite (a parameter).

    def _now(self) -> Any:
        if self.postgres:
            return func.now().cast(LEASES.c.next_due.type)
        return bindparam("now", type_=LEASES.c.next_due.type)

    def _later(self, name: str) -> Any:
        """``now`` plus the interval parameter ``name`` (PostgreSQL), or the time itself,
        computed here (SQLite)."""
        if self.postgres:
            return self._now() + bindparam(name, type_=Interval())
        return bindparam(name, type_=LEASES.c.next_due.type)

    def _params(self, **deltas: timedelta) -> dict[str, Any]:
        if self.postgres:
            return dict(deltas)
        now = datetime.now(UTC)
        return {"now": now, **{k: now + v for k, v in deltas.items()}}

    def _statement(self, shape: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        stmt = self._statements.get(shape)
        if stmt is None:
            stmt = self._statements[shape] = build()
        return stmt

    def claim(self, feed: FeedConfig, *, force: bool = False) -> Lease | None:
        """The lease on ``feed`` when it is due (or ``force``: made due now) and free.

        One ``UPDATE ... RETURNING``: the row is locked by the update itself, and a replica
        that met it locked sees the winner's lease once it commits and matches nothing."""
        stmt = self._statement(("claim", force), lambda: self._claim_statement(force))
        with self.store.transaction() as session:
            conn = session.connection()
            params = {"b_feed": feed.name, "b_owner": self.owner}
            params.update(self._params(until=self.lease_period))
            row = conn.execute(stmt, params).first()
        return None if row is None else self._lease(row)

    def claim_next(self) -> tuple[Lease | None, float]:
        """The lease on the earliest due feed nobody holds (an abandoned poll's feed, whose
        lease expired, included), or None and the seconds until the next feed falls due as
        things stand (another replica may take it first; a lease may expire sooner)."""
        stmt = self._statement(("next",), self._next_statement)
        with self.store.transaction() as session:
            conn = session.connection()
            params = {"b_owner": self.owner, **self._params(until=self.lease_period)}
            row = conn.execute(stmt, params).first()
            if row is not None:
                return self._lease(row), 0.0
            wait = self._statement(("wait",), self._wait_statement)
            seconds = conn.execute(wait, self._params()).scalar()
        return None, float("inf") if seconds is None else max(0.0, float(seconds))

    def _free(self, now: Any) -> ColumnElement[bool]:
        return or_(LEASES.c.lease_until.is_(None), LEASES.c.lease_until <= now)

    def _next_statement(self) -> Any:
        t, now = LEASES, self._now()
        head = (
            select(t.c.feed)
            .where(t.c.next_due <= now, self._free(now))
            .order_by(t.c.next_due)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return (
            update(t)
            .where(t.c.feed == head)
            .values(owner=bindparam("b_owner"), lease_until=self._later("until"))
            .values(version=t.c.version + 1)
            .returning(*CLAIMED)
        )

    def _wait_statement(self) -> Any:
        t, now = LEASES, self._now()
        if self.postgres:
            seconds: ColumnElement[Any] = func.extract("epoch", func.min(t.c.next_due) - now)
        else:
            seconds = (func.julianday(func.min(t.c.next_due)) - func.julianday(now)) * 86400.0
        return select(seconds).where(self._free(now))

    def request(self, feed: str) -> bool:
        """``monitor poll``: make ``feed`` due now, for whichever replica claims next. A
        feed being polled stays due after that poll (``complete`` sees the request), so the
        request is served even when another replica held the feed. False: unknown feed."""
        stmt = self._statement(
            ("request",),
            lambda: (
                update(LEASES)
                .where(LEASES.c.feed == bindparam("b_feed"))
                .values(next_due=self._now())
            ),
        )
        with self.store.transaction() as session:
            result = session.connection().execute(stmt, {"b_feed": feed, **self._params()})
            return bool(result.rowcount)

    def park(self, lease: Lease) -> None:
        """Give back a claimed feed this replica does not poll (removed from its config): due
        again one lease period from now, so the queue does not hand it out in a loop."""
        with self.store.transaction() as session:
            session.connection().execute(
                update(LEASES)
                .where(self._held())
                .values(owner=None, lease_until=None, version=LEASES.c.version + 1)
                .values(next_due=self._later("until")),
                {**self._fence(lease), **self._params(until=self.lease_period)},
            )

    def backlog(self) -> tuple[int, float]:
        """Feeds due now that nobody holds, and how long the oldest of them has been due:
        the shared queue's backlog, the same for every replica."""
        stmt = self._statement(("backlog",), self._backlog_statement)
        with self.store.read_connection() as connection:  # a read: no write turn taken
            depth, oldest = connection.execute(stmt, self._params()).one()
        return int(depth or 0), max(0.0, float(oldest or 0.0))

    def _backlog_statement(self) -> Any:
        t, now = LEASES, self._now()
        if self.postgres:
            age: ColumnElement[Any] = func.extract("epoch", now - func.min(t.c.next_due))
        else:
            age = (func.julianday(now) - func.julianday(func.min(t.c.next_due))) * 86400.0
        return select(func.count(), age).where(t.c.next_due <= now, self._free(now))

    def _claim_statement(self, force: bool) -> Any:
        t, now = LEASES, self._now()
        where = and_(
            t.c.feed == bindparam("b_feed"),
            or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
        )
        values: dict[str, Any] = {
            "owner": bindparam("b_owner"),
            "lease_until": self._later("until"),
            "version": t.c.version + 1,
        }
        if force:
            # A requested poll is a due poll: if this one is abandoned mid-way, whoever
            # takes the feed over finds it due, and lag is counted from the request.
            values["next_due"] = case((t.c.next_due > now, now), else_=t.c.next_due)
        else:
            where = and_(where, t.c.next_due <= now)
        return update(t).where(where).values(**values).returning(*CLAIMED)

    def _lease(self, row: Any) -> Lease:
        until = as_utc(row.lease_until) or datetime.now(UTC)
        return Lease(
            feed=row.feed,
            owner=self.owner,
            version=row.version,
            claimed_at=until - self.lease_period,
            until=until,
            etag=row.etag,
            last_modified=row.last_modified,
            failures=row.consecutive_failures,
        )

    def renew(self, lease: Lease) -> bool:
        """Extend a lease still held; False when it was lost (expired and taken over)."""
        stmt = self._statement(
            ("renew",),
            lambda: (
                update(LEASES)
                .where(self._held())
                .values(lease_until=self._later("until"))
                .returning(LEASES.c.lease_until)
            ),
        )
        with self.store.transaction() as session:
            params = {**self._fence(lease), **self._params(until=self.lease_period)}
            until = session.connection().execute(stmt, params).scalar()
        if until is not None:
            lease.until = as_utc(until) or lease.until
            return True
        log.warning("lease on feed %s was lost (version %d)", lease.feed, lease.version)
        return False

    def complete(self, lease: Lease, feed: FeedConfig, outcome: PollOutcome) -> bool:
        """Record a poll's outcome and schedule the next one; False when fenced out.

        One ``UPDATE ... RETURNING``, fenced by the lease's version: while it holds, nobody
        else wrote the row's schedule, so the failures counted at the claim are still true."""
        shape = (
            "complete",
            outcome.ok,
            outcome.ok and outcome.not_modified,
            outcome.ok and bool(outcome.new_items),
            outcome.ok and outcome.complete,
        )
        stmt = self._statement(shape, lambda: self._complete_statement(*shape[1:]))
        params: dict[str, Any] = self._fence(lease)
        params.update(b_polled_by=self.owner, claimed_at=lease.claimed_at)
        if outcome.ok:
            params["items"] = outcome.items
            if outcome.complete:
                params.update(b_etag=outcome.etag, b_last_modified=outcome.last_modified)
                params["due"] = lease.claimed_at + poll_gap(feed, self.spread())
            params.update(self._params())
        else:
            failures = lease.failures + 1
            wait = backoff(feed, failures, self.max_backoff)
            if outcome.retry_after is not None:
                wait = max(wait, timedelta(seconds=outcome.retry_after))
            params.update(
                failures=failures,
                error=outcome.error,
                error_kind=outcome.error_kind,
            )
            params.update(self._params(wait=wait))
        with self.store.transaction() as session:
            row = session.connection().execute(stmt, params).first()
        if row is None:
            log.warning("poll of %s finished after its lease was lost: not recorded", feed.name)
            return False
        return True

    def _complete_statement(self, ok: bool, not_modified: bool, new: bool, whole: bool) -> Any:
        t, now = LEASES, self._now()
        claimed_at = bindparam("claimed_at", type_=t.c.next_due.type)
        values: dict[str, Any] = {
            "owner": None,
            "lease_until": None,
            "version": t.c.version + 1,
            "last_polled_at": now,
            "polled_by": bindparam("b_polled_by"),
        }
        if ok:
            values.update(
                last_success_at=now,
                consecutive_failures=0,
                failing_since=None,
                last_error=None,
                last_error_kind=None,
                last_new_at=now if new else func.coalesce(t.c.last_new_at, now),
            )
            if not not_modified:
                values["last_items"] = bindparam("items")
            if whole:
                values.update(
                    etag=bindparam("b_etag"),
                    last_modified=bindparam("b_last_modified"),
                    next_due=bindparam("due", type_=t.c.next_due.type),
                )
            else:
                values["next_due"] = now
        else:
            values.update(
                consecutive_failures=bindparam("failures"),
                failing_since=func.coalesce(t.c.failing_since, claimed_at),
                last_error=bindparam("error"),
                last_error_kind=bindparam("error_kind"),
                next_due=self._later("wait"),
            )
        # ``monitor poll`` asked for this feed while it was being polled (``request`` moved
        # its due time past this claim): it stays due, to be polled again at once.
        values["next_due"] = case(
            (t.c.next_due > claimed_at, t.c.next_due), else_=values["next_due"]
        )
        return update(t).where(self._held()).values(**values).returning(t.c.next_due)

    def release(self, lease: Lease) -> None:
        """Give a lease back unused: the feed stays due, another replica may take it now."""
        with self.store.transaction() as session:
            session.connection().execute(
                update(LEASES)
                .where(self._held())
                .values(owner=None, lease_until=None, version=LEASES.c.version + 1),
                self._fence(lease),
            )

    def release_all(self) -> int:
        """On shutdown: every lease this replica still holds, given back and fenced."""
        with self.store.transaction() as session:
            result = session.execute(
                update(FeedLease)
                .where(col(FeedLease.owner) == self.owner)
                .values(owner=None, lease_until=None, version=col(FeedLease.version) + 1)
            )
            return rowcount(result)

    def states(self) -> list[FeedLease]:
        with self.store.read_session() as session:
            return list(session.execute(select(FeedLease).order_by(col(FeedLease.feed))).scalars())

    @staticmethod
    def _held() -> ColumnElement[bool]:
        """The row as a lease left it (parameters from ``_fence``): still that holder's."""
        return and_(
            LEASES.c.feed == bindparam("lease_feed"),
            LEASES.c.version == bindparam("lease_version"),
            LEASES.c.owner == bindparam("lease_owner"),
        )

    @staticmethod
    def _fence(lease: Lease) -> dict[str, Any]:
        return {
            "lease_feed": lease.feed,
            "lease_version": lease.version,
            "lease_owner": lease.owner,
        }


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a name."""
    return int.from_bytes(
        hashlib.sha256(f"monitor:{name}".encode()).digest()[:8], "big", signed=True
    )


@contextmanager
def singleton(store: EventStore, name: str) -> Iterator[bool]:
    """Yields True on the one replica that holds the ``name`` lock now, False elsewhere.

    PostgreSQL: a session advisory lock, tried without waiting and released on exit (or by
    the server when the process dies). SQLite: always True (one replica only).
    """
    if store.engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with store.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


class ReplicaLockError(StoreError):
    """A second daemon on one SQLite database: refused, with what to do instead."""


class SqliteReplicaLock:
    """An exclusive ``flock`` beside the SQLite file for the daemon's lifetime.

    SQLite serialises writers and has no ``SKIP LOCKED``: two daemons on one file would poll
    everything twice. The lock is released by the kernel when the process dies.
    """

    def __init__(self, url: str) -> None:
        self.database = make_url(url).database or ""
        in_memory = self.database in ("", ":memory:") or self.database.startswith("file:")
        self.path = None if in_memory else Path(f"{self.database}.daemon.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no var/
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ReplicaLockError(
                f"another monitor daemon ({holder}) is already running on "
                f"{self.database}: SQLite supports one replica. "
                "Stop it first, or use PostgreSQL (db = postgresql://...) to run several."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
