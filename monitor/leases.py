"""Coordination between replicas: feed leases, singleton locks, and the SQLite one-replica rule.

Every replica keeps every feed in its own poll queue (``monitor.sources.schedule``), and each
try first *claims* its feed here. A claim succeeds only when the feed is due and nobody holds
its lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer anyway), so each
due poll is made by exactly one replica. The lease's ``version`` is a fencing token: a replica
that stalled past its lease cannot record an outcome over the replica that took over.

Times come from the database clock on PostgreSQL, so replicas on machines whose clocks
disagree still agree on who holds what.

Work that must run on one replica at a time (rule evaluation, health checks) takes a
PostgreSQL advisory lock with ``singleton``; others skip their turn instead of waiting.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, func, select, text, update
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


def poll_gap(feed: FeedConfig) -> timedelta:
    """Time from one claim to the feed being due again.

    A little less than the interval (less the jitter and 5 %, at most 5 s), so that the
    polling replica's own next scheduled run, which comes one interval later plus up to the
    jitter, always finds the feed due; other replicas can take it no sooner than this gap.
    """
    interval = feed.interval.total_seconds()
    slack = min(5.0, interval * 0.05)
    return timedelta(seconds=max(interval - feed.jitter_seconds() - slack, interval / 2))


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
    ) -> None:
        self.store = store
        self.owner = owner
        self.lease_period = lease_period
        self.max_backoff = max_backoff
        self.postgres = store.engine.dialect.name == "postgresql"
        # What the last claim or completion of each feed learned about its next due time, so
        # the poll queue need not ask the database again after every try (see ``told``).
        self._told: dict[str, float | None] = {}

    def told(self, feed: str) -> tuple[bool, float | None]:
        """Seconds until ``feed`` is due (None while another replica holds it), as this
        replica's last refused claim or completed poll of it saw, given once; (False, None)
        when nothing was learned since (then ask ``due_in``)."""
        if feed in self._told:
            return True, self._told.pop(feed)
        return False, None

    def ensure(self, feeds: Sequence[FeedConfig]) -> None:
        """A row for every configured feed, due at once when new."""
        insert = pg_insert if self.postgres else sqlite_insert
        with self.store.transaction() as session:
            now = db_now(session)
            for feed in feeds:
                session.execute(
                    insert(FeedLease)
                    .values(
                        feed=feed.name,
                        version=0,
                        next_due=now,
                        last_items=0,
                        consecutive_failures=0,
                    )
                    .on_conflict_do_nothing()
                )

    def claim(self, feed: FeedConfig, *, force: bool = False) -> Lease | None:
        """The lease on ``feed`` when it is due (or ``force``: made due now) and free."""
        with self.store.transaction() as session:
            now = db_now(session)
            stmt = select(FeedLease).where(col(FeedLease.feed) == feed.name)
            if self.postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            row = session.execute(stmt.execution_options(populate_existing=True)).scalar()
            self._told.pop(feed.name, None)
            if row is None:
                self._told[feed.name] = None  # another replica is claiming it right now
                return None  # (or an unknown feed)
            held = as_utc(row.lease_until)
            if held is not None and held > now:
                self._told[feed.name] = None
                return None
            if (as_utc(row.next_due) or now) > now:
                if not force:
                    self._told[feed.name] = ((as_utc(row.next_due) or now) - now).total_seconds()
                    return None
                # A requested poll is a due poll: if this one is abandoned mid-way, whoever
                # takes the feed over finds it due, and lag is counted from the request.
                row.next_due = now
            row.owner = self.owner
            row.lease_until = now + self.lease_period
            row.version += 1
            session.add(row)
            return Lease(
                feed=feed.name,
                owner=self.owner,
                version=row.version,
                claimed_at=now,
                until=now + self.lease_period,
                etag=row.etag,
                last_modified=row.last_modified,
                failures=row.consecutive_failures,
            )

    def renew(self, lease: Lease) -> bool:
        """Extend a lease still held; False when it was lost (expired and taken over)."""
        with self.store.transaction() as session:
            now = db_now(session)
            result = session.execute(
                update(FeedLease)
                .where(self._held(lease))
                .values(lease_until=now + self.lease_period)
            )
            if rowcount(result):
                lease.until = now + self.lease_period
                return True
        log.warning("lease on feed %s was lost (version %d)", lease.feed, lease.version)
        return False

    def complete(self, lease: Lease, feed: FeedConfig, outcome: PollOutcome) -> bool:
        """Record a poll's outcome and schedule the next one; False when fenced out."""
        with self.store.transaction() as session:
            now = db_now(session)
            stmt = select(FeedLease).where(self._held(lease))
            if self.postgres:
                stmt = stmt.with_for_update()
            row = session.execute(stmt.execution_options(populate_existing=True)).scalar()
            if row is None:
                log.warning("poll of %s finished after its lease was lost: not recorded", feed.name)
                self._told[feed.name] = None
                return False
            row.owner, row.lease_until, row.version = None, None, row.version + 1
            row.last_polled_at, row.polled_by = now, self.owner
            if outcome.ok:
                row.last_success_at = now
                row.consecutive_failures, row.failing_since = 0, None
                row.last_error = row.last_error_kind = None
                if not outcome.not_modified:
                    row.last_items = outcome.items
                if outcome.new_items or row.last_new_at is None:
                    row.last_new_at = now
                if outcome.complete:
                    row.etag, row.last_modified = outcome.etag, outcome.last_modified
                    row.next_due = lease.claimed_at + poll_gap(feed)
                else:
                    row.next_due = now
            else:
                row.consecutive_failures += 1
                row.failing_since = as_utc(row.failing_since) or lease.claimed_at
                row.last_error, row.last_error_kind = outcome.error, outcome.error_kind
                due = now + backoff(feed, row.consecutive_failures, self.max_backoff)
                if outcome.retry_after is not None:
                    due = max(due, now + timedelta(seconds=outcome.retry_after))
                row.next_due = due
            session.add(row)
            self._told[feed.name] = max(0.0, ((as_utc(row.next_due) or now) - now).total_seconds())
            return True

    def release(self, lease: Lease) -> None:
        """Give a lease back unused: the feed stays due, another replica may take it now."""
        with self.store.transaction() as session:
            session.execute(
                update(FeedLease)
                .where(self._held(lease))
                .values(owner=None, lease_until=None, version=col(FeedLease.version) + 1)
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

    def abandoned(self) -> list[str]:
        """Feeds whose poll was claimed and never completed, with the lease now expired: the
        replica died or stalled mid-poll. Their ``next_due`` was never moved on, so whoever
        claims them next polls at once."""
        with self.store.read_session() as session:
            now = db_now(session)
            stmt = select(col(FeedLease.feed)).where(
                col(FeedLease.owner).is_not(None), col(FeedLease.lease_until) < now
            )
            return list(session.execute(stmt).scalars())

    def due_in(self, feeds: Sequence[str] | None = None) -> dict[str, float | None]:
        """Seconds until each feed (all when None) is due by the database clock (0 when due),
        or None while a live lease holds it; the poll queue times this replica's tries by it."""
        with self.store.read_session() as session:
            now = db_now(session)
            stmt = select(FeedLease)
            if feeds is not None:
                stmt = stmt.where(col(FeedLease.feed).in_(list(feeds)))
            answer: dict[str, float | None] = {}
            for row in session.execute(stmt).scalars():
                held = as_utc(row.lease_until)
                if held is not None and held > now:
                    answer[row.feed] = None
                else:
                    due = as_utc(row.next_due) or now
                    answer[row.feed] = max(0.0, (due - now).total_seconds())
            return answer

    def states(self) -> list[FeedLease]:
        with self.store.read_session() as session:
            return list(session.execute(select(FeedLease).order_by(col(FeedLease.feed))).scalars())

    def _held(self, lease: Lease) -> ColumnElement[bool]:
        return and_(
            col(FeedLease.feed) == lease.feed,
            col(FeedLease.version) == lease.version,
            col(FeedLease.owner) == lease.owner,
        )


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
