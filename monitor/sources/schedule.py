"""A replica's side of the poll schedule: its poll workers take the next due feed from the
shared queue in the database (``FeedLeases.claim_next``).

Why the database is the queue: with a queue per replica, every replica tried every feed and
all but one of those tries lost the claim, so a poll cost one claim per replica. Here an idle
worker claims the earliest due feed nobody holds (``SKIP LOCKED`` on PostgreSQL), so each
claim is a poll, a late feed is simply the head of the queue (nothing due is skipped), and a
dead replica's abandoned poll, whose lease ran out, is the most overdue feed there: whoever
claims next takes it over. While feeds are due, a replica's workers claim side by side; when
none is, one idle worker of the replica waits for the next due time (at most ``idle`` seconds,
so that others' changes are seen) while the other idle workers wait for it.

``monitor poll FEED`` is a request in the database (the feed made due now, kept due past a
poll in flight) and a local one: this replica's next free worker tries it first, ahead of
feeds that are merely due.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from monitor.config import FeedConfig
from monitor.leases import FeedLeases, Lease

IDLE_WAIT = 1.0  # seconds: the longest an idle replica goes without looking at the queue


@dataclass(frozen=True)
class Backlog:
    """Feeds due now and not yet started, and how long the oldest of them has been due."""

    depth: int
    oldest_age: float


class DueQueue:
    """The feeds this replica's workers poll next, claimed from the shared schedule."""

    def __init__(
        self,
        leases: FeedLeases,
        feeds: Callable[[], Mapping[str, FeedConfig]],
        *,
        idle: float = IDLE_WAIT,
    ) -> None:
        """``feeds``: the configured feeds by name, read at every claim (reloads apply at
        once); ``idle``: the longest a waiting worker goes without asking the database."""
        self.leases = leases
        self.feeds = feeds
        self.idle = idle
        self._requests: deque[str] = deque()
        self._claiming = threading.Lock()  # one idle worker at a time waits for the queue
        self._wake = threading.Event()
        self._closed = False
        self._backlog = Backlog(0, 0.0)

    def take(self, timeout: float | None = None) -> tuple[FeedConfig, Lease] | None:
        """Wait for a due feed (or a request), claim it and return it with its lease; None
        on timeout or close. A claimed feed this replica does not know (removed from its
        config) is parked for another replica, or a later config, to take.

        While feeds are due, workers claim side by side (the database keeps their claims
        apart); when none is, one worker at a time waits for the next due time and the
        others wait for it, so an idle replica does not ask the database once per worker."""
        got = self._claim()
        if not isinstance(got, float):
            return got
        with self._claiming:
            waited = 0.0
            while not self._closed:
                got = self._claim()  # again: the worker that waited before may have left some
                if not isinstance(got, float):
                    return got
                wait = min(got, self.idle)
                if timeout is not None:
                    if waited >= timeout:
                        return None
                    wait = min(wait, timeout - waited)
                self._wake.wait(wait)
                self._wake.clear()
                waited += wait
            return None

    def _claim(self) -> tuple[FeedConfig, Lease] | float | None:
        """A requested or due feed with its lease; else the seconds until the next falls
        due (float); None once closed."""
        while not self._closed:
            got = self._requested()
            if got is not None:
                return got
            lease, due_in = self.leases.claim_next()
            if lease is None:
                return due_in
            feed = self.feeds().get(lease.feed)
            if feed is not None:
                return feed, lease
            self.leases.park(lease)
        return None

    def _requested(self) -> tuple[FeedConfig, Lease] | None:
        """A feed ``request``ed here, claimed even if not due; a request whose feed another
        replica holds is left to the database (the feed stays due after that poll)."""
        while self._requests:
            name = self._requests.popleft()
            feed = self.feeds().get(name)
            if feed is None:
                continue
            lease = self.leases.claim(feed, force=True)
            if lease is not None:
                return feed, lease
        return None

    def request(self, name: str) -> bool:
        """``monitor poll``: poll ``name`` as soon as a worker is free, due or not. False for
        a feed not in the schedule."""
        if not self.leases.request(name):
            return False
        self._requests.append(name)
        self._wake.set()
        return True

    def wake(self) -> None:
        """Look at the queue now (a reload added feeds, due at once)."""
        self._wake.set()

    def close(self) -> None:
        """Stop handing out feeds: waiting ``take``s return None."""
        self._closed = True
        self._wake.set()

    def refresh_backlog(self) -> Backlog:
        """Read the shared queue's backlog (``backlog`` then answers from memory)."""
        depth, oldest = self.leases.backlog()
        self._backlog = Backlog(depth, oldest)
        return self._backlog

    def backlog(self) -> Backlog:
        """The backlog as last read: fast enough for every scrape."""
        return self._backlog
