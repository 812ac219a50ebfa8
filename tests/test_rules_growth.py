"""Rule state that stays the same size per fact however long the log: a jump series is
kept in pages, and the alerts are those of one unbroken staircase, late reports included."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.alerting import ruletypes
from monitor.alerting.evaluator import Evaluator
from monitor.alerting.rules import load_rules
from monitor.alerting.state import State
from monitor.store.log import EventStore, StoredEvent
from monitor.store.tables import RuleState
from tests.test_alerting import fact_event, killed, write

JUMPS = """
rules:
  - id: toll
    type: jump
    event: casualties
    where: {cumulative: true}
    series: [watch, side]
    min_increase: 30
    min_percent: 40
"""


def reports(seed: int, n: int) -> list[StoredEvent]:
    """Two climbing tolls; one report in five arrives late (published up to a day before)."""
    rng = random.Random(seed)
    tolls = {"north": 10, "south": 10}
    events = []
    for i in range(n):
        side = rng.choice(["north", "south"])
        tolls[side] += rng.choice([0, 1, 2, 3, 40])
        hours = i - (rng.uniform(0, 24) if rng.random() < 0.2 else 0)
        count = tolls[side] - (rng.randint(0, 5) if rng.random() < 0.1 else 0)
        events.append(fact_event(killed(count, side=side), hours=hours, n=i))
    return events


def evaluate(tmp_path: Path, events: list, page: int, monkeypatch: pytest.MonkeyPatch):
    write(tmp_path, "rules.yaml", JUMPS)
    monkeypatch.setattr(ruletypes, "PAGE", page)
    store = EventStore(f"sqlite:///{tmp_path / f'db{page}.sqlite'}")
    store.append(events)
    state = State()
    sink = Evaluator(load_rules(tmp_path)).run(list(store.read()), state)
    store.close()
    return sink, state


def test_paged_series_raise_what_one_staircase_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = reports(3, 400)
    paged, state = evaluate(tmp_path, events, 4, monkeypatch)
    whole, whole_state = evaluate(tmp_path, events, 10**9, monkeypatch)
    assert len(paged.alerts) > 10
    assert any("late data" in " ".join(a.explanation) for a in paged.alerts)
    assert [a.model_dump() for a in paged.alerts] == [a.model_dump() for a in whole.alerts]
    # the same staircase, cut into pages
    for side in ("north", "south"):
        row = state.values[("toll", f"series:w|{side}")]
        pages = [state.values[("toll", f"series-page:{i}:w|{side}")] for i in range(row["pages"])]
        joined = [p for page in pages for p in page["points"]] + row["points"]
        assert joined == whole_state.values[("toll", f"series:w|{side}")]["points"]
        assert len(row["points"]) <= 2 * 4


def test_state_written_per_fact_does_not_grow_with_the_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each report in time order rewrites a bounded tail, not the whole history."""
    write(tmp_path, "rules.yaml", JUMPS)
    monkeypatch.setattr(ruletypes, "PAGE", 8)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append([fact_event(killed(10 + i, side="north"), hours=i, n=i) for i in range(300)])
    evaluator = Evaluator(load_rules(tmp_path))
    state, sink = State(), _Null()
    written = []
    for event in store.read():
        evaluator.process(event, state, sink)
        written.append(sum(len(json.dumps(state.values.get(k))) for k in state.dirty))
        state.dirty.clear()
    assert max(written[200:]) <= 2 * max(written[20:40])
    store.close()


class _Null:
    """A sink that keeps nothing: only the state matters here."""

    def raised(self, alert, when, cause) -> bool:
        return True

    def suppressed(self, item, when, cause) -> None:
        return None

    def failed(self, item, when, cause) -> None:
        return None


HELD = """
  - id: held
    type: match
    event: casualties
    where: {cumulative: false}
    for: 2h
    dedup_key: "{{ watch }}:{{ side }}"
"""


def test_live_state_rows_equal_the_state_a_backtest_holds(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live, in small batches (rows inserted, rewritten in place and deleted as holds end
    and series pages fill), the ``rule_state`` table ends equal to the in-memory state of
    one run over the same log, on either backend."""
    write(tmp_path, "rules.yaml", JUMPS + HELD)
    monkeypatch.setattr(ruletypes, "PAGE", 4)
    events = reports(9, 120)
    events += [
        fact_event(killed(5, cumulative=False), hours=130 + 3 * i, n=500 + i) for i in range(6)
    ]
    store = EventStore(db_url)
    store.append(events)
    rules = load_rules(tmp_path)
    Evaluator(rules).catch_up(store, batch=5)
    expected = State()
    sink = Evaluator(rules).run(list(store.read(types=["FactReported"])), expected)
    with store.read_session() as session:
        rows = session.execute(select(RuleState.rule, RuleState.key, RuleState.value)).all()
    assert {(r, k): v for r, k, v in rows} == expected.values
    assert any(k.startswith("series-page:") for _, k in expected.values)
    # five holds ended (their rows deleted), the last one is still pending
    assert len([a for a in sink.alerts if a.rule == "held"]) == 5
    assert len([k for _, k in expected.values if k.startswith("hold:")]) == 1
    store.close()
