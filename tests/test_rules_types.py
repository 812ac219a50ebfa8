"""Each rule type on its own (in memory, the same Evaluator as live), and rule-file validation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.alerting.evaluator import Evaluator
from monitor.alerting.rules import RuleError, RuleFile, load_rule_file, make_ruleset
from monitor.events import Casualties, Ceasefire, Downing, FactReported
from monitor.store.log import StoredEvent
from tests.test_alerting import T0, ceasefire, killed, third, write


def stored(facts: list[tuple[float, object, str]], watch: str = "w") -> list[StoredEvent]:
    """(hours, fact, outlet) -> stored FactReported events in that log order."""
    from monitor.events import ArticleRef

    out = []
    for i, (hours, fact, outlet) in enumerate(facts, start=1):
        when = T0 + timedelta(hours=hours)
        ref = ArticleRef(
            article_id=f"a{i}", url=f"https://x.test/{i}", outlet=outlet, published=when
        )
        out.append(
            StoredEvent(
                seq=i,
                id=f"e{i}",
                stream=f"article:a{i}",
                stream_version=1,
                type="FactReported",
                schema_version=1,
                occurred_at=when,
                recorded_at=when,
                idempotency_key=None,
                data=FactReported(watch=watch, article=ref, fact=fact),
                metadata={},
            )
        )
    return out


def run(rules: list[dict], facts: list[tuple[float, object, str]]):
    ruleset = make_ruleset(RuleFile.model_validate({"rules": rules}).rules)
    return Evaluator(ruleset).run(stored(facts))


def base(**kw) -> dict:
    return {"id": "r", **kw}


# --- match ----------------------------------------------------------------------------------


def test_match_filters_equals_in_regex_numbers_and_stance() -> None:
    rule = base(
        type="match",
        event="casualties",
        where={
            "count": {"gte": 10, "lt": 100},
            "side": {"in": ["north"]},
            "quote": {"regex": "(?i)toll"},
            "stance": {"not_in": ["denied"]},
            "qualifier": {"not_equals": "vague"},
        },
    )
    facts = [
        (0, killed(50), "A"),  # fires
        (1, killed(5), "A"),  # below gte
        (2, killed(500), "A"),  # not lt
        (3, killed(50, side="south"), "A"),  # not in
        (4, killed(50, quote="Fifty died."), "A"),  # regex
        (5, killed(50, stance="denied"), "A"),  # stance
        (6, killed(50, qualifier="vague"), "A"),  # qualifier
    ]
    sink = run([rule], facts)
    assert [a.trigger_event_id for a in sink.alerts] == ["e1"]
    assert sink.alerts[0].data["count"] == 50 and sink.alerts[0].data["side"] == "north"


def test_match_scoped_to_watches() -> None:
    sink = run(
        [base(type="match", event="ceasefire", watches=["other"])],
        [(0, ceasefire("collapsed"), "A")],
    )
    assert sink.alerts == []


# --- new_value ------------------------------------------------------------------------------


def test_new_value_per_configurable_group() -> None:
    rule = base(type="new_value", event="third_party", value="actor", per=["watch", "kind"])
    facts = [(0, third("TUR"), "A"), (1, third("TUR"), "B"), (2, third("TUR", "arms"), "A")]
    sink = run([rule], facts)
    assert [(a.data["value"], a.data["kind"]) for a in sink.alerts] == [
        ("TUR", "military"),
        ("TUR", "arms"),
    ]


# --- jump -----------------------------------------------------------------------------------


def test_jump_percent_only_and_custom_series() -> None:
    rule = base(type="jump", event="casualties", series=["watch", "outcome"], min_percent=100)
    facts = [(0, killed(10), "A"), (1, killed(15, side="south"), "A"), (2, killed(31), "A")]
    sink = run([rule], facts)
    # One series across sides (series has no side): 15 -> 31 is +107%.
    assert [(a.data["previous"], a.data["current"]) for a in sink.alerts] == [(15, 31)]
    assert sink.alerts[0].data["min_percent"] == 100


def test_jump_needs_a_threshold(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="min_increase, min_percent"):
        load_rule_file(write(tmp_path, "r.yaml", "id: j\ntype: jump\nevent: casualties\n"))


# --- transition -----------------------------------------------------------------------------

TRANSITION = base(
    type="transition",
    event="ceasefire",
    key=["watch", "broker"],
    **{"from": ["agreed"]},
    to=["collapsed"],
)


def test_transition_fires_on_a_to_b_and_resolves_on_the_way_back() -> None:
    facts = [
        (0, ceasefire("agreed"), "A"),
        (1, ceasefire("collapsed"), "A"),  # fires
        (2, ceasefire("collapsed"), "B"),  # already collapsed: nothing
        (3, ceasefire("agreed"), "A"),  # resolved
        (4, ceasefire("agreed", broker="USA"), "A"),
        (5, ceasefire("violated", broker="USA"), "A"),  # not in `to`
        (6, ceasefire("collapsed", broker="USA"), "A"),  # from violated, not from agreed
    ]
    sink = run([TRANSITION], facts)
    assert [(a.status, a.data["previous"], a.data["current"]) for a in sink.alerts] == [
        ("firing", "agreed", "collapsed"),
        ("resolved", "collapsed", "agreed"),
    ]
    firing, resolved = sink.alerts
    assert firing.dedup_key == resolved.dedup_key and firing.alert_id != resolved.alert_id
    assert resolved.title.startswith("RESOLVED")
    assert [e.event_id for e in firing.evidence] == ["e1", "e2"]


def test_transition_without_from_fires_from_any_other_state_and_can_skip_resolve() -> None:
    rule = base(type="transition", event="ceasefire", to=["collapsed"], resolve=False)
    facts = [
        (0, ceasefire("collapsed"), "A"),
        (1, ceasefire("agreed"), "A"),
        (2, ceasefire("collapsed"), "A"),
    ]
    sink = run([rule], facts)
    assert [a.status for a in sink.alerts] == ["firing", "firing"]


# --- frequency ------------------------------------------------------------------------------


def downing() -> Downing:
    return Downing(quote="A drone was downed.", span=(0, 5), asset="drone")


def test_frequency_counts_within_the_window_per_group_in_event_time() -> None:
    rule = base(type="frequency", event="downing", threshold=3, window="2h")
    facts = [
        (0, downing(), "A"),
        (1, downing(), "A"),
        (3.5, downing(), "A"),  # 2 in any 2h
        (4, downing(), "A"),
        (4.5, downing(), "A"),  # 3.5, 4, 4.5: fires
        (5, downing(), "A"),
    ]  # window emptied by the match: 1
    sink = run([rule], facts)
    assert len(sink.alerts) == 1
    assert sink.alerts[0].data["count"] == 3 and sink.alerts[0].trigger_event_id == "e5"
    assert [e.event_id for e in sink.alerts[0].evidence] == ["e3", "e4", "e5"]


# --- corroborated ---------------------------------------------------------------------------


def test_corroborated_needs_distinct_outlets_within_the_window() -> None:
    rule = base(
        type="corroborated", event="ceasefire", key=["watch", "status"], min_outlets=3, window="12h"
    )
    facts = [
        (0, ceasefire("collapsed"), "A"),
        (1, ceasefire("collapsed"), "A"),
        (2, ceasefire("collapsed"), "B"),
        (3, ceasefire("agreed"), "C"),
        (20, ceasefire("collapsed"), "C"),  # A and B are now >12h away
        (21, ceasefire("collapsed"), "D"),
        (22, ceasefire("collapsed"), "B"),
    ]
    sink = run([rule], facts)
    assert [a.data["outlets"] for a in sink.alerts] == [["B", "C", "D"]]
    assert sink.alerts[0].trigger_event_id == "e7"


def test_corroborated_falls_back_to_the_site_when_no_outlet_is_named() -> None:
    rule = base(type="corroborated", event="ceasefire", min_outlets=2)
    sink = run([rule], [(0, ceasefire("collapsed"), None), (1, ceasefire("collapsed"), None)])
    assert sink.alerts == []  # both on x.test: one site


# --- templates ------------------------------------------------------------------------------


def test_default_templates_for_every_type_and_html_body_is_escaped() -> None:
    hostile = "<script>alert(1)</script> {{ 7*7 }}"
    fact = Ceasefire(quote=hostile, span=(0, 5), status="collapsed", broker="RUS")
    rules = [
        base(id="m", type="match", event="ceasefire"),
        base(id="t", type="transition", event="ceasefire", to=["collapsed"]),
        base(id="c", type="corroborated", event="ceasefire", min_outlets=2),
        base(id="f", type="frequency", event="ceasefire", threshold=1, window="1h"),
        base(id="h", type="match", event="ceasefire", body_html="<b>{{ quote }}</b>"),
    ]
    sink = run(rules, [(0, fact, "A"), (1, fact, "B")])
    assert {a.rule for a in sink.alerts} == {"m", "t", "c", "f", "h"}
    for alert in sink.alerts:
        assert alert.title and "{{" not in alert.title
        assert hostile in alert.body  # text body: the quote verbatim, never evaluated
        assert "<script>" not in (alert.body_html or "")
    h = next(a for a in sink.alerts if a.rule == "h")
    assert h.body_html == "<b>&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}</b>"


def test_a_template_error_at_runtime_falls_back_to_the_default() -> None:
    rule = base(type="match", event="ceasefire", title="{{ no_such_field }}")
    sink = run([rule], [(0, ceasefire("collapsed"), "A")])
    assert sink.alerts[0].title == "w: r"
    assert any("template failed" in line for line in sink.alerts[0].explanation)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        (
            "id: x\ntype: match\nevent: ceasefire\nwhere:\n  status: {equal: agreed}\n",
            ":5:12: where.status.equal",
            "did you mean 'equals'",
        ),
        (
            "id: x\ntype: match\nevent: ceasefire\nwhere:\n  stauts: agreed\n",
            ":5:3: where.stauts",
            "did you mean 'status'",
        ),
        (
            "id: x\ntype: jump\nevent: casualties\nmin_increase: 5\nseries: [watch, sidee]\n",
            ":5:17: series.1",
            "did you mean 'side'",
        ),
        ("id: x\ntype: tranistion\nevent: ceasefire\n", ":2:7: type", "did you mean 'transition'"),
        ("id: x\ntype: match\nevent: ceasfire\n", ":3:8: event", "did you mean 'ceasefire'"),
        (
            "id: x\ntype: frequency\nevent: downing\nthreshold: 2\nwindow: 1h\nwindw: 2h\n",
            ":6:1: windw",
            "did you mean 'window'",
        ),
        ("id: x\ntype: match\nevent: downing\ntitle: '{{ asset '\n", ":4:", "template syntax"),
        (
            "id: x\ntype: match\nevent: downing\nwhere: {asset: {regex: '('}}\n",
            ":4:",
            "regular expression",
        ),
    ],
)
def test_errors_name_file_line_column_field_and_suggest(tmp_path: Path, text, where, hint) -> None:
    path = write(tmp_path, "r.yaml", text)
    with pytest.raises(RuleError) as err:
        load_rule_file(path)
    message = str(err.value)
    assert f"{path}{where}" in message, message
    assert hint in message, message


def test_casualties_count_filter_is_numeric() -> None:
    fact = Casualties(quote="q", span=(0, 1), count=None)
    sink = run(
        [base(type="match", event="casualties", where={"count": {"gt": 0}})], [(0, fact, "A")]
    )
    assert sink.alerts == []
