"""The poll queue: earliest due first, late feeds at once, nothing dropped, reloads applied.

The queue's clock is injected, so time moves only when a test says so.
"""

from __future__ import annotations

import threading
from collections import Counter

from monitor.sources.schedule import PollQueue, Timing, next_attempt


class Clock:
    """Seconds that pass only when ``advance`` is called."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def queue_of(clock: Clock, feeds: dict[str, float], first_in: dict[str, float]) -> PollQueue:
    queue = PollQueue(clock=clock, spread=lambda: 0.0)
    queue.sync({name: Timing(interval) for name, interval in feeds.items()}, first_in)
    return queue


def drain(queue: PollQueue) -> list[str]:
    taken = []
    while (name := queue.pop_due()) is not None:
        taken.append(name)
    return taken


def test_feeds_come_out_earliest_due_first_and_only_when_due() -> None:
    clock = Clock()
    queue = queue_of(clock, {"a": 60, "b": 60, "c": 60}, {"a": 30, "b": 10, "c": 20})
    assert queue.pop_due() is None  # nothing is due yet
    clock.advance(15)
    assert drain(queue) == ["b"]
    clock.advance(20)
    assert drain(queue) == ["c", "a"]


def test_a_late_feed_is_handed_out_at_once_not_at_its_next_interval() -> None:
    clock = Clock()
    queue = queue_of(clock, {"late": 60}, {})
    assert queue.pop_due() == "late"
    queue.done("late", 60)
    clock.advance(60 + 45)  # workers were busy for 45 s past its due time
    assert queue.backlog().depth == 1 and queue.backlog().oldest_age == 45
    assert queue.pop_due() == "late"
    assert queue.backlog().depth == 0 and queue.backlog().oldest_age == 0


def test_two_hundred_feeds_due_together_with_two_workers_are_each_polled_once_in_due_order() -> (
    None
):
    clock = Clock()
    names = [f"feed-{i:03}" for i in range(200)]
    # All due within the same second, in an order unlike their names.
    first_in = {name: ((i * 37) % 200) / 1000 for i, name in enumerate(names)}
    queue = queue_of(clock, dict.fromkeys(names, 60.0), first_in)
    clock.advance(1)
    polled: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (name := queue.take(timeout=0)) is not None:
            with lock:
                polled.append(name)
            queue.done(name, 60)  # next try an interval on: not due again in this test

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert Counter(polled) == Counter(names)  # every one, each once
    assert polled == sorted(names, key=first_in.__getitem__)
    assert queue.backlog().depth == 0


def test_a_poll_request_goes_ahead_of_feeds_that_are_merely_due() -> None:
    clock = Clock()
    queue = queue_of(clock, {"a": 60, "b": 60, "asked": 60}, {"asked": 50})
    assert queue.poll_now("asked")
    assert drain(queue) == ["asked", "a", "b"]
    assert not queue.poll_now("unknown")


def test_a_poll_request_during_a_poll_runs_it_again_as_soon_as_it_ends() -> None:
    clock = Clock()
    queue = queue_of(clock, {"a": 60}, {})
    assert queue.pop_due() == "a" and not queue.requested("a")
    queue.poll_now("a")
    assert queue.pop_due() is None  # one poll of a feed at a time
    queue.done("a", 60)
    assert queue.pop_due() == "a"
    assert queue.requested("a")  # the worker must poll it although its lease says not due
    queue.done("a", 60)
    clock.advance(30)
    assert queue.pop_due() is None  # served: back to its interval
    clock.advance(30)
    assert queue.pop_due() == "a" and not queue.requested("a")


def test_a_request_another_replica_keeps_from_us_is_retried_not_lost() -> None:
    clock = Clock()
    queue = PollQueue(clock=clock, spread=lambda: 0.0, patience=10, retry=1)
    queue.sync({"a": Timing(60)}, {"a": 60})
    assert queue.poll_now("a")
    assert queue.pop_due() == "a" and queue.requested("a")
    queue.done("a", 60, served=False)  # the feed's lease was held elsewhere
    assert queue.pop_due() is None
    clock.advance(1)
    assert queue.pop_due() == "a" and queue.requested("a")
    queue.done("a", 60, served=False)
    clock.advance(10)  # past its patience: the request is given up, the schedule goes on
    assert queue.pop_due() == "a" and queue.requested("a")
    queue.done("a", 60, served=False)
    clock.advance(1)
    assert queue.pop_due() is None
    clock.advance(59)
    assert queue.pop_due() == "a" and not queue.requested("a")


def test_a_takeover_makes_a_feed_due_without_forcing_it() -> None:
    clock = Clock()
    queue = queue_of(clock, {"a": 60, "b": 60}, {"a": 60, "b": 0})
    assert queue.poll_now("a", front=False)
    assert drain(queue) == ["b", "a"] and not queue.requested("a")


def test_reload_adds_removes_and_retimes_feeds() -> None:
    clock = Clock()
    queue = queue_of(clock, {"kept": 600, "gone": 60, "running": 60}, {})
    assert sorted(drain(queue)) == ["gone", "kept", "running"]
    for name in ("kept", "gone"):
        queue.done(name, 600)
    queue.sync({"kept": Timing(120), "running": Timing(60), "new": Timing(60)})
    assert set(queue.due_times()) == {"kept", "new"}  # "running" is still being polled
    assert queue.due_times()["kept"] == clock.now + 120  # the new interval, from its last try
    assert drain(queue) == ["new"]  # a new feed is tried at once
    queue.done("running", 60)
    queue.sync({"kept": Timing(120)})  # removed while waiting
    queue.done("new", 60)  # and a removed feed that finishes is not put back
    assert set(queue.due_times()) == {"kept"}
    clock.advance(120)
    assert drain(queue) == ["kept"]


def test_take_waits_for_the_next_due_feed_and_close_wakes_it() -> None:
    queue = PollQueue()  # the real clock: a feed due 50 ms from now
    queue.sync({"soon": Timing(60)}, {"soon": 0.05})
    assert queue.take(timeout=5) == "soon"
    answers: list[str | None] = []
    waiter = threading.Thread(target=lambda: answers.append(queue.take()))
    waiter.start()
    queue.close()
    waiter.join(5)
    assert answers == [None]


def test_next_try_follows_the_lease() -> None:
    t = Timing(interval=60, jitter=6)
    # Our own poll: an interval after it began, plus the jitter picked.
    assert next_attempt(t, polled=True, elapsed=2, due_in=53, spread=0.5) == 58 + 3
    # A failing feed backs off (or a Retry-After) past the interval: the lease wins.
    assert next_attempt(t, polled=True, elapsed=2, due_in=300, spread=0) == 300
    # Another replica polled it: try when the lease makes it due again, plus the allowance
    # the lease takes off the interval, so that it is not polled more often than every interval.
    assert next_attempt(t, polled=False, elapsed=0, due_in=40, spread=0) == 40
    assert next_attempt(t, polled=False, elapsed=0, due_in=40, spread=0.5, early=9) == 40 + 9 + 3
    # Another replica is polling it right now: an interval on.
    assert next_attempt(t, polled=False, elapsed=0, due_in=None, spread=0) == 60
