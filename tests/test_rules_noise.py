"""Noise control on the live path (store, rule_state, outbox): holds and recorded ticks,
silences as events, inhibition, cooldown, and the reasons recorded for each suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import load_rules
from monitor.alerting.silences import SilenceError, add_silence, expire_silence, list_silences
from monitor.store.log import EventStore
from monitor.store.tables import OutboxRow
from tests.test_alerting import T0, ceasefire, fact_event, killed, write

HELD = """
id: held
type: match
severity: critical
event: ceasefire
where: {status: collapsed}
dedup_key: "{{ watch }}:{{ broker }}"
for: 6h
confirm_outlets: 2
"""


def setup(tmp_path: Path, rules: str, events) -> tuple[EventStore, Evaluator]:
    write(tmp_path, "rules.yaml", rules)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append(events)
    return store, Evaluator(load_rules(tmp_path), [Route(name="desk", tags=["*"])])


def suppressions(store: EventStore) -> list:
    return [e.data for e in store.read(types=["AlertSuppressed"])]


def outbox_count(store: EventStore) -> int:
    with store.session() as session:
        return session.execute(select(func.count()).select_from(OutboxRow)).scalar_one()


def test_hold_fires_when_a_later_event_passes_the_hold_with_a_second_outlet(tmp_path: Path) -> None:
    events = [
        fact_event(ceasefire("collapsed"), n=1, outlet="A"),
        fact_event(ceasefire("collapsed"), hours=2, n=2, outlet="B"),
        fact_event(killed(5), hours=7, n=3),  # any later fact moves event time past the hold
    ]
    store, evaluator = setup(tmp_path, HELD, events[:2])
    assert evaluator.catch_up(store) == []  # held: nothing raised, nothing queued
    assert outbox_count(store) == 0
    store.append(events[2:])
    alerts = evaluator.catch_up(store)
    assert (
        len(alerts) == 1 and alerts[0].trigger_event_id == store.get(alerts[0].trigger_event_id).id
    )
    assert {e.outlet for e in alerts[0].evidence} == {"A", "B"}
    assert outbox_count(store) == 1
    raised = next(store.read(types=["AlertRaised"]))
    assert raised.occurred_at == T0 + timedelta(hours=6)  # the alert's time is the hold's end


def test_tick_is_recorded_so_a_replay_resolves_holds_the_same_way(tmp_path: Path) -> None:
    events = [
        fact_event(ceasefire("collapsed"), n=1, outlet="A"),
        fact_event(ceasefire("collapsed"), hours=1, n=2, outlet="B"),
    ]
    store, evaluator = setup(tmp_path, HELD, events)
    evaluator.catch_up(store)
    assert evaluator.tick(store, T0 + timedelta(hours=3)) == []  # not due: nothing appended
    assert list(store.read(types=["RulesTicked"])) == []
    alerts = evaluator.tick(store, T0 + timedelta(hours=7))
    assert len(alerts) == 1
    ticks = list(store.read(types=["RulesTicked"]))
    assert len(ticks) == 1
    # A fresh evaluator over a copy of the log (state dropped) finds the same alert, thanks to
    # the recorded tick.
    (tmp_path / "b").mkdir()
    replayed = EventStore(f"sqlite:///{tmp_path / 'b' / 'db.sqlite'}")
    replayed.append(events)
    replayed.append([_as_new(t) for t in ticks])
    again = Evaluator(load_rules(tmp_path)).catch_up(replayed)
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]


def _as_new(event):
    from monitor.store.log import NewEvent

    return NewEvent(
        stream=event.stream,
        data=event.data,
        idempotency_key=event.idempotency_key,
        occurred_at=event.occurred_at,
    )


def test_unconfirmed_hold_is_suppressed_with_its_reason(tmp_path: Path) -> None:
    events = [
        fact_event(ceasefire("collapsed"), n=1, outlet="A"),
        fact_event(killed(5), hours=9, n=2),
    ]
    store, evaluator = setup(tmp_path, HELD, events)
    assert evaluator.catch_up(store) == []
    [item] = suppressions(store)
    assert item.kind == "hold_unconfirmed" and "confirm_outlets is 2" in item.reason


def live_now() -> datetime:
    return datetime.now(UTC)


def test_silence_events_mute_matching_alerts_until_expired(tmp_path: Path) -> None:
    rules = "id: m\ntype: match\nevent: ceasefire\nlabels: {team: desk}\n"
    store, evaluator = setup(tmp_path, rules, [])
    now = live_now()
    silence = add_silence(
        store, ["rule=m", "team=~de.*"], timedelta(hours=6), now=now, comment="maintenance"
    )
    other = add_silence(store, ["rule=other"], timedelta(hours=6), now=now)
    store.append([fact_event(ceasefire("collapsed"), n=1)])
    assert evaluator.catch_up(store) == []
    [item] = suppressions(store)
    assert item.kind == "silence" and silence.silence_id in item.reason
    assert "maintenance" in item.reason
    rows = list_silences(store, now=now)
    assert {r["silence_id"] for r in rows} == {silence.silence_id, other.silence_id}
    expire_silence(store, silence.silence_id[:8], now=live_now())
    assert [r["silence_id"] for r in list_silences(store, now=live_now())] == [other.silence_id]
    store.append([fact_event(ceasefire("collapsed"), hours=1, n=2)])
    assert len(evaluator.catch_up(store)) == 1


def test_silence_rejects_bad_matchers_and_unknown_ids(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(SilenceError, match="not a matcher"):
        add_silence(store, ["rule"], timedelta(hours=1), now=live_now())
    with pytest.raises(SilenceError, match="regular expression"):
        add_silence(store, ["rule=~("], timedelta(hours=1), now=live_now())
    with pytest.raises(SilenceError, match="no silence"):
        expire_silence(store, "nope", now=live_now())


INHIBIT = """
rules:
  - id: big
    type: match
    severity: critical
    event: casualties
    where: {count: {gte: 1000}}
    inhibit_key: "{{ watch }}"
    inhibit_for: 12h
  - id: small
    type: match
    severity: warning
    event: casualties
    inhibit_key: "{{ watch }}"
"""


def test_higher_severity_inhibits_lower_with_the_same_key_for_a_while(tmp_path: Path) -> None:
    events = [
        fact_event(killed(1500), n=1),  # big fires first (higher severity), small is inhibited
        fact_event(killed(10), hours=2, n=2),  # inhibited
        fact_event(killed(10), hours=3, n=3, watch="other"),  # another key: fires
        fact_event(killed(10), hours=13, n=4),  # inhibition over
    ]
    store, evaluator = setup(tmp_path, INHIBIT, events)
    alerts = evaluator.catch_up(store)
    assert [(a.rule, a.watch) for a in alerts] == [("big", "w"), ("small", "other"), ("small", "w")]
    items = suppressions(store)
    assert [i.kind for i in items] == ["inhibited", "inhibited"]
    assert all("rule big" in i.reason for i in items)


def test_cooldown_is_per_dedup_key_and_recorded(tmp_path: Path) -> None:
    rules = (
        "id: c\ntype: match\nevent: ceasefire\ncooldown: 1d\n"
        "dedup_key: '{{ watch }}:{{ broker }}'\n"
    )
    events = [
        fact_event(ceasefire("collapsed"), n=1),
        fact_event(ceasefire("collapsed", broker="USA"), hours=1, n=2),
        fact_event(ceasefire("collapsed"), hours=2, n=3),
    ]
    store, evaluator = setup(tmp_path, rules, events)
    assert len(evaluator.catch_up(store)) == 2
    [item] = suppressions(store)
    assert item.kind == "cooldown" and item.dedup_key == "c:w:RUS" and "1d" in item.reason
