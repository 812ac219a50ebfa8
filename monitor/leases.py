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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Connection,
    Interval,
    and_,
    bindparam,
    case,
    func,
    literal,
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
        self._statements: dict[tuple[Any, ...], Any] = {}

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
            if row is None:
                self._told[feed.name] = self._refused(conn, feed.name)
                return None
        self._told.pop(feed.name, None)
        return self._lease(feed.name, row)

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

    def _lease(self, feed: str, row: Any) -> Lease:
        until = as_utc(row.lease_until) or datetime.now(UTC)
        return Lease(
            feed=feed,
            owner=self.owner,
            version=row.version,
            claimed_at=until - self.lease_period,
            until=until,
            etag=row.etag,
            last_modified=row.last_modified,
            failures=row.consecutive_failures,
        )

    def _refused(self, conn: Connection, feed: str) -> float | None:
        """Why a claim found nothing: seconds until the feed is due, None while held."""
        t = LEASES
        now_col = func.now() if self.postgres else literal(None)
        row = conn.execute(
            select(t.c.lease_until, t.c.next_due, now_col).where(t.c.feed == feed)
        ).first()
        if row is None:
            return None  # an unknown feed
        now = (as_utc(row[2]) if self.postgres else None) or datetime.now(UTC)
        held = as_utc(row.lease_until)
        if held is not None and held > now:
            return None
        return max(0.0, ((as_utc(row.next_due) or now) - now).total_seconds())

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
        params["b_polled_by"] = self.owner
        if outcome.ok:
            params["items"] = outcome.items
            if outcome.complete:
                params.update(b_etag=outcome.etag, b_last_modified=outcome.last_modified)
                params["due"] = lease.claimed_at + poll_gap(feed)
            params.update(self._params())
        else:
            failures = lease.failures + 1
            wait = backoff(feed, failures, self.max_backoff)
            if outcome.retry_after is not None:
                wait = max(wait, timedelta(seconds=outcome.retry_after))
            params.update(
                failures=failures,
                claimed_at=lease.claimed_at,
                error=outcome.error,
                error_kind=outcome.error_kind,
            )
            params.update(self._params(wait=wait))
        with self.store.transaction() as session:
            row = session.connection().execute(stmt, params).first()
        if row is None:
            log.warning("poll of %s finished after its lease was lost: not recorded", feed.name)
            self._told[feed.name] = None
            return False
        at = as_utc(row.last_polled_at) or datetime.now(UTC)
        self._told[feed.name] = max(0.0, ((as_utc(row.next_due) or at) - at).total_seconds())
        return True

    def _complete_statement(self, ok: bool, not_modified: bool, new: bool, whole: bool) -> Any:
        t, now = LEASES, self._now()
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
                failing_since=func.coalesce(
                    t.c.failing_since, bindparam("claimed_at", type_=t.c.next_due.type)
                ),
                last_error=bindparam("error"),
                last_error_kind=bindparam("error_kind"),
                next_due=self._later("wait"),
            )
        return (
            update(t)
            .where(self._held())
            .values(**values)
            .returning(t.c.next_due, t.c.last_polled_at)
        )

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
