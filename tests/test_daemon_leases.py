"""Feed leases, singletons, the SQLite one-replica rule, and source health, on real databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from monitor.config import FeedConfig
from monitor.events import AlertRaised
from monitor.health import HealthChecker
from monitor.leases import (
    FeedLeases,
    ReplicaLockError,
    SqliteReplicaLock,
    backoff,
    lag,
    poll_gap,
    singleton,
)
from monitor.sources.polling import PollOutcome
from monitor.sources.schedule import DueQueue
from monitor.store.log import EventStore
from monitor.store.tables import FeedLease, OutboxRow

FEED = FeedConfig(name="wire", url="http://127.0.0.1:1/feed.xml", interval="60s", jitter="6s")


@pytest.fixture
def store(db_url: str) -> Iterator[EventStore]:
    s = EventStore(db_url)
    yield s
    s.close()


def shift(store: EventStore, feed: str, **deltas: timedelta) -> None:
    """Move a lease row's times into the past, as if that much time had gone by."""
    with store.transaction() as session:
        row = session.get(FeedLease, feed)
        assert row is not None
        for column, delta in deltas.items():
            value = getattr(row, column)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
            setattr(row, column, value - delta)
        session.add(row)


def test_a_due_feed_is_claimed_once_and_due_again_after_the_gap(store: EventStore) -> None:
    a, b = FeedLeases(store, "a"), FeedLeases(store, "b")
    a.ensure([FEED])
    lease = a.claim(FEED)
    assert lease is not None and lease.owner == "a"
    assert b.claim(FEED) is None and b.claim(FEED, force=True) is None  # held
    assert a.complete(lease, FEED, PollOutcome(ok=True, etag='"e1"', items=3, new_items=3))
    assert b.claim(FEED) is None  # polled just now: not due
    [row] = b.states()
    due = row.next_due.replace(tzinfo=UTC) - lease.claimed_at
    assert FEED.interval <= due <= FEED.interval + timedelta(seconds=6)  # interval + jitter
    assert (row.etag, row.last_items, row.polled_by, row.owner) == ('"e1"', 3, "a", None)
    shift(store, FEED.name, next_due=due)
    again = b.claim(FEED)
    assert again is not None and again.etag == '"e1"'  # validators travel with the lease


def test_a_poll_abandoned_mid_way_heads_the_queue_once_its_lease_expires(
    store: EventStore,
) -> None:
    other = FeedConfig(name="other", url="http://127.0.0.1:1/o.xml", interval="60s")
    a = FeedLeases(store, "a", lease_period=timedelta(seconds=30))
    b = FeedLeases(store, "b", lease_period=timedelta(seconds=30))
    a.ensure([FEED, other])
    done = a.claim(other)
    assert done is not None and a.complete(done, other, PollOutcome(ok=True))
    assert a.claim(FEED) is not None  # ... and then replica "a" dies mid-poll
    lease, wait = b.claim_next()
    assert lease is None and 55 < wait <= 66  # the lease still runs; "other" is due next
    shift(store, FEED.name, lease_until=timedelta(seconds=31))
    taken, _ = b.claim_next()  # due all along: the abandoned poll never moved next_due on
    assert taken is not None and taken.feed == FEED.name and taken.owner == "b"


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(store: EventStore) -> None:
    a = FeedLeases(store, "a", lease_period=timedelta(seconds=30))
    b = FeedLeases(store, "b", lease_period=timedelta(seconds=30))
    a.ensure([FEED])
    stale = a.claim(FEED)
    assert stale is not None
    shift(store, FEED.name, lease_until=timedelta(seconds=31))
    fresh = b.claim(FEED)
    assert fresh is not None and fresh.version > stale.version
    assert not a.renew(stale)
    assert not a.complete(stale, FEED, PollOutcome(ok=True, etag='"stale"'))
    assert b.complete(fresh, FEED, PollOutcome(ok=True, etag='"fresh"'))
    assert b.states()[0].etag == '"fresh"'


def test_only_one_of_many_concurrent_claimers_wins(store: EventStore) -> None:
    FeedLeases(store, "setup").ensure([FEED])
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def claim(name: str) -> None:
        barrier.wait()
        if FeedLeases(store, name).claim(FEED) is not None:
            winners.append(name)

    threads = [threading.Thread(target=claim, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_failures_back_off_exponentially_and_retry_after_is_honoured(store: EventStore) -> None:
    leases = FeedLeases(store, "a", max_backoff=timedelta(minutes=10))
    leases.ensure([FEED])
    gaps = []
    for _ in range(5):
        shift(store, FEED.name, next_due=timedelta(days=1))
        lease = leases.claim(FEED)
        assert lease is not None
        leases.complete(lease, FEED, PollOutcome(ok=False, error="boom", error_kind="connect"))
        row = leases.states()[0]
        gaps.append(row.next_due.replace(tzinfo=UTC) - datetime.now(UTC))
    assert row.consecutive_failures == 5 and row.last_error_kind == "connect"
    assert row.failing_since is not None
    rounded = [round(g.total_seconds() / 60, 1) for g in gaps]
    assert rounded[0] <= 1 < rounded[1] < rounded[2] < rounded[3]  # ~1, 2, 4, 8 min
    assert gaps[4] <= timedelta(minutes=10)  # capped
    shift(store, FEED.name, next_due=timedelta(days=1))
    lease = leases.claim(FEED)
    assert lease is not None
    leases.complete(lease, FEED, PollOutcome(ok=False, error="429", retry_after=3600))
    wait = leases.states()[0].next_due.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(minutes=59) < wait <= timedelta(hours=1)
    assert backoff(FEED, 1, timedelta(hours=6)) == poll_gap(FEED)


def test_an_incomplete_poll_keeps_no_validators_and_is_due_at_once(store: EventStore) -> None:
    leases = FeedLeases(store, "a")
    leases.ensure([FEED])
    lease = leases.claim(FEED)
    assert lease is not None
    leases.complete(lease, FEED, PollOutcome(ok=True, etag='"half"', items=5, complete=False))
    row = leases.states()[0]
    assert row.etag is None
    assert leases.claim(FEED) is not None


def test_release_all_gives_back_what_this_replica_holds(store: EventStore) -> None:
    other = FeedConfig(name="other", url="http://127.0.0.1:1/o.xml")
    a, b = FeedLeases(store, "a"), FeedLeases(store, "b")
    a.ensure([FEED, other])
    held = a.claim(FEED)
    assert held is not None and b.claim(other) is not None
    assert a.release_all() == 1
    assert b.claim(FEED) is not None  # due, free: taken over at once
    assert not a.complete(held, FEED, PollOutcome(ok=True))


@pytest.mark.postgres
def test_singleton_is_held_by_one_process_at_a_time(postgres) -> None:  # type: ignore[no-untyped-def]
    url = postgres.new_database()
    one, two = EventStore(url), EventStore(url)
    try:
        with (
            singleton(one, "advance") as first,
            singleton(two, "advance") as second,
            singleton(two, "health") as other,
        ):
            assert (first, second, other) == (True, False, True)
        with singleton(two, "advance") as after:
            assert after
    finally:
        one.close()
        two.close()


def test_sqlite_refuses_a_second_daemon_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    first = SqliteReplicaLock(url)
    first.acquire()
    with pytest.raises(ReplicaLockError, match=r"SQLite supports one replica.*PostgreSQL"):
        SqliteReplicaLock(url).acquire()
    first.release()
    SqliteReplicaLock(url).acquire()  # free again once the first let go


def health_alerts(store: EventStore) -> list[AlertRaised]:
    return [e.data for e in store.read(types=["AlertRaised"]) if isinstance(e.data, AlertRaised)]


def test_a_failing_feed_raises_one_health_alert_per_outage_then_resolves(store: EventStore) -> None:
    feed = FeedConfig(name="wire", url="http://x/f.xml", interval="60s", expected_period="10m")
    leases, checker = FeedLeases(store, "a"), HealthChecker(store, ["ops"])
    leases.ensure([feed])
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=False, error="HTTP 503", error_kind="http_5xx"))
    assert checker.check([feed]) == []  # failing, but not for longer than its period yet
    shift(store, feed.name, failing_since=timedelta(minutes=11))
    [alert] = checker.check([feed])
    assert alert.rule == "source-health" and alert.channels == ["ops"]
    assert "HTTP 503" in alert.summary and alert.status == "firing"
    assert checker.check([feed]) == [] and HealthChecker(store, ["ops"]).check([feed]) == []
    with store.read_session() as session:
        rows = list(session.execute(select(OutboxRow)).scalars())
    assert [(r.alert_id, r.channel) for r in rows] == [(alert.alert_id, "ops")]
    shift(store, feed.name, next_due=timedelta(days=1))
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=True, items=1, new_items=1))
    [resolved] = checker.check([feed])
    assert resolved.status == "resolved" and resolved.data["resolves"] == alert.dedup_key
    assert checker.check([feed]) == []
    assert len(health_alerts(store)) == 2


def test_a_silent_feed_raises_a_health_alert(store: EventStore) -> None:
    feed = FeedConfig(name="quiet", url="http://x/q.xml", interval="60s", expected_period="1h")
    leases, checker = FeedLeases(store, "a"), HealthChecker(store, [])
    leases.ensure([feed])
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=True, items=4, new_items=4))
    assert checker.check([feed]) == []
    shift(store, feed.name, last_new_at=timedelta(hours=2))
    [alert] = checker.check([feed])
    assert alert.title == "Feed quiet went silent" and alert.channels == []
    with store.transaction() as session:  # a second checker sees the same outage: nothing new
        session.execute(update(FeedLease).values(health_alert=None))
    assert checker.check([feed]) == []
    assert len(health_alerts(store)) == 1


def test_health_alerts_go_through_silences_like_any_alert(store: EventStore) -> None:
    from monitor.alerting.silences import add_silence, expire_silence

    feed = FeedConfig(name="wire", url="http://x/f.xml", interval="60s", expected_period="10m")
    leases, checker = FeedLeases(store, "a"), HealthChecker(store, ["ops"])
    leases.ensure([feed])
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=False, error="HTTP 503", error_kind="http_5xx"))
    shift(store, feed.name, failing_since=timedelta(minutes=11))
    now = datetime.now(UTC) - timedelta(minutes=1)
    silence = add_silence(store, ["rule=source-health", "feed=wire"], timedelta(hours=1), now=now)
    assert checker.check([feed]) == [] and checker.check([feed]) == []
    muted = [e.data for e in store.read(types=["AlertSuppressed"])]
    assert len(muted) == 1 and muted[0].kind == "silence" and "Feed wire" in muted[0].title
    with store.read_session() as session:
        assert list(session.execute(select(OutboxRow)).scalars()) == []
    # The outage outlives the silence: it is told then.
    expire_silence(store, silence.silence_id, now=datetime.now(UTC))
    [alert] = checker.check([feed])
    assert alert.status == "firing" and alert.channels == ["ops"]


def test_the_queue_hands_out_the_earliest_due_free_feed_and_says_when_the_next_is_due(
    store: EventStore,
) -> None:
    feeds = [FeedConfig(name=f"q{i}", url=f"http://127.0.0.1:1/{i}.xml") for i in range(3)]
    leases = FeedLeases(store, "me")
    leases.ensure(feeds)
    shift(store, "q2", next_due=timedelta(seconds=30))  # the most overdue
    shift(store, "q0", next_due=timedelta(seconds=20))
    assert leases.backlog()[0] == 3 and 29 < leases.backlog()[1] < 40
    first, _ = leases.claim_next()
    second, _ = leases.claim_next()
    assert first is not None and second is not None and (first.feed, second.feed) == ("q2", "q0")
    failed = PollOutcome(ok=False, error="503", error_kind="http", retry_after=600)
    assert leases.complete(first, feeds[2], failed)  # Retry-After: due in 10 minutes
    third, _ = leases.claim_next()
    assert third is not None and third.feed == "q1"
    assert leases.complete(third, feeds[1], PollOutcome(ok=True))
    nothing, wait = leases.claim_next()  # q0 is held, q1 an interval away, q2 ten minutes
    assert nothing is None and 590 < wait <= 600 + 60
    assert leases.backlog() == (0, 0.0)


def test_a_poll_requested_while_in_flight_is_due_again_when_it_ends(store: EventStore) -> None:
    a, b = FeedLeases(store, "a"), FeedLeases(store, "b")
    a.ensure([FEED])
    lease, _ = a.claim_next()
    assert lease is not None
    assert b.request(FEED.name) and not b.request("no-such-feed")  # `monitor poll` on "b"
    assert b.claim_next()[0] is None  # still "a"'s
    assert a.complete(lease, FEED, PollOutcome(ok=True))
    again, _ = b.claim_next()
    assert again is not None and again.feed == FEED.name  # due at once, not an interval away
    assert b.complete(again, FEED, PollOutcome(ok=True))
    assert a.claim_next()[0] is None  # that request is served: due an interval on


def test_a_feed_this_replica_does_not_know_is_parked_not_handed_out(store: EventStore) -> None:
    gone = FeedConfig(name="gone", url="http://127.0.0.1:1/g.xml")
    leases = FeedLeases(store, "a", lease_period=timedelta(seconds=30))
    leases.ensure([FEED, gone])
    queue = DueQueue(leases, lambda: {FEED.name: FEED}, idle=0.05)
    taken = queue.take(timeout=1)
    assert taken is not None and taken[0] == FEED
    assert queue.take(timeout=0.2) is None  # "gone" was claimed once and parked
    row = next(r for r in leases.states() if r.feed == "gone")
    ahead = row.next_due.replace(tzinfo=UTC) - datetime.now(UTC)
    assert row.owner is None and timedelta(seconds=25) < ahead <= timedelta(seconds=30)


def test_a_requested_feed_goes_ahead_of_feeds_merely_due(store: EventStore) -> None:
    feeds = {f"r{i}": FeedConfig(name=f"r{i}", url=f"http://127.0.0.1:1/{i}.xml") for i in range(3)}
    leases = FeedLeases(store, "a")
    leases.ensure(list(feeds.values()))
    lease = leases.claim(feeds["r2"])
    assert lease is not None and leases.complete(lease, feeds["r2"], PollOutcome(ok=True))
    queue = DueQueue(leases, lambda: feeds)
    assert queue.request("r2") and not queue.request("nope")
    taken = queue.take(timeout=1)
    assert taken is not None and taken[0].name == "r2"  # not due, but asked for
    assert {queue.take(timeout=1)[0].name for _ in range(2)} == {"r0", "r1"}  # type: ignore[index]


def test_many_replicas_claiming_at_once_take_each_due_feed_once(store: EventStore) -> None:
    feeds = [FeedConfig(name=f"m{i:02d}", url=f"http://127.0.0.1:1/{i}.xml") for i in range(40)]
    FeedLeases(store, "setup").ensure(feeds)
    taken: list[str] = []
    tries = [0]
    barrier = threading.Barrier(6)

    def work(name: str) -> None:
        leases = FeedLeases(store, name)
        barrier.wait()
        while True:
            lease, _ = leases.claim_next()
            tries[0] += 1
            if lease is None:
                return
            taken.append(lease.feed)

    threads = [threading.Thread(target=work, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == [f.name for f in feeds]  # every due feed once, none twice
    assert tries[0] == len(feeds) + 6  # no losing tries: each claim but the last is a poll


def test_a_feed_whose_due_poll_waits_two_intervals_alerts_once_then_recovers(
    store: EventStore,
) -> None:
    feed = FeedConfig(name="behind", url="http://x/b.xml", interval="60s")
    leases, checker = FeedLeases(store, "a", spread=lambda: 0.0), HealthChecker(store, ["ops"])
    leases.ensure([feed])
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=True, items=2, new_items=2))
    [row] = leases.states()
    assert lag(row.next_due.replace(tzinfo=UTC), datetime.now(UTC)) == 0  # not due yet
    # Due 100 s ago and not polled: late, but within two intervals.
    shift(store, feed.name, next_due=poll_gap(feed) + timedelta(seconds=100))
    assert checker.check([feed]) == []
    shift(store, feed.name, next_due=timedelta(seconds=30))  # now 130 s: past two intervals
    [alert] = checker.check([feed])
    assert alert.title == "Feed behind is lagging" and alert.status == "firing"
    assert alert.data["problem"] == "lagging" and "due for 13" in alert.summary
    assert alert.channels == ["ops"] and alert.labels == {"kind": "source_health", "feed": "behind"}
    assert checker.check([feed]) == [] and HealthChecker(store, ["ops"]).check([feed]) == []
    # A poll completes: the episode ends with one resolved notice.
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=True, not_modified=True))
    [resolved] = checker.check([feed])
    assert resolved.status == "resolved" and resolved.data["resolves"] == alert.dedup_key
    assert checker.check([feed]) == []
    assert [a.status for a in health_alerts(store)] == ["firing", "resolved"]
    with store.read_session() as session:
        rows = list(session.execute(select(OutboxRow)).scalars())
    assert sorted(r.alert_id for r in rows) == sorted([alert.alert_id, resolved.alert_id])


def test_a_feed_backing_off_after_failures_is_not_lagging(store: EventStore) -> None:
    feed = FeedConfig(name="down", url="http://x/d.xml", interval="60s", expected_period="1d")
    leases = FeedLeases(store, "a", max_backoff=timedelta(hours=1))
    leases.ensure([feed])
    for _ in range(4):
        shift(store, feed.name, next_due=timedelta(days=1))
        lease = leases.claim(feed)
        assert lease is not None
        leases.complete(lease, feed, PollOutcome(ok=False, error="503", error_kind="http_5xx"))
    # Its next try is minutes away by design: no lag, and not failing for a day yet.
    [row] = leases.states()
    assert lag(row.next_due.replace(tzinfo=UTC), datetime.now(UTC)) == 0
    assert HealthChecker(store, []).check([feed]) == []


def test_a_requested_poll_is_a_due_poll(store: EventStore) -> None:
    leases = FeedLeases(store, "a", lease_period=timedelta(seconds=30))
    leases.ensure([FEED])
    lease = leases.claim(FEED)
    assert lease is not None and leases.complete(lease, FEED, PollOutcome(ok=True))
    assert leases.claim(FEED) is None  # not due
    forced = leases.claim(FEED, force=True)
    assert forced is not None
    # Abandoned mid-way: whoever takes it over finds it due, not an interval away.
    shift(store, FEED.name, lease_until=timedelta(seconds=31))
    assert FeedLeases(store, "b").claim(FEED) is not None


def test_many_feeds_lagging_at_once_raise_one_backlog_alert_not_one_each(
    store: EventStore,
) -> None:
    from monitor.health import MANY_LAGGING

    feeds = [
        FeedConfig(name=f"f{i:02}", url=f"http://x/{i}.xml", interval="60s")
        for i in range(MANY_LAGGING + 5)
    ]
    leases, checker = FeedLeases(store, "a"), HealthChecker(store, ["ops"])
    leases.ensure(feeds)
    # Two feeds fall behind first: each is a source's own problem, alerted by name.
    for feed in feeds[:2]:
        shift(store, feed.name, next_due=timedelta(seconds=200))
    assert sorted(a.title for a in checker.check(feeds)) == [
        "Feed f00 is lagging",
        "Feed f01 is lagging",
    ]
    # Then every feed does: the replicas are not keeping up. One alert says so.
    for feed in feeds[2:]:
        shift(store, feed.name, next_due=timedelta(seconds=180))
    [backlog] = checker.check(feeds)
    assert backlog.title == f"{len(feeds)} of {len(feeds)} feeds are lagging"
    assert backlog.data["feeds"][:2] == ["f00", "f01"]  # longest first
    assert checker.check(feeds) == [] and HealthChecker(store, ["ops"]).check(feeds) == []
    # Feeds catch up one by one: nothing per feed until none lags, then two notices.
    for feed in feeds[:-1]:
        lease = leases.claim(feed)
        assert lease is not None and leases.complete(lease, feed, PollOutcome(ok=True))
    assert checker.check(feeds) == []
    lease = leases.claim(feeds[-1])
    assert lease is not None and leases.complete(lease, feeds[-1], PollOutcome(ok=True))
    done = checker.check(feeds)
    assert sorted(a.title for a in done) == [
        "Feed f00 recovered",
        "Feed f01 recovered",
        "The feed schedule caught up",
    ]
    caught_up = next(a for a in done if a.data.get("problem") == "backlog")
    assert caught_up.status == "resolved" and caught_up.data["resolves"] == backlog.dedup_key
    assert checker.check(feeds) == []
    assert len(health_alerts(store)) == 2 + 1 + 3


def test_a_feed_whose_problem_changes_has_the_first_alert_resolved(store: EventStore) -> None:
    feed = FeedConfig(name="wire", url="http://x/w.xml", interval="60s", expected_period="1h")
    leases, checker = FeedLeases(store, "a"), HealthChecker(store, ["ops"])
    leases.ensure([feed])
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=True, items=3, new_items=3))
    shift(store, feed.name, last_new_at=timedelta(hours=2))
    [silent] = checker.check([feed])
    assert silent.status == "firing" and silent.data["problem"] == "silent"
    # Now it fails too, for longer than its period: one problem ends as the other begins.
    shift(store, feed.name, next_due=timedelta(days=1))
    lease = leases.claim(feed)
    assert lease is not None
    leases.complete(lease, feed, PollOutcome(ok=False, error="HTTP 502", error_kind="http_5xx"))
    shift(store, feed.name, failing_since=timedelta(hours=3))
    resolved, failing = checker.check([feed])
    assert resolved.status == "resolved" and resolved.data["resolves"] == silent.dedup_key
    assert failing.status == "firing" and failing.data["problem"] == "failing"
    assert checker.check([feed]) == [] and HealthChecker(store, ["ops"]).check([feed]) == []
    assert [(a.status, a.data.get("problem")) for a in health_alerts(store)] == [
        ("firing", "silent"),
        ("resolved", None),
        ("firing", "failing"),
    ]
