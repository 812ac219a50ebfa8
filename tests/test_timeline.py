"""The timeline: a watch's facts in event-time order and the state they lead to, whatever
order the articles arrived in; and the `monitor timeline` command on a real replay."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.events import ArticleRef, Casualties, Ceasefire, FactReported, ThirdParty
from monitor.store.log import EventStore, NewEvent
from monitor.timeline import build
from tests.conftest import ROOT

DAY0 = datetime(2023, 4, 15, 8, tzinfo=UTC)


def fact_event(n: int, fact: Casualties | Ceasefire | ThirdParty, watch: str = "sd") -> NewEvent:
    article = ArticleRef(
        article_id=f"a{n}", url=f"https://news.example/{n}", published=DAY0 + timedelta(days=n)
    )
    return NewEvent(
        stream=f"article:a{n}",
        data=FactReported(watch=watch, article=article, fact=fact),
        idempotency_key=f"fact:{n}",
        occurred_at=article.published,
    )


def toll(count: int) -> Casualties:
    return Casualties(
        quote=f"The civilian death toll has risen to {count}.",
        span=(0, 40),
        category="civilian",
        count=count,
        cumulative=True,
    )


STORY = [
    fact_event(0, toll(45)),
    fact_event(1, Ceasefire(quote="A truce was agreed.", span=(0, 19), status="agreed")),
    fact_event(2, toll(134)),
    fact_event(
        3,
        ThirdParty(quote="Egypt sent jets.", span=(0, 16), actor="EGY", kind="military"),
    ),
    fact_event(4, Ceasefire(quote="The truce collapsed.", span=(0, 20), status="collapsed")),
    fact_event(5, toll(210)),
    fact_event(6, toll(999), watch="other"),
]


def test_state_is_the_latest_in_event_time_whatever_the_arrival_order(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.append(STORY)
    stored = list(store.read())
    store.close()
    states = set()
    for order in itertools.permutations(stored[:6]):
        # As if the articles had arrived in this order: log positions follow arrival.
        arrived = [e.model_copy(update={"seq": i + 1}) for i, e in enumerate([*order, stored[6]])]
        story = build(arrived, "sd")
        assert [f.at for f in story.facts] == sorted(f.at for f in story.facts)
        states.add(story.model_dump_json(exclude={"facts": {"__all__": {"seq"}}}))
    assert len(states) == 1, "the timeline depends on arrival order"
    story = build(stored, "sd")
    assert [t.count for t in story.tolls] == [210]
    assert story.ceasefire is not None and story.ceasefire.status == "collapsed"
    assert [o.actor for o in story.third_parties] == ["EGY"]


def test_since_limits_the_listed_facts_but_not_the_state(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.append(STORY)
    events = list(store.read())
    store.close()
    story = build(events, "sd", since=DAY0 + timedelta(days=4))
    assert [f.summary for f in story.facts] == [
        "ceasefire collapsed",
        "210 civilian killed (total)",
    ]
    assert [t.count for t in story.tolls] == [210]
    assert build(events, "nobody").facts == []


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_monitor_timeline_on_the_replayed_seeds(replayed_seeds: str) -> None:
    db = replayed_seeds
    done = run("timeline", "nagorno-karabakh", "--db", db, "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    state, facts = lines[0], lines[1:]
    assert state["kind"] == "state" and state["watch"] == "nagorno-karabakh"
    assert facts and all(f["kind"] == "fact" for f in facts)
    times = [f["at"] for f in facts]
    assert times == sorted(times)
    # The state holds the latest military toll of the Armenian side the seeds report.
    tolls = {(t["side"], t["category"]): t["count"] for t in state["tolls"]}
    assert tolls[("armenian", "military")] == max(
        f["fact"]["count"]
        for f in facts
        if f["type"] == "casualties"
        and f["fact"]["side"] == "armenian"
        and f["fact"]["category"] == "military"
        and f["fact"]["cumulative"]
        and f["fact"]["count"] is not None
    )
    text = run("timeline", "nagorno-karabakh", "--db", db)
    assert text.returncode == 0 and text.stdout.startswith("nagorno-karabakh: ")
    assert "toll  armenian military killed: 963" in text.stdout


def test_text_output_never_passes_control_characters_to_the_terminal(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(db)
    quote = "Troops \x1b[2J\x1b]0;owned\x07 killed 5 civilians [/] [bold]."
    fact = Casualties(quote=quote, span=(0, len(quote)), category="civilian", count=5)
    store.append([fact_event(0, fact)])
    store.close()
    done = run("timeline", "sd", "--db", db)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "[/] [bold]" in done.stdout
