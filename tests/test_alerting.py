"""Rule files and the evaluator, fed with hand-made facts (no extractor involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import RuleError, load_rule_file, load_rules
from monitor.events import ArticleRef, Casualties, Ceasefire, FactReported, ThirdParty
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import Checkpoint, OutboxRow, RuleState
from tests.conftest import RULES

T0 = datetime(2021, 3, 1, 12, tzinfo=UTC)


def fact_event(
    fact, *, hours: float = 0, watch: str = "w", n: int = 0, outlet: str = "Outlet A"
) -> NewEvent:
    when = T0 + timedelta(hours=hours)
    ref = ArticleRef(
        article_id=f"a{n}", url=f"http://news.example/{n}", outlet=outlet, published=when
    )
    return NewEvent(
        stream=f"article:a{n}",
        data=FactReported(watch=watch, article=ref, fact=fact),
        idempotency_key=f"fact:{n}:{fact.type}:{fact.span}",
        occurred_at=when,
    )


def killed(count: int | None, side: str = "north", **kw) -> Casualties:
    quote = kw.pop("quote", f"The toll rose to {count}.")
    return Casualties(
        quote=quote,
        span=(0, len(quote)),
        party="NTH",
        side=side,
        category="military",
        outcome="killed",
        count=count,
        cumulative=kw.pop("cumulative", True),
        **kw,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- loading ------------------------------------------------------------------------------------


def test_shipped_rules_load() -> None:
    rules = load_rules(RULES / "alerts")
    assert {r.id for r in rules.rules} == {
        "ceasefire-collapse",
        "casualty-jump",
        "civilian-toll",
        "new-third-party",
    }


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: x\ntype: match\nevent: ceasefire\nseverty: critical\n")
    with pytest.raises(RuleError) as err:
        load_rule_file(path)
    message = str(err.value)
    assert f"{path}:4:1: severty" in message
    assert "did you mean 'severity'" in message


def test_bad_value_points_at_the_field(tmp_path: Path) -> None:
    text = "rules:\n  - id: y\n    type: jump\n    event: casualties\n    min_increase: -3\n"
    with pytest.raises(RuleError) as err:
        load_rule_file(write(tmp_path, "r.yaml", text))
    assert ":5:" in str(err.value) and "min_increase" in str(err.value)


def test_broken_yaml_is_reported_with_position(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"r.yaml:2:\d+: not valid YAML"):
        load_rule_file(write(tmp_path, "r.yaml", "id: x\n  type: [match\n"))


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: same\ntype: match\nevent: downing\n")
    write(tmp_path, "b.yaml", "id: same\ntype: match\nevent: downing\n")
    with pytest.raises(RuleError, match="defined 2 times"):
        load_rules(tmp_path)


# --- evaluation ---------------------------------------------------------------------------------


def evaluate(
    tmp_path: Path, rules_yaml: str, events: list[NewEvent], routes=()
) -> tuple[EventStore, list]:
    write(tmp_path, "rules.yaml", rules_yaml)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append(events)
    alerts = Evaluator(load_rules(tmp_path), list(routes)).catch_up(store)
    return store, alerts


JUMP = """
id: jump
type: jump
event: casualties
where: {cumulative: true, count: {exists: true}}
min_increase: 100
min_percent: 50
"""


def test_jump_fires_on_a_large_rise_with_previous_and_current(tmp_path: Path) -> None:
    events = [
        fact_event(killed(80), n=1),
        fact_event(killed(100), hours=1, n=2),
        fact_event(killed(400), hours=2, n=3),
    ]
    _, alerts = evaluate(tmp_path, JUMP, events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.data["previous"], alert.data["current"], alert.data["side"]) == (
        100,
        400,
        "north",
    )
    assert [e.quote for e in alert.evidence] == ["The toll rose to 100.", "The toll rose to 400."]


def test_jump_ignores_other_series_lower_claims_and_vague_reports(tmp_path: Path) -> None:
    events = [
        fact_event(killed(100), n=1),
        fact_event(killed(900, side="south"), hours=1, n=2),  # another series: first report
        fact_event(killed(None, qualifier="vague"), hours=2, n=3),
        fact_event(killed(60), hours=3, n=4),  # a lower competing claim
        fact_event(killed(120), hours=4, n=5),  # +20 over the highest: not a jump
    ]
    _, alerts = evaluate(tmp_path, JUMP, events)
    assert alerts == []


NEW_VALUE = """
id: third
type: new_value
event: third_party
value: actor
"""


def third(actor: str, kind: str = "military") -> ThirdParty:
    return ThirdParty(quote=f"{actor} sent help.", span=(0, 10), actor=actor, kind=kind)


def test_new_value_fires_once_per_actor_and_watch(tmp_path: Path) -> None:
    events = [
        fact_event(third("TUR"), n=1),
        fact_event(third("TUR", "arms"), hours=1, n=2),
        fact_event(third("RUS"), hours=2, n=3),
        fact_event(third("TUR"), hours=3, n=4, watch="other"),
    ]
    _, alerts = evaluate(tmp_path, NEW_VALUE, events)
    assert [(a.watch, a.data["value"]) for a in alerts] == [
        ("w", "TUR"),
        ("w", "RUS"),
        ("other", "TUR"),
    ]


MATCH = """
id: collapse
type: match
event: ceasefire
where: {status: collapsed}
dedup_key: "{{ watch }}:{{ broker }}"
cooldown: 2d
title: "ceasefire by {{ broker }} collapsed"
"""


def ceasefire(status: str, broker: str | None = "RUS") -> Ceasefire:
    return Ceasefire(quote=f"The truce {status}.", span=(0, 12), status=status, broker=broker)


def test_match_with_cooldown_records_suppressions(tmp_path: Path) -> None:
    events = [
        fact_event(ceasefire("agreed"), n=1),
        fact_event(ceasefire("collapsed"), hours=1, n=2),
        fact_event(ceasefire("collapsed"), hours=5, n=3),  # same collapse, reported again
        fact_event(ceasefire("collapsed"), hours=80, n=4),  # after the cooldown: a new alert
    ]
    store, alerts = evaluate(tmp_path, MATCH, events)
    assert [a.title for a in alerts] == ["ceasefire by RUS collapsed"] * 2
    suppressed = list(store.read(types=["AlertSuppressed"]))
    assert len(suppressed) == 1
    assert "cooldown" in suppressed[0].data.reason


def test_alerts_route_to_channels_by_tag_and_replay_never_requeues(tmp_path: Path) -> None:
    routes = [
        Route(name="desk", tags=["all"]),
        Route(name="ops", tags=["ops"]),
        Route(name="cli", tags=["*"]),
    ]
    store, alerts = evaluate(tmp_path, MATCH, [fact_event(ceasefire("collapsed"), n=1)], routes)
    assert alerts[0].channels == ["desk", "cli"]
    with store.session() as session:
        assert sorted(r.channel for r in session.execute(select(OutboxRow)).scalars()) == [
            "cli",
            "desk",
        ]
    # A fresh evaluator over the same log (state dropped) raises nothing new and queues nothing.
    with store.transaction() as session:
        session.execute(delete(RuleState))
        session.execute(delete(Checkpoint))
    again = Evaluator(load_rules(tmp_path), routes).catch_up(store)
    assert again == []
    with store.session() as session:
        assert len(list(session.execute(select(OutboxRow)).scalars())) == 2


def test_same_log_gives_same_alert_ids_in_a_fresh_database(tmp_path: Path) -> None:
    events = [fact_event(third("TUR"), n=1), fact_event(ceasefire("collapsed"), hours=1, n=2)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, first = evaluate(tmp_path / "a", NEW_VALUE, events)
    _, second = evaluate(tmp_path / "b", NEW_VALUE, events)
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert [a.dedup_key for a in first] == [a.dedup_key for a in second]


def test_templates_treat_article_text_as_data(tmp_path: Path) -> None:
    hostile = "{{ 7 * 7 }} {% for x in range(3) %}boom{% endfor %}"
    rules = "id: m\ntype: match\nevent: ceasefire\ntitle: 'said: {{ quote }}'\n"
    fact = Ceasefire(quote=hostile, span=(0, len(hostile)), status="violated")
    _, alerts = evaluate(tmp_path, rules, [fact_event(fact, n=1)])
    assert alerts[0].title == f"said: {hostile}"


def test_one_collapse_report_is_one_alert_even_across_batches(tmp_path: Path) -> None:
    """The shipped collapse rule on the live path: three facts of one article (headline and
    two brokers) make one alert listing the brokers, even when a batch ends mid-article."""
    article = [
        fact_event(
            Ceasefire(quote="It collapsed.", span=(i, i + 9), status="collapsed", broker=b), n=1
        )
        for i, b in enumerate([None, "USA", "SAU"])
    ]
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append([fact_event(killed(5), n=0), *article])
    evaluator = Evaluator(load_rules(RULES / "alerts"), [Route(name="desk", tags=["*"])])
    alerts = evaluator.catch_up(store, batch=2)
    assert [a.title for a in alerts] == [
        "w: ceasefire brokered by the United States, Saudi Arabia collapsed"
    ]
    assert alerts[0].data["brokers"] == ["USA", "SAU"]
    assert alerts[0].dedup_key == "ceasefire-collapse:w:SAU,USA"
