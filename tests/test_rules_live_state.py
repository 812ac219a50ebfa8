"""The live evaluator keeps its rule state in memory between batches and between catch-ups,
and reads ``rule_state`` again whenever the table may hold something else: another process
moved the checkpoint, or a transaction of its own did not commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from monitor.alerting import evaluator as evaluator_module
from monitor.alerting.evaluator import Evaluator
from monitor.alerting.rules import load_rules
from monitor.alerting.sinks import LogSink
from monitor.alerting.state import State
from monitor.events import AlertRaised
from monitor.store.log import EventStore
from monitor.store.tables import RuleState
from tests.test_alerting import fact_event, killed, write
from tests.test_rules_growth import JUMPS, reports

HELD = """
  - id: held
    type: match
    event: casualties
    where: {cumulative: false}
    for: 6h
"""


class Loads:
    """Counts reads of the whole ``rule_state`` table."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = State.load.__func__  # type: ignore[attr-defined]

        def load(cls: type[State], session: object) -> State:
            self.count += 1
            return original(cls, session)

        monkeypatch.setattr(evaluator_module.State, "load", classmethod(load))


def alert_ids(store: EventStore) -> list[str]:
    return [
        e.data.alert_id
        for e in store.read(types=["AlertRaised"])
        if isinstance(e.data, AlertRaised)
    ]


def state_rows(store: EventStore) -> dict[tuple[str, str], dict]:
    with store.read_session() as session:
        rows = session.execute(select(RuleState.rule, RuleState.key, RuleState.value)).all()
    return {(r, k): v for r, k, v in rows}


def reference(tmp_path: Path, events: list) -> tuple[list[str], dict[tuple[str, str], dict]]:
    """The alerts and state of one evaluator catching up once over the whole log."""
    store = EventStore(f"sqlite:///{tmp_path / 'reference.sqlite'}")
    store.append(events)
    Evaluator(load_rules(tmp_path)).catch_up(store)
    found = alert_ids(store), state_rows(store)
    store.close()
    return found


@pytest.fixture
def setting(tmp_path: Path) -> tuple[Path, list]:
    write(tmp_path, "rules.yaml", JUMPS + HELD)
    events = reports(5, 90)
    events += [fact_event(killed(4), hours=20 + 7 * i, n=300 + i) for i in range(5)]
    events.sort(key=lambda e: e.occurred_at)
    return tmp_path, events


def half_evaluated(
    setting: tuple[Path, list],
) -> tuple[tuple[list[str], dict[tuple[str, str], dict]], EventStore, Evaluator]:
    """The reference outcome, and a live log whose first half one evaluator has caught up
    with while its second half waits."""
    tmp_path, events = setting
    store = EventStore(f"sqlite:///{tmp_path / 'live.sqlite'}")
    evaluator = Evaluator(load_rules(tmp_path))
    half = len(events) // 2
    store.append(events[:half])
    evaluator.catch_up(store)
    store.append(events[half:])
    return reference(tmp_path, events), store, evaluator


def test_state_is_read_once_while_only_this_evaluator_moves_the_checkpoint(
    setting: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path, events = setting
    expected = reference(tmp_path, events)
    loads = Loads(monkeypatch)
    store = EventStore(f"sqlite:///{tmp_path / 'live.sqlite'}")
    evaluator = Evaluator(load_rules(tmp_path))
    for start in range(0, len(events), 20):
        store.append(events[start : start + 20])
        evaluator.catch_up(store, batch=7)
    assert loads.count == 1
    assert (alert_ids(store), state_rows(store)) == expected
    store.close()


def test_state_is_read_again_after_another_process_moved_the_checkpoint(
    setting: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path, events = setting
    expected = reference(tmp_path, events)
    loads = Loads(monkeypatch)
    store = EventStore(f"sqlite:///{tmp_path / 'live.sqlite'}")
    ours, theirs = Evaluator(load_rules(tmp_path)), Evaluator(load_rules(tmp_path))
    third = len(events) // 3
    store.append(events[:third])
    ours.catch_up(store)
    store.append(events[third : 2 * third])
    theirs.catch_up(store)  # another replica: our memory no longer is the table
    store.append(events[2 * third :])
    ours.catch_up(store)
    assert loads.count == 3
    assert (alert_ids(store), state_rows(store)) == expected
    store.close()


def test_state_is_read_again_after_a_transaction_that_did_not_commit(
    setting: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch evaluated (its state changed in memory) and then rolled back must not leave
    that memory in use: the retry reads the table and raises what one clean run raises."""
    expected, store, evaluator = half_evaluated(setting)
    flush = LogSink.flush

    def failing(self: LogSink, session: Session) -> list[AlertRaised]:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(LogSink, "flush", failing)
    with pytest.raises(RuntimeError):
        evaluator.catch_up(store)
    monkeypatch.setattr(LogSink, "flush", flush)
    loads = Loads(monkeypatch)
    evaluator.catch_up(store)
    assert loads.count == 1
    assert (alert_ids(store), state_rows(store)) == expected
    store.close()


def test_a_batch_overtaken_by_another_process_is_evaluated_again_not_twice(
    setting: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica commits the same events while ours evaluates them (outside the write
    lock): ours must notice at its commit, drop what it evaluated and carry on from there."""
    expected, store, ours = half_evaluated(setting)
    theirs = Evaluator(load_rules(setting[0]))
    process = Evaluator.process
    overtaken: list[bool] = []

    def racing(self: Evaluator, *args: object) -> list[AlertRaised]:
        if self is ours and not overtaken:
            overtaken.append(True)
            theirs.catch_up(store)  # commits while our batch is still being evaluated
        return process(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Evaluator, "process", racing)
    assert ours.catch_up(store) == []  # theirs raised what there was to raise
    assert overtaken and ours.report is None
    assert (alert_ids(store), state_rows(store)) == expected
    store.close()
