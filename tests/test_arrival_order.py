"""Alerts are a function of the facts, not of the order the feeds answered in.

Rule time is event time: a late or backdated report is placed at its publication time, so a
series read out of order reaches the same conclusion, and an alert raised on late data says
so in its explanation."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor.alerting.evaluator import Evaluator
from monitor.alerting.rules import load_rules
from monitor.config import FeedConfig, load_settings
from monitor.events import AlertRaised
from monitor.runtime import Runtime
from monitor.store.log import EventStore
from tests.conftest import RULES, SEEDS
from tests.test_alerting import JUMP, T0, fact_event, killed, write

FEEDS = sorted((SEEDS / "feeds").glob("*.xml"))


def alerts_in_order(tmp_path: Path, feeds: tuple[Path, ...]) -> list[AlertRaised]:
    """What the daemon does when the feeds answer in this order: each feed's items are
    ingested, then rules catch up, before the next feed's poll lands."""
    settings = load_settings(
        None, db=f"sqlite:///{tmp_path / 'events.db'}", rules_dir=RULES, channels=[]
    )
    runtime = Runtime(settings)
    try:
        raised: list[AlertRaised] = []
        for feed in feeds:
            config = FeedConfig(name=feed.stem, url=feed.as_uri(), files_under=SEEDS)
            items, _ = runtime.poll(config)
            for item in items:
                runtime.ingest(item)
            raised.extend(runtime.advance())
        return raised
    finally:
        runtime.close()


def conclusions(alerts: list[AlertRaised]) -> set[tuple[str, str]]:
    """What was concluded: which rule fired for what (the dedup key), with the figures."""
    figures = ("previous", "current")
    return {
        (a.rule, a.dedup_key + "".join(f" {a.data.get(f)}" for f in figures if f in a.data))
        for a in alerts
    }


def test_every_order_of_the_seed_feeds_gives_the_same_nine_alerts(tmp_path: Path) -> None:
    assert [f.name for f in FEEDS] == ["ap.xml", "levant-wire.xml", "rferl.xml"]
    results = {}
    for n, order in enumerate(itertools.permutations(FEEDS)):
        directory = tmp_path / str(n)
        directory.mkdir()
        results[tuple(f.stem for f in order)] = alerts_in_order(directory, order)
    in_time = results[("ap", "rferl", "levant-wire")]  # the order they were published in
    assert len(in_time) == 9
    jump = next(a for a in in_time if a.rule == "casualty-jump")
    assert (jump.data["previous"], jump.data["current"]) == (84, 963)
    for order, alerts in results.items():
        assert len(alerts) == 9, order
        assert conclusions(alerts) == conclusions(in_time), order
    # Levant Wire's 963 first, AP's 84 (a month older) later: the jump is found on the late
    # figure, raised as the alert the in-order run raised, and says it came from late data.
    late = next(a for a in results[("levant-wire", "rferl", "ap")] if a.rule == "casualty-jump")
    assert late.alert_id == jump.alert_id and late.title == jump.title
    assert any("raised on late data" in line for line in late.explanation)
    assert not any("late data" in line for line in jump.explanation)


JUMP_RULE = JUMP.replace("id: jump", "id: jump\ndedup_key: '{{ data.current }}'")


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (1, 0, 2)])
def test_a_series_read_out_of_order_finds_the_jump_of_the_publication_order(
    tmp_path: Path, order: tuple[int, ...]
) -> None:
    facts = [
        fact_event(killed(80), hours=0, n=1),
        fact_event(killed(90), hours=1, n=2),
        fact_event(killed(400), hours=2, n=3),
    ]
    write(tmp_path, "rules.yaml", JUMP_RULE)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    evaluator = Evaluator(load_rules(tmp_path))
    raised = []
    for i in order:  # each fact reaches the log (and the rules) on its own
        store.append([facts[i]])
        raised.extend(evaluator.catch_up(store))
    assert [(a.data["previous"], a.data["current"]) for a in raised] == [(90, 400)]
    assert raised[0].data["series"] == "north military killed"
    assert raised[0].evidence[-1].published == T0.replace(hour=14)


def test_a_late_lower_figure_is_a_competing_claim_not_a_reset(tmp_path: Path) -> None:
    """400 published first; 80 published later but arriving first, then 200 published last:
    in publication order 400, 80, 200 raise nothing (200 is below the highest, 400)."""
    facts = [
        fact_event(killed(400), hours=0, n=1),
        fact_event(killed(80), hours=1, n=2),
        fact_event(killed(200), hours=2, n=3),
    ]
    write(tmp_path, "rules.yaml", JUMP_RULE)
    store = EventStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    evaluator = Evaluator(load_rules(tmp_path))
    raised = []
    for i in (1, 0, 2):
        store.append([facts[i]])
        raised.extend(evaluator.catch_up(store))
    assert raised == []
