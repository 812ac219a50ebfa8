"""The poll schedule: one queue of feeds ordered by when this replica should next try each.

Why one queue and not a timer per feed: when thousands of feeds are due together (start-up, a
stall, a slow host), per-feed timers all fire at once, wait behind the workers, and a timer that
cannot start within its grace period is dropped for a whole interval while workers sit idle.
Here a late feed simply stays at the head of the queue: workers take the earliest-due feed as
they free up, so nothing due is skipped, and the backlog (how many are due, how late the oldest
is) is there to read.

The queue only decides when this replica *tries*. Whether a poll happens, and when the feed is
next due (interval, backoff after failures, ``Retry-After``, other replicas' polls), is the feed
lease's business (``monitor.leases``); ``next_attempt`` turns what the lease says into a delay.
Times are seconds on an injectable monotonic clock, so tests need no sleeps.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timing:
    """How often a feed is tried: its interval and the most random delay added to each try."""

    interval: float
    jitter: float = 0.0


@dataclass(frozen=True)
class Backlog:
    """Feeds due now and not yet started, and how long the oldest of them has been due."""

    depth: int
    oldest_age: float


@dataclass
class _Entry:
    timing: Timing
    due: float
    front: bool = False  # asked for by `monitor poll`: served before anything merely due
    asked: float | None = None  # when that request came; it is given up after ``patience``
    running: bool = False
    serving_request: bool = False  # the running try is a `monitor poll` request
    again: bool = False  # asked for while running: due again the moment it ends
    started: float | None = None
    token: int = field(default=0)


def next_attempt(
    timing: Timing,
    *,
    polled: bool,
    elapsed: float,
    due_in: float | None,
    spread: float,
    early: float = 0.0,
) -> float:
    """Seconds from now until this replica should try a feed again.

    ``due_in`` is the lease's view after the attempt: seconds until the feed is due (backoff and
    Retry-After included), or None while another replica holds it. ``spread`` in [0, 1) picks
    the jitter. ``early``: how much sooner than an interval the lease makes a polled feed due
    again (its allowance for jitter). A poll we made is tried again an interval after it
    started, or later when the lease says so; a feed another replica polled is tried when it
    is due plus that allowance, i.e. an interval after that poll began, as its poller does (at
    the bare due time, three replicas polled every feed every 56 s instead of every 60); one
    another replica is polling now is tried an interval later (an abandoned lease is found by
    the daemon's takeover check sooner).
    """
    jitter = timing.jitter * spread
    if polled:
        return max(timing.interval - elapsed, due_in or 0.0) + jitter
    if due_in:
        return due_in + early + jitter
    return timing.interval + jitter


class PollQueue:
    """Feeds by next due time, earliest first; thread-safe; workers ``take`` and ``done``."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        spread: Callable[[], float] = random.random,
        *,
        patience: float = 300.0,
        retry: float = 1.0,
    ) -> None:
        """``patience``: how long a ``monitor poll`` request that could not be served (another
        replica held the feed) keeps being retried, every ``retry`` seconds."""
        self.clock = clock
        self.spread = spread
        self.patience = patience
        self.retry = retry
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[int, float, int, str]] = []
        self._tokens = 0
        self._closed = False
        self._changed = threading.Condition()

    # --- what is scheduled -------------------------------------------------------------------

    def sync(
        self, feeds: Mapping[str, Timing], first_in: Mapping[str, float] | None = None
    ) -> None:
        """Make the queue hold exactly ``feeds`` (start-up and every reload).

        New feeds are due after ``first_in[name]`` seconds (at once when absent); removed feeds
        leave (one being polled finishes and is not put back); a feed whose timing changed and
        is waiting is due again one new interval after its last try started.
        """
        first_in = first_in or {}
        with self._changed:
            now = self.clock()
            for name in set(self._entries) - set(feeds):
                del self._entries[name]
            for name, timing in feeds.items():
                entry = self._entries.get(name)
                if entry is None:
                    self._entries[name] = _Entry(timing, now + max(0.0, first_in.get(name, 0.0)))
                    self._push(name)
                elif entry.timing != timing:
                    entry.timing = timing
                    if not entry.running and not entry.front and entry.started is not None:
                        entry.due = entry.started + timing.interval + timing.jitter * self.spread()
                        self._push(name)
            self._compact()
            self._changed.notify_all()

    def poll_now(self, name: str, *, front: bool = True) -> bool:
        """Make a feed due now. ``front`` is an operator's request (``monitor poll``): it goes
        ahead of every feed that is merely due and is served even when the feed is not due
        (``requested`` tells the worker), retried until served or ``patience`` runs out. A
        feed being polled runs again as soon as that poll ends. False for an unknown feed."""
        with self._changed:
            entry = self._entries.get(name)
            if entry is None:
                return False
            if front:
                entry.front, entry.asked = True, self.clock()
            if entry.running:
                entry.again = True
                return True
            entry.due = min(entry.due, self.clock())
            self._push(name)
            self._compact()
            self._changed.notify_all()
            return True

    def __len__(self) -> int:
        with self._changed:
            return len(self._entries)

    def due_times(self) -> dict[str, float]:
        """Each waiting feed's due time (feeds being polled are left out)."""
        with self._changed:
            return {n: e.due for n, e in self._entries.items() if not e.running}

    # --- workers -----------------------------------------------------------------------------

    def pop_due(self) -> str | None:
        """The earliest-due feed whose time has come, marked running; None when none is due."""
        with self._changed:
            return self._pop(self.clock())

    def take(self, timeout: float | None = None) -> str | None:
        """Wait for a feed to come due and return it, marked running; None on timeout or close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._closed:
                now = self.clock()
                name = self._pop(now)
                if name is not None:
                    return name
                wait = self._head_due()
                wait = None if wait is None else max(0.0, wait - now)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._changed.wait(wait)
            return None

    def requested(self, name: str) -> bool:
        """Whether the running try of ``name`` serves a ``monitor poll`` request (so it must
        poll even if the feed is not due)."""
        with self._changed:
            entry = self._entries.get(name)
            return entry is not None and entry.running and entry.serving_request

    def done(self, name: str, delay: float | None = None, *, served: bool = True) -> None:
        """A try of ``name`` ended: it is due again in ``delay`` seconds (an interval plus jitter
        when None), or at once when ``poll_now`` asked for it meanwhile. ``served`` False: the
        try made no poll (another replica held the feed), so a request it carried is tried
        again in ``retry`` seconds rather than lost."""
        with self._changed:
            entry = self._entries.get(name)
            if entry is None or not entry.running:
                return  # removed by a reload while it ran
            entry.running = False
            now = self.clock()
            if entry.serving_request and served and not entry.again:
                entry.front, entry.asked = False, None  # the request was served
            entry.serving_request = False
            if entry.front and entry.asked is not None and now - entry.asked > self.patience:
                entry.front, entry.asked = False, None  # never got the feed: give it up
            if delay is None:
                delay = entry.timing.interval + entry.timing.jitter * self.spread()
            if entry.again:
                entry.again = False
                entry.due = now
            elif entry.front:
                entry.due = now + min(max(0.0, delay), self.retry)
            else:
                entry.due = now + max(0.0, delay)
            self._push(name)
            self._changed.notify_all()

    def close(self) -> None:
        """Stop handing out feeds: every waiting ``take`` returns None."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    # --- what operators see ------------------------------------------------------------------

    def backlog(self) -> Backlog:
        with self._changed:
            now = self.clock()
            late = [e.due for e in self._entries.values() if not e.running and e.due <= now]
            return Backlog(len(late), now - min(late) if late else 0.0)

    # --- internals ---------------------------------------------------------------------------

    def _push(self, name: str) -> None:
        entry = self._entries[name]
        self._tokens += 1
        entry.token = self._tokens
        heapq.heappush(self._heap, (0 if entry.front else 1, entry.due, entry.token, name))

    def _live(self, item: tuple[int, float, int, str]) -> bool:
        entry = self._entries.get(item[3])
        return entry is not None and not entry.running and entry.token == item[2]

    def _head_due(self) -> float | None:
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][1] if self._heap else None

    def _pop(self, now: float) -> str | None:
        due = self._head_due()
        if due is None or due > now:
            return None
        name = heapq.heappop(self._heap)[3]
        entry = self._entries[name]
        entry.running, entry.started, entry.serving_request = True, now, entry.front
        return name

    def _compact(self) -> None:
        """Drop stale heap items once they outnumber the live ones (reloads, poll requests)."""
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._heap = [item for item in self._heap if self._live(item)]
            heapq.heapify(self._heap)
