"""Projections: state and checkpoint move together, and a rebuild reproduces the live state."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlmodel import Session

from monitor.events import AlertRaised, FeedFailed, FeedPolled
from monitor.store.log import EventStore, NewEvent, StoredEvent
from monitor.store.projections import (
    AlertsProjection,
    ConflictState,
    Consumer,
    FeedHealthProjection,
    all_projections,
    checkpoint,
    dump_state,
    follow,
    follow_all,
    rebuild,
)
from monitor.store.tables import CeasefireState, SeriesState, ThirdPartyState
from monitor.store.transfer import export_jsonl, import_jsonl
from tests.support.cli import run_cli
from tests.support.crash_driver import ACTORS, article_events


def feed_event(i: int) -> NewEvent:
    if i % 3 == 2:
        return NewEvent(stream="feed:f", data=FeedFailed(feed="f", url="u", reason=f"timeout {i}"))
    return NewEvent(stream="feed:f", data=FeedPolled(feed="f", url="u", items=i, new_items=1))


def alert_event(i: int) -> NewEvent:
    alert = AlertRaised(
        alert_id=f"alert-{i}",
        rule="r",
        rule_hash="h",
        severity="warning",
        watch="nk",
        title=f"t{i}",
        summary="s",
        dedup_key=f"r:{i}",
    )
    when = datetime(2020, 10, 1, tzinfo=UTC)
    return NewEvent(stream=f"alert:{i}", data=alert, idempotency_key=f"alert:{i}", occurred_at=when)


def fill(store: EventStore, articles: range, *, live: bool) -> None:
    """Append articles, feed polls and alerts; with ``live``, catch up after each, in small
    batches, the way the daemon interleaves ingest and consumers."""
    for i in articles:
        store.append(article_events(i))
        store.append([feed_event(i)])
        if i % 5 == 0:
            store.append([alert_event(i)])
        if live:
            for projection in all_projections():
                follow(store, projection, batch=3)


def test_rebuild_equals_the_live_state_byte_for_byte(db_url: str) -> None:
    store = EventStore(db_url)
    fill(store, range(60), live=True)
    live = dump_state(store, all_projections())
    with store.read_session() as session:
        assert session.execute(select(SeriesState)).first() is not None
        assert session.execute(select(CeasefireState)).first() is not None
        actors = {r.actor for r in session.execute(select(ThirdPartyState)).scalars()}
    expected = {ACTORS[(i // 6) % 10] for i in range(0, 60, 6) if i % 11 not in (5, 9)}
    assert actors == expected and len(actors) == 9
    assert f'["checkpoint", "conflict_state", {store.head()}]' in live
    for projection in all_projections():
        rebuild(store, projection)
    assert dump_state(store, all_projections()) == live
    store.close()


def test_live_state_is_what_the_events_say(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    fill(store, range(12), live=True)
    with store.read_session() as session:
        series = {
            (r.side, r.count, r.reports) for r in session.execute(select(SeriesState)).scalars()
        }
        feed = FeedHealthProjection()
        assert checkpoint(session, feed.name) == store.head()
    # Casualty tolls per side are the last cumulative figures (crash_driver.facts), per report.
    tolls = {i: 100 + 3 * i + 150 * (i // 7) for i in range(12)}
    reported = [i for i in range(12) if i % 11 not in (5, 9)]
    last = {
        side: max(i for i in reported if i % 2 == parity)
        for parity, side in enumerate(["armenian", "azerbaijani"])
    }
    assert series == {
        (side, tolls[i], sum(1 for j in reported if j % 2 == i % 2)) for side, i in last.items()
    }
    store.close()


def test_consumers_followed_together_read_each_event_once(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pass for several consumers at different positions, two of them wanting the same
    events: each event is read once, and the state is what each would reach alone."""

    class Facts(Consumer):
        """A second consumer of the facts ConflictState reads."""

        name, types = "fact_count", ("FactReported",)

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        def apply(self, session: Session, event: StoredEvent) -> None:
            self.seen.append(event.seq)

    store = EventStore(sqlite_url)
    fill(store, range(12), live=False)
    follow(store, FeedHealthProjection())  # ahead of the others
    follow(store, ConflictState(), batch=4)
    fill(store, range(12, 30), live=False)
    yielded: list[int] = []
    read = store.read

    def counting(*args: object, **kwargs: object) -> object:
        for event in read(*args, **kwargs):  # type: ignore[arg-type]
            yielded.append(event.seq)
            yield event

    monkeypatch.setattr(store, "read", counting)
    facts = Facts()
    assert follow_all(store, [*all_projections(), facts]) > 0
    monkeypatch.undo()
    assert len(yielded) == len(set(yielded))  # no event read twice
    wanted = {t for p in all_projections() for t in p.types}
    assert set(yielded) == {e.seq for e in read(types=sorted(wanted))}
    assert facts.seen == [e.seq for e in read(types=["FactReported"])]
    fill(store, range(30, 45), live=False)
    follow_all(store, all_projections(), batch=7)  # many batches, each ending on a report
    together = dump_state(store, all_projections())
    assert f'["checkpoint", "alerts", {store.head()}]' in together
    for projection in all_projections():
        rebuild(store, projection)
    assert dump_state(store, all_projections()) == together
    store.close()


def test_rows_are_read_once_while_the_checkpoint_stays_where_they_left_it(
    sqlite_url: str,
) -> None:
    """A projection keeps the rows it read from one batch to the next; after another process
    moved its checkpoint it reads them again (they may have changed)."""
    store = EventStore(sqlite_url)
    reads: list[tuple[object, ...]] = []

    @sa_event.listens_for(store.engine, "before_cursor_execute")
    def count(_c: object, _cur: object, statement: str, parameters: object, *_: object) -> None:
        if statement.startswith("SELECT") and "FROM proj_series" in statement:
            reads.append(tuple(parameters))  # type: ignore[arg-type]

    projection = ConflictState()
    for start in range(0, 30, 5):
        fill(store, range(start, start + 5), live=False)
        follow(store, projection, batch=3)
    assert reads and len(reads) == len(set(reads))  # each series read once
    kept = len(reads)
    follow(store, ConflictState())  # nothing new: another consumer moves nothing
    fill(store, range(30, 35), live=False)
    follow(store, ConflictState())  # another process moves the checkpoint
    fill(store, range(35, 40), live=False)
    follow(store, projection)
    again = [key for key in reads[kept:] if key in reads[:kept]]
    assert again  # read again: the table may hold what the other process wrote
    live = dump_state(store, [ConflictState()])
    rebuild(store, ConflictState())
    assert dump_state(store, [ConflictState()]) == live
    store.close()


def test_rebuild_command_reproduces_the_state(db_url: str) -> None:
    store = EventStore(db_url)
    fill(store, range(25), live=True)
    live = dump_state(store, all_projections())
    proc = run_cli("rebuild", "--db", db_url)
    assert proc.returncode == 0, proc.stderr
    assert "conflict_state: replayed" in proc.stderr
    assert dump_state(store, all_projections()) == live
    store.close()


@pytest.mark.postgres
def test_a_log_moved_to_postgresql_projects_the_same_state(tmp_path: Path, postgres) -> None:  # type: ignore[no-untyped-def]
    source = EventStore(f"sqlite:///{tmp_path / 'source.db'}")
    fill(source, range(40), live=True)
    export = tmp_path / "log.jsonl"
    with export.open("w") as out:
        export_jsonl(source, out)
    target = EventStore(postgres.new_database())
    with export.open() as lines:
        assert import_jsonl(target, lines).written == source.head()
    for projection in all_projections():
        follow(target, projection)
    assert dump_state(target, all_projections()) == dump_state(source, all_projections())
    source.close()
    target.close()


class Exploding(ConflictState):
    """The conflict projection, failing on one chosen event."""

    def __init__(self, bad_seq: int) -> None:
        super().__init__()
        self.bad_seq = bad_seq

    def apply(self, session: Session, event: StoredEvent) -> None:
        if event.seq == self.bad_seq:
            raise RuntimeError("projection bug")
        super().apply(session, event)


def test_a_failing_batch_leaves_state_and_checkpoint_as_they_were(db_url: str) -> None:
    store = EventStore(db_url)
    fill(store, range(10), live=False)
    facts = [(e.seq, e.data.article.article_id) for e in store.read(types=["FactReported"])]
    bad = Exploding(bad_seq=facts[7][0])  # the second fact of its report
    assert facts[7][1] == facts[6][1]
    with pytest.raises(RuntimeError, match="projection bug"):
        follow(store, bad, batch=4)
    # The batches before the bad fact's committed, each ending with a whole report; the
    # batch holding it rolled back as one.
    with store.read_session() as session:
        done = checkpoint(session, bad.name)
    taken = [seq for seq, _ in facts if seq <= done]
    assert 4 <= len(taken) <= 6
    assert facts[len(taken) - 1][1] != facts[len(taken)][1]  # a report is never split
    partial = dump_state(store, [ConflictState()])
    reference = EventStore(db_url.replace("events.db", "ref.db")) if "sqlite" in db_url else None
    if reference is not None:
        for i in range(10):
            reference.append(article_events(i))
        projection = ConflictState()
        with reference.transaction() as session:
            for event in reference.read(types=["FactReported"], session=session, limit=len(taken)):
                projection.apply(session, event)
            projection.end(session, taken[-1])
        ref_rows = [line for line in dump_state(reference, [ConflictState()]).splitlines()[:-1]]
        assert partial.splitlines()[:-1] == ref_rows
        reference.close()
    # The fixed code carries on from the checkpoint, and ends where a rebuild ends (the
    # same consumer: what it changed in memory in the failed batch was dropped).
    bad.bad_seq = -1
    follow(store, bad)
    done = dump_state(store, [ConflictState()])
    rebuild(store, ConflictState())
    assert dump_state(store, [ConflictState()]) == done
    store.close()


def test_a_new_projection_version_rebuilds_it(sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    fill(store, range(8), live=True)
    before = dump_state(store, [ConflictState()])

    class Doubled(ConflictState):
        version = ConflictState.version + 1

        def apply(self, session: Session, event: StoredEvent) -> None:
            super().apply(session, event)
            super().apply(session, event)  # new meaning: every report counts twice

    applied = follow(store, Doubled())
    assert applied == len(list(store.read(types=["FactReported"])))
    with store.read_session() as session:
        reports = [r.reports for r in session.execute(select(SeriesState)).scalars()]
    assert reports and all(n % 2 == 0 for n in reports)
    assert dump_state(store, [ConflictState()]) != before
    assert follow(store, Doubled()) == 0  # at the new version now: nothing more to do
    store.close()


def test_concurrent_consumers_of_one_projection_apply_each_event_once(db_url: str) -> None:
    """Two workers catching up the same projection while a writer appends: no double counts."""
    store = EventStore(db_url)
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            while not stop.is_set():
                for projection in (ConflictState(), AlertsProjection()):
                    follow(store, projection, batch=2)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=consume) for _ in range(2)]
    for w in workers:
        w.start()
    fill(store, range(30), live=False)
    stop.set()
    for w in workers:
        w.join()
    assert not errors, errors
    for projection in (ConflictState(), AlertsProjection()):
        follow(store, projection)
    live = dump_state(store, [ConflictState(), AlertsProjection()])
    for projection in (ConflictState(), AlertsProjection()):
        rebuild(store, projection)
    assert dump_state(store, [ConflictState(), AlertsProjection()]) == live
    store.close()


def test_a_batch_overtaken_by_another_consumer_is_applied_again_not_twice(
    sqlite_url: str,
) -> None:
    """Another process moves the checkpoint while a batch is applied (in a read transaction,
    outside the write lock): the batch is dropped at its commit and redone from there."""
    store = EventStore(sqlite_url)
    fill(store, range(20), live=False)

    class Overtaken(ConflictState):
        raced = False

        def apply(self, session: Session, event: StoredEvent) -> None:
            if not self.raced:
                self.raced = True
                follow(store, ConflictState(), batch=5)  # another worker, to the head
            super().apply(session, event)

    slow = Overtaken()
    assert follow(store, slow) == 0 and slow.raced
    live = dump_state(store, [ConflictState()])
    rebuild(store, ConflictState())
    assert dump_state(store, [ConflictState()]) == live
    store.close()


def test_a_late_report_does_not_replace_a_newer_toll_or_status(sqlite_url: str) -> None:
    from tests.test_alerting import T0, ceasefire, fact_event, killed

    store = EventStore(sqlite_url)
    store.append([fact_event(killed(963), hours=24, n=1, watch="nk")])
    store.append([fact_event(ceasefire("collapsed"), hours=24, n=2, watch="nk")])
    # A month-old article arrives after them.
    store.append([fact_event(killed(84), n=3, watch="nk")])
    store.append([fact_event(ceasefire("agreed"), n=4, watch="nk")])
    follow(store, ConflictState())
    with store.session() as session:
        series = session.execute(select(SeriesState)).scalar_one()
        truce = session.execute(select(CeasefireState)).scalar_one()
        assert (series.count, series.reports) == (963, 2)
        assert series.updated_at.replace(tzinfo=UTC) == T0.replace(day=2)
        assert truce.status == "collapsed"
