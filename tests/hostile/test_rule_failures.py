"""One bad rule never stops the rest: templates that fail on the values they meet fall back
to the defaults, and a rule whose evaluation raises is skipped for that event only, recorded
as ``RuleFailed``, told to the health channels and shown by /healthz."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import load_rules
from monitor.alerting.ruletypes import Match, Memory, Observed, Verdict
from monitor.alerting.silences import add_silence
from monitor.config import ChannelConfig, load_settings
from monitor.daemon import Daemon
from monitor.events import RuleFailed
from monitor.health import KEEPS_FAILING, rules_health
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import Checkpoint, OutboxRow
from tests.test_alerting import ceasefire, fact_event, killed, write

DIVIDES = """
id: divides
type: match
event: casualties
title: "{{ 1000 / (count - 100) }} per cent"
summary: "{% for i in range(10**9) %}{{ i }}{% endfor %}"
"""

RULES = """
rules:
  - id: broken
    type: match
    event: casualties
  - id: fine
    type: match
    event: casualties
"""


def store_with(tmp_path: Path, events: list[NewEvent]) -> EventStore:
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append(events)
    return store


class Exploding(Match):
    """A rule type with a bug in it: it raises on every fact it is given."""

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        raise ZeroDivisionError("the rule divided by zero")


def break_rule(evaluator: Evaluator, rule_id: str) -> None:
    compiled = evaluator.compiled[rule_id]
    compiled.kind = Exploding(compiled.rule)


def test_a_template_failing_at_run_time_falls_back_to_the_default(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", DIVIDES)
    store = store_with(tmp_path, [fact_event(killed(100), n=1)])
    alerts = Evaluator(load_rules(tmp_path)).catch_up(store)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.title == "w: divides"  # the match rule's default title
    assert alert.summary.startswith("The toll rose to 100.")  # the default summary
    why = "\n".join(alert.explanation)
    assert "ZeroDivisionError" in why and "OverflowError" in why and "default used" in why


def test_a_failing_rule_is_skipped_and_the_others_still_alert(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    events = [fact_event(killed(n * 10), hours=n, n=n) for n in range(1, 5)]
    store = store_with(tmp_path, events)
    routes = [Route(name="desk", tags=["*"]), Route(name="ops", tags=["ops"], health=True)]
    evaluator = Evaluator(load_rules(tmp_path), routes)
    break_rule(evaluator, "broken")

    alerts = evaluator.catch_up(store)

    assert [a.rule for a in alerts if a.rule == "fine"] == ["fine"] * 4
    failures = [e.data for e in store.read(types=["RuleFailed"])]
    assert len(failures) == 4 and all(isinstance(f, RuleFailed) for f in failures)
    assert {f.rule for f in failures} == {"broken"}
    assert "ZeroDivisionError: the rule divided by zero" in failures[0].error
    # One health alert for the run of failures, routed to the health channel only.
    health = [a for a in alerts if a.rule == "rule-failure"]
    assert len(health) == 1 and health[0].channels == ["ops"]
    assert "broken" in health[0].title
    with store.session() as session:
        channels = sorted(r.channel for r in session.execute(select(OutboxRow)).scalars())
        assert channels == ["desk"] * 4 + ["ops"]
        last_fact = max(e.seq for e in store.read(types=["FactReported"]))
        assert session.get(Checkpoint, "rules").seq >= last_fact
    ok, report = rules_health(store)
    assert not ok and report["keeps_failing"] == ["broken"]
    assert report["failing"]["broken"]["failures"] == 4

    # A restart over the same log does not fail again on the same events.
    restarted = Evaluator(load_rules(tmp_path), routes)
    break_rule(restarted, "broken")
    assert restarted.catch_up(store) == []
    assert len(list(store.read(types=["RuleFailed"]))) == 4

    # Fixed (a new version of the rule code): its next clean evaluation ends the failure run.
    store.append([fact_event(killed(99), hours=9, n=9)])
    fixed = Evaluator(load_rules(tmp_path), routes)
    assert {a.rule for a in fixed.catch_up(store)} == {"broken", "fine"}
    assert rules_health(store) == (True, {"failing": {}, "keeps_failing": []})


def test_a_single_failure_is_reported_but_does_not_make_the_daemon_unhealthy(
    tmp_path: Path,
) -> None:
    write(tmp_path, "rules.yaml", RULES)
    store = store_with(tmp_path, [fact_event(killed(5), n=1)])
    evaluator = Evaluator(load_rules(tmp_path))
    break_rule(evaluator, "broken")
    evaluator.catch_up(store)
    ok, report = rules_health(store)
    assert ok and report["failing"]["broken"]["failures"] == 1 < KEEPS_FAILING


def test_healthz_reports_a_rule_that_keeps_failing(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "watches").mkdir(parents=True)
    (rules / "alerts").mkdir()
    write(rules / "alerts", "rules.yaml", RULES)
    settings = load_settings(
        None,
        db=f"sqlite:///{tmp_path / 'db.sqlite'}",
        rules_dir=rules,
        channels=[ChannelConfig(name="log", url="json://127.0.0.1:9/", health=True)],
    )
    daemon = Daemon(settings)
    try:
        break_rule(daemon.runtime.evaluator, "broken")
        daemon.ready = True
        daemon.runtime.store.append(
            [fact_event(killed(n), hours=n, n=n) for n in range(1, 2 + KEEPS_FAILING)]
            + [fact_event(ceasefire("agreed"), hours=9, n=9)]
        )
        raised = daemon.runtime.advance()
        assert sum(a.rule == "fine" for a in raised) == 1 + KEEPS_FAILING
        ok, payload = daemon.health()
        rules_report: dict[str, Any] = payload["rules"]
        assert not ok and payload["ready"] is True
        assert rules_report["keeps_failing"] == ["broken"]
        assert "ZeroDivisionError" in rules_report["failing"]["broken"]["error"]
    finally:
        if daemon.replica_lock is not None:
            daemon.replica_lock.release()
        daemon.runtime.close()


def test_a_silence_mutes_the_failure_warning_like_any_alert(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    now = datetime.now(UTC) - timedelta(minutes=1)
    add_silence(store, ["rule=rule-failure"], timedelta(hours=1), now=now, comment="known bug")
    store.append([fact_event(killed(5), n=1)])
    evaluator = Evaluator(load_rules(tmp_path), [Route(name="ops", tags=[], health=True)])
    break_rule(evaluator, "broken")
    assert [a.rule for a in evaluator.catch_up(store)] == ["fine"]
    [muted] = [e.data for e in store.read(types=["AlertSuppressed"])]
    assert muted.rule == "rule-failure" and "known bug" in muted.reason
    assert len(list(store.read(types=["RuleFailed"]))) == 1
