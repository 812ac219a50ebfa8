"""Backtests, explanations and hot reload: the live evaluator run in memory over the log."""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.alerting.backtest import backtest, compare, explain_alert, explain_rule, parse_when
from monitor.alerting.commands import rules_backtest
from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.reload import snapshot
from monitor.alerting.rules import RuleError, load_rules
from monitor.alerting.silences import add_silence
from monitor.config import load_settings
from monitor.runtime import Runtime
from monitor.store.log import EventStore
from monitor.store.tables import EventRow, OutboxRow, RuleState
from tests.test_alerting import JUMP, T0, ceasefire, fact_event, killed, write

RULES = (
    JUMP
    + """---
"""
)

COLLAPSE = """
id: collapse
type: match
severity: critical
event: ceasefire
where: {status: collapsed}
dedup_key: "{{ watch }}"
cooldown: 2d
"""


def log(tmp_path: Path) -> EventStore:
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append(
        [
            fact_event(killed(80), n=1),
            fact_event(ceasefire("collapsed"), hours=1, n=2),
            fact_event(killed(300), hours=2, n=3),
            fact_event(ceasefire("collapsed"), hours=3, n=4),  # cooldown
            fact_event(killed(900), hours=30, n=5),
            fact_event(ceasefire("collapsed"), hours=60, n=6),
        ]
    )
    return store


def rules_dir(tmp_path: Path, name: str, *texts: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    for i, text in enumerate(texts):
        write(directory, f"{i}.yaml", text)
    return directory


def counts(store: EventStore) -> tuple[int, int, int]:
    with store.session() as s:
        return tuple(  # type: ignore[return-value]
            s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (EventRow, RuleState, OutboxRow)
        )


def test_backtest_gives_the_live_alerts_and_writes_nothing(tmp_path: Path) -> None:
    store = log(tmp_path)
    rules = load_rules(rules_dir(tmp_path, "r", JUMP, COLLAPSE))
    before = counts(store)
    result = backtest(store, rules)
    assert counts(store) == before
    assert [s.kind for s in result.suppressions] == ["cooldown"]
    live = Evaluator(rules, [Route(name="x", tags=["*"])]).catch_up(store)
    assert [a.alert_id for a in result.alerts] == [a.alert_id for a in live]
    assert [a.model_dump(exclude={"channels"}) for a in result.alerts] == [
        a.model_dump(exclude={"channels"}) for a in live
    ]


def test_backtest_window_and_silences_from_the_log(tmp_path: Path) -> None:
    store = log(tmp_path)
    rules = load_rules(rules_dir(tmp_path, "r", JUMP, COLLAPSE))
    since = backtest(store, rules, since=T0 + timedelta(hours=10))
    assert [a.trigger_event_id for a in since.alerts] == [
        a.trigger_event_id for a in backtest(store, rules).alerts
    ][2:]
    until = backtest(store, rules, until=T0 + timedelta(hours=2))
    assert [a.rule for a in until.alerts] == ["collapse", "jump"]
    # A silence stored in the log mutes later-recorded events in the backtest too.
    add_silence(store, ["rule=collapse"], timedelta(days=1), now=datetime.now(UTC))
    later = EventStore(store.url)
    later.append([fact_event(ceasefire("collapsed"), hours=200, n=7)])
    silenced = backtest(store, rules)
    assert silenced.suppressions[-1].kind == "silence"


def test_against_lists_added_and_removed_alerts(tmp_path: Path) -> None:
    store = log(tmp_path)
    old = load_rules(rules_dir(tmp_path, "old", JUMP, COLLAPSE))
    new = load_rules(
        rules_dir(
            tmp_path,
            "new",
            JUMP.replace("min_increase: 100", "min_increase: 500").replace(
                "min_percent: 50", "min_percent: 500"
            ),
            COLLAPSE.replace("cooldown: 2d", "cooldown: 1h"),
        )
    )
    diff = compare(backtest(store, old), backtest(store, new))
    assert [(a.rule, a.data["current"]) for a in diff.removed] == [("jump", 300)]
    assert [a.rule for a in diff.added] == ["collapse"]
    out = io.StringIO()
    rules_backtest(store, old, against=new, out=out)
    text = out.getvalue()
    assert text.count("\n+ collapse") + text.startswith("+ collapse") == 1
    assert "- jump" in text and "1 added, 1 removed" in text


def test_explain_alert_shows_inputs_series_thresholds_and_rule_change(tmp_path: Path) -> None:
    store = log(tmp_path)
    directory = rules_dir(tmp_path, "r", JUMP)
    alerts = Evaluator(load_rules(directory)).catch_up(store)
    first = alerts[0]
    text = "\n".join(explain_alert(store, first.alert_id[:8], load_rules(directory)))
    assert "previous: 80" in text and "current: 300" in text and "min_increase: 100" in text
    assert "80 -> 300 (+220, 275.0%) meets min_increase 100, min_percent 50" in text
    assert "the rule is unchanged since" in text
    write(directory, "0.yaml", JUMP.replace("min_increase: 100", "min_increase: 150"))
    text = "\n".join(explain_alert(store, first.alert_id, load_rules(directory)))
    assert "the rule has changed since" in text


def test_explain_rule_says_why_an_event_did_or_did_not_fire(tmp_path: Path) -> None:
    store = log(tmp_path)
    rules = load_rules(rules_dir(tmp_path, "r", JUMP, COLLAPSE))
    facts = list(store.read(types=["FactReported"]))
    fired = "\n".join(explain_rule(store, rules, "collapse", facts[1].id))
    assert "selected" in fired and "raised alert" in fired
    cooled = "\n".join(explain_rule(store, rules, "collapse", facts[3].id))
    assert "suppressed: cooldown 2d" in cooled
    first = "\n".join(explain_rule(store, rules, "jump", facts[0].id))
    assert "first figure of series" in first
    other = "\n".join(explain_rule(store, rules, "jump", facts[1].id))
    assert "the rule reads casualties facts, this is ceasefire" in other


def test_parse_when_accepts_dates_and_durations_ago() -> None:
    assert parse_when("2020-10-24", T0) == T0.replace(year=2020, month=10, day=24, hour=0)
    assert parse_when("1d12h", T0) == T0 - timedelta(hours=36)


def test_reload_keeps_the_last_good_rules_and_says_why(tmp_path: Path) -> None:
    """The daemon's one reload path (file change or SIGHUP): ``Runtime.reload``."""
    (tmp_path / "watches").mkdir()
    directory = rules_dir(tmp_path, "alerts", JUMP)
    settings = load_settings(
        None, db=f"sqlite:///{tmp_path / 'db.sqlite'}", rules_dir=tmp_path, channels=[]
    )
    runtime = Runtime(settings)
    try:
        before = snapshot(directory)
        path = directory / "0.yaml"
        path.write_text(JUMP + "severty: critical\n")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert snapshot(directory) != before  # what makes the daemon reload
        with pytest.raises(RuleError) as err:
            runtime.reload(settings)
        assert f"{path}:8:1: severty" in str(err.value)
        assert [r.id for r in runtime.rules.rules] == ["jump"]
        assert runtime.evaluator.rules is runtime.rules
        write(directory, "1.yaml", COLLAPSE)
        path.write_text(JUMP)
        assert runtime.reload(settings) == []
        assert {r.id for r in runtime.rules.rules} == {"jump", "collapse"}
        assert set(runtime.evaluator.compiled) == {"jump", "collapse"}
    finally:
        runtime.close()
