"""The rule index: a fact visits only the rules whose static selectors (fact type, watches,
equality filters) it passes, and nothing an alert says, or the order alerts come in,
depends on it."""

from __future__ import annotations

import random
from pathlib import Path

from monitor.alerting.evaluator import Evaluator, Trace
from monitor.alerting.index import RuleIndex
from monitor.alerting.pending import compile_rule, fact_context
from monitor.alerting.rules import RuleSet, load_rules
from monitor.config import load_settings
from monitor.events import (
    Casualties,
    Diplomacy,
    Downing,
    FactReported,
    RuleFailed,
    ThirdParty,
)
from monitor.runtime import Runtime
from monitor.store.log import EventStore, NewEvent, StoredEvent
from monitor.store.tables import RuleState
from tests.hostile.test_rule_failures import break_rule
from tests.test_alerting import ceasefire, fact_event, killed, write

MIXED = """
rules:
  - id: any-ceasefire
    type: match
    severity: info
    event: ceasefire
    dedup_key: "{{ watch }}:{{ status }}:{{ article.article_id }}"
  - id: north-collapse
    type: match
    severity: critical
    event: ceasefire
    watches: [north]
    where: {status: collapsed}
    dedup_key: "{{ watch }}:{{ article.article_id }}"
  - id: brokered
    type: match
    severity: warning
    event: ceasefire
    where: {status: {in: [agreed, collapsed]}, broker: {in: [RUS, TUR]}}
    dedup_key: "{{ watch }}:{{ broker }}:{{ article.article_id }}"
  - id: held-truce
    type: match
    severity: warning
    event: ceasefire
    where: {status: agreed}
    for: 2h
    cancel_if: {status: violated}
    dedup_key: "{{ watch }}"
  - id: toll
    type: jump
    event: casualties
    watches: [north, south]
    where: {cumulative: true, category: military}
    min_increase: 10
  - id: outsider
    type: new_value
    event: third_party
    value: actor
    where: {kind: {in: [military, arms]}}
  - id: drones
    type: frequency
    severity: critical
    event: downing
    threshold: 2
    window: 3h
    inhibit_key: "{{ watch }}"
  - id: wire-south
    type: match
    severity: info
    event: downing
    where: {outlet: Outlet B, watch: {in: [south]}}
    dedup_key: "{{ article.article_id }}"
  - id: drone-match
    type: match
    event: downing
    where: {asset: drone}
    dedup_key: "{{ watch }}:{{ article.article_id }}"
    inhibit_key: "{{ watch }}"
"""


def mixed_log(seed: int, n: int) -> list[NewEvent]:
    """Facts of every kind, in several watches, some with values no rule names."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        pick = rng.randrange(4)
        if pick == 0:
            status = rng.choice(["agreed", "collapsed", "violated", "proposed"])
            fact: object = ceasefire(status, rng.choice(["RUS", "TUR", "USA", None]))
        elif pick == 1:
            count = rng.randint(1, 40) + i
            fact = Casualties(
                quote=f"The toll rose to {count}.",
                span=(0, 10),
                side="north",
                category=rng.choice(["military", "civilian"]),
                count=count,
                cumulative=True,
            )
        elif pick == 2:
            fact = ThirdParty(
                quote="Help came.",
                span=(0, 10),
                actor=rng.choice(["TUR", "RUS", "IRN"]),
                kind=rng.choice(["arms", "political"]),
            )
        else:
            fact = Downing(
                quote="A drone fell.", span=(0, 13), asset=rng.choice(["drone", "aircraft"])
            )
        watch = rng.choice(["north", "south", "east"])
        outlet = rng.choice(["Outlet A", "Outlet B"])
        events.append(fact_event(fact, hours=i * 0.5, n=i, watch=watch, outlet=outlet))
    return events


def rules_in(tmp_path: Path, text: str) -> RuleSet:
    directory = tmp_path / "alerts"
    directory.mkdir(exist_ok=True)
    write(directory, "rules.yaml", text)
    return load_rules(directory)


def stored(tmp_path: Path, events: list[NewEvent]) -> list[StoredEvent]:
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append(events)
    found = list(store.read())
    store.close()
    return found


def test_index_changes_no_alert_and_no_order(tmp_path: Path) -> None:
    """The same log through the index and through every rule of the fact type (as
    explanations do) raises the same alerts and suppressions, in the same order."""
    rules = rules_in(tmp_path, MIXED)
    events = stored(tmp_path, mixed_log(5, 240))
    indexed = Evaluator(rules).run(events)
    # A trace for no real (rule, event) pair: every rule of the fact type is visited.
    visiting_all = Evaluator(rules, trace=Trace("none", "none")).run(events)
    assert len(indexed.alerts) > 20 and indexed.suppressions
    assert [a.model_dump() for a in indexed.alerts] == [a.model_dump() for a in visiting_all.alerts]
    assert indexed.suppressions == visiting_all.suppressions
    assert {a.rule for a in indexed.alerts} >= {"any-ceasefire", "brokered", "toll", "drones"}


def test_alerts_of_one_fact_keep_severity_then_file_order(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, MIXED)
    events = stored(tmp_path, [fact_event(ceasefire("collapsed", "TUR"), watch="north", n=1)])
    alerts = Evaluator(rules).run(events).alerts
    assert [a.rule for a in alerts] == ["north-collapse", "brokered", "any-ceasefire"]


def test_a_rule_without_selectors_sees_every_fact_of_its_type(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, MIXED)
    index = RuleIndex([compile_rule(r) for r in rules.rules])
    for i, event in enumerate(stored(tmp_path, mixed_log(11, 80))):
        assert isinstance(event.data, FactReported)
        ctx = fact_context(event)
        found = [c.rule.id for c in index.candidates(event.data)]
        if ctx["type"] == "ceasefire":
            assert "any-ceasefire" in found, i
            # a rule with cancel_if must see facts its where rejects: they may cancel
            assert "held-truce" in found
            assert ("north-collapse" in found) == (
                ctx["watch"] == "north" and ctx["status"] == "collapsed"
            )
        if ctx["type"] == "downing":
            assert "drones" in found
            assert ("wire-south" in found) == (
                ctx["watch"] == "south" and ctx["outlet"] == "Outlet B"
            )
        assert all(c.rule.event == ctx["type"] for c in index.candidates(event.data))
    talks = Diplomacy(quote="They met.", span=(0, 9), kind="meeting")
    assert index.candidates(fact_event(talks).data) == ()


def test_unnamed_values_share_one_entry(tmp_path: Path) -> None:
    """Values no rule names (a new watch, a new broker) do not grow the index."""
    rules = rules_in(tmp_path, MIXED)
    index = RuleIndex([compile_rule(r) for r in rules.rules])
    for n in range(50):
        status = ["called_for", "proposed", "violated"][n % 3]
        fact = fact_event(ceasefire(status, f"B{n}"), watch=f"w{n}").data
        assert [c.rule.id for c in index.candidates(fact)] == ["any-ceasefire", "held-truce"]
    assert len(index._types["ceasefire"].cache) == 1


def test_a_list_valued_field_is_never_an_indexed_value(tmp_path: Path) -> None:
    text = (
        "id: un\ntype: match\nevent: diplomacy\nwhere: {participants: {equals: UN}}\n"
        'dedup_key: "{{ watch }}"\n'
    )
    index = RuleIndex([compile_rule(r) for r in rules_in(tmp_path, text).rules])
    talks = Diplomacy(quote="They met.", span=(0, 9), kind="talks", participants=["UN"])
    assert index.candidates(fact_event(talks).data) == ()


def test_a_cancel_if_fact_outside_where_still_cancels_the_hold(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, MIXED).only({"held-truce"})
    events = stored(
        tmp_path,
        [
            fact_event(ceasefire("agreed"), watch="north", n=1),
            fact_event(ceasefire("violated"), hours=1, watch="north", n=2),
            fact_event(ceasefire("proposed"), hours=5, watch="north", n=3),
        ],
    )
    sink = Evaluator(rules).run(events)
    assert sink.alerts == []
    assert [s.kind for s in sink.suppressions] == ["hold_cancelled"]


def test_a_skipped_fact_ends_a_failing_run_as_a_visited_one_does(tmp_path: Path) -> None:
    """A rule that failed, then meets a fact its selectors reject, has evaluated it
    cleanly: its run of failures ends, as it did when every rule saw every fact."""
    rules = rules_in(tmp_path, MIXED).only({"toll"})
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append([fact_event(killed(10), watch="north", n=1)])
    evaluator = Evaluator(rules)
    break_rule(evaluator, "toll")
    evaluator.catch_up(store)
    failed = [e for e in store.read(types=["RuleFailed"]) if isinstance(e.data, RuleFailed)]
    assert [e.data.rule for e in failed] == ["toll"]
    with store.read_session() as session:
        assert session.get(RuleState, ("~evaluator", "failing")) is not None
    # the rule is fixed (reloaded); the next fact is in a watch it is not scoped to
    store.append([fact_event(killed(20), watch="east", hours=1, n=2)])
    Evaluator(rules).catch_up(store)
    with store.read_session() as session:
        assert session.get(RuleState, ("~evaluator", "failing")) is None
    store.close()


def test_reload_rebuilds_the_index(tmp_path: Path) -> None:
    """``Runtime.reload`` builds a new evaluator: facts after it reach the new rules."""
    (tmp_path / "watches").mkdir()
    directory = tmp_path / "alerts"
    directory.mkdir()
    first = "id: one\ntype: match\nevent: ceasefire\nwatches: [north]\n"
    write(directory, "0.yaml", first + 'dedup_key: "{{ article.article_id }}"\n')
    db = tmp_path / "db.sqlite"
    settings = load_settings(None, db=f"sqlite:///{db}", rules_dir=tmp_path, channels=[])
    runtime = Runtime(settings)
    try:
        store = runtime.store
        store.append([fact_event(ceasefire("agreed"), watch="south", n=1)])
        assert runtime.evaluator.catch_up(store) == []
        write(
            directory,
            "1.yaml",
            "id: two\ntype: match\nevent: downing\nwatches: [south]\n"
            'dedup_key: "{{ article.article_id }}"\n',
        )
        (directory / "0.yaml").write_text(first.replace("[north]", "[south]"))
        assert runtime.reload(settings) == []
        store.append(
            [
                fact_event(ceasefire("agreed"), watch="south", hours=1, n=2),
                fact_event(
                    Downing(quote="Shot down.", span=(0, 10), asset="drone"),
                    watch="south",
                    hours=1 + 1 / 60,
                    n=3,
                ),
            ]
        )
        assert [a.rule for a in runtime.evaluator.catch_up(store)] == ["one", "two"]
    finally:
        runtime.close()


def test_alert_order_holds_across_batches_and_watches(tmp_path: Path) -> None:
    """Live, over batches of a few events, the index raises what a backtest raises."""
    rules = rules_in(tmp_path, MIXED)
    events = mixed_log(23, 150)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append(events)
    expected = Evaluator(rules, trace=Trace("none", "none")).run(list(store.read()))
    live = Evaluator(rules).catch_up(store, batch=7)
    assert [a.alert_id for a in live] == [a.alert_id for a in expected.alerts]
    store.close()
