"""The timeline: a watch's facts in event-time order and the state they lead to, whatever
order the articles arrived in; the incremental fold equals one fold of the whole log however the
log is cut into pieces; and the `monitor timeline` command on a real replay."""

from __future__ import annotations

import itertools
import json
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from monitor.events import (
    ArticleRef,
    Casualties,
    Ceasefire,
    Diplomacy,
    Downing,
    FactReported,
    ThirdParty,
)
from monitor.store.log import EventStore, NewEvent, StoredEvent
from monitor.timeline import Fold, Folds, timeline
from tests.support.cli import run_cli

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
        fold = Fold("sd")
        fold.add(arrived)
        assert [m.at for m in fold.facts] == sorted(m.at for m in fold.facts)
        states.add(fold.state().model_dump_json())
    assert len(states) == 1, "the timeline depends on arrival order"
    fold = Fold("sd")
    fold.add(stored)
    story = fold.state()
    assert [t.count for t in story.tolls] == [210]
    assert story.ceasefire is not None and story.ceasefire.status == "collapsed"
    assert [o.actor for o in story.third_parties] == ["EGY"]


def test_since_limits_the_listed_facts_but_not_the_state(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    store.append(STORY)
    story = timeline(store, "sd", since=DAY0 + timedelta(days=4))
    assert [f.summary for f in story.facts] == [
        "ceasefire collapsed",
        "210 civilian killed (total)",
    ]
    assert [t.count for t in story.tolls] == [210]
    assert timeline(store, "nobody").facts == []
    store.close()


def test_monitor_timeline_on_the_replayed_seeds(replayed_seeds: str) -> None:
    db = replayed_seeds
    done = run_cli("timeline", "nagorno-karabakh", "--db", db, "--format", "jsonl")
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
    text = run_cli("timeline", "nagorno-karabakh", "--db", db)
    assert text.returncode == 0 and text.stdout.startswith("nagorno-karabakh: ")
    assert "toll  armenian military killed: 963" in text.stdout


def test_text_output_never_passes_control_characters_to_the_terminal(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'events.db'}"
    store = EventStore(db)
    quote = "Troops \x1b[2J\x1b]0;owned\x07 killed 5 civilians [/] [bold]."
    fact = Casualties(quote=quote, span=(0, len(quote)), category="civilian", count=5)
    store.append([fact_event(0, fact)])
    store.close()
    done = run_cli("timeline", "sd", "--db", db)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "[/] [bold]" in done.stdout


# --- the incremental fold equals one fold of the whole log ------------------------------------

OUTLETS = ["Wire A", "Wire B", None]
SIDES = ["north", "south", None]


def fold_of(events: list[StoredEvent], watch: str = "sd") -> Fold:
    fold = Fold(watch)
    fold.add(events)
    return fold


def same(one: Fold, other: Fold) -> None:
    """Two folds hold the same state and list the same facts, in the same order."""
    assert one.state() == other.state()
    assert one.facts == other.facts
    assert one.by_type == other.by_type
    assert one.by_outlet == other.by_outlet
    assert one.series == other.series
    assert one.revision == other.revision


@st.composite
def facts(draw: st.DrawFn) -> FactReported:
    """One fact of a watch, drawn from a small world so that series, actors and times repeat."""
    quote = "A sentence of our own that the fact was read from."
    span = (0, len(quote))
    stance = draw(st.sampled_from(["reported", "claimed", "denied", "confirmed"]))
    kind = draw(st.sampled_from(["casualties", "ceasefire", "third_party", "downing", "other"]))
    fact: Casualties | Ceasefire | ThirdParty | Downing | Diplomacy
    if kind == "casualties":
        fact = Casualties(
            quote=quote,
            span=span,
            stance=stance,
            side=draw(st.sampled_from(SIDES)),
            category=draw(st.sampled_from(["military", "civilian"])),
            outcome=draw(st.sampled_from(["killed", "wounded", "missing", "captured"])),
            count=draw(st.none() | st.integers(0, 5000)),
            qualifier=draw(st.sampled_from(["exact", "at_least", "about"])),
            cumulative=draw(st.booleans()),
            increment=draw(st.none() | st.integers(0, 300)),
            historical=draw(st.booleans()) and draw(st.booleans()),
        )
    elif kind == "ceasefire":
        status = draw(st.sampled_from(["called_for", "proposed", "agreed", "violated"]))
        broker = draw(st.sampled_from(["RUS", "FRA", None]))
        fact = Ceasefire(quote=quote, span=span, stance=stance, status=status, broker=broker)
    elif kind == "third_party":
        fact = ThirdParty(
            quote=quote,
            span=span,
            stance=stance,
            actor=draw(st.sampled_from(["TUR", "RUS", "IRN"])),
            kind=draw(st.sampled_from(["military", "arms", "political", "mediation"])),
            supports=draw(st.sampled_from(["north", "south", None])),
        )
    elif kind == "downing":
        fact = Downing(quote=quote, span=span, asset="drone", owner="TUR")
    else:
        fact = Diplomacy(quote=quote, span=span, kind="talks", participants=["RUS"])
    day = draw(st.integers(0, 6))  # few distinct times: ties broken by log position
    published = draw(st.none() | st.just(DAY0 + timedelta(days=day)))
    article = ArticleRef(
        article_id=f"a{day}",
        url=f"https://news.example/{day}",
        outlet=draw(st.sampled_from(OUTLETS)),
        published=published,
    )
    return FactReported(
        watch=draw(st.sampled_from(["sd", "sd", "other"])), article=article, fact=fact
    )


def logged(data: list[FactReported], when: list[int]) -> list[StoredEvent]:
    """The facts as the log stores them: positions 1.., recorded a minute apart."""
    return [
        StoredEvent(
            seq=i + 1,
            id=f"00000000-0000-4000-8000-{i + 1:012d}",
            stream=f"article:{i}",
            stream_version=1,
            type="FactReported",
            schema_version=1,
            occurred_at=DAY0 + timedelta(days=when[i % len(when)]),
            recorded_at=DAY0 + timedelta(minutes=i),
            idempotency_key=None,
            data=fact,
            metadata={},
        )
        for i, fact in enumerate(data)
    ]


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(facts(), min_size=1, max_size=40),
    when=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 40), max_size=8),
    shuffle=st.randoms(use_true_random=False),
)
def test_folding_in_any_chunks_in_any_order_equals_one_fold(
    data: list[FactReported], when: list[int], cuts: list[int], shuffle: random.Random
) -> None:
    events = logged(data, when)
    whole = fold_of(events)
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    chunks = [events[a:b] for a, b in itertools.pairwise(bounds)]
    in_order = Fold("sd")
    for chunk in chunks:
        in_order.add(chunk)
    same(in_order, whole)
    shuffle.shuffle(chunks)  # as if the pieces had been read in another order
    any_order = Fold("sd")
    for chunk in chunks:
        any_order.add(chunk)
    same(any_order, whole)


def append_in_batches(
    store: EventStore, data: list[FactReported], sizes: random.Random
) -> Iterator[None]:
    """Append the facts a few at a time, yielding after each batch."""
    i = 0
    while i < len(data):
        n = sizes.randint(1, 9)
        store.append(
            [
                NewEvent(stream=f"article:{j}", data=fact, occurred_at=fact.article.published)
                for j, fact in enumerate(data[i : i + n], start=i)
            ]
        )
        i += n
        yield


@settings(max_examples=12, deadline=None)
@given(data=st.lists(facts(), min_size=1, max_size=60), rng=st.randoms(use_true_random=False))
def test_the_kept_fold_reads_only_the_tail_and_equals_a_refold(
    data: list[FactReported], rng: random.Random
) -> None:
    """A generated log grown batch by batch in a real SQLite file: the fold kept by ``Folds``
    moves on by the events appended since and always equals a fold of the whole log."""
    with tempfile.TemporaryDirectory() as tmp:
        kept_fold_follows_the_log(EventStore(f"sqlite:///{Path(tmp) / 'events.db'}"), data, rng)


def kept_fold_follows_the_log(
    store: EventStore, data: list[FactReported], rng: random.Random
) -> None:
    kept = Folds(store)
    reads: list[str] = []
    listen = lambda *args: reads.append(str(args[2]))  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listen)
    for _ in append_in_batches(store, data, rng):
        reads.clear()
        with kept.current("sd") as fold:
            tails = [q for q in reads if "FROM events" in q]
            assert len(tails) == 1, tails  # one read of the tail, however long the log
            assert fold.head == store.head()
            same(fold, fold_of(list(store.read())))
    until = min(5, store.head())
    with kept.current("sd", until=until) as early:  # an earlier position: folded from zero
        assert early.head == until
        same(early, fold_of(list(store.read(until=until))))
    event.remove(store.engine, "before_cursor_execute", listen)
    store.close()


def test_the_seeds_folded_piece_by_piece_equal_one_fold(
    replayed_seeds: str, tmp_path: Path
) -> None:
    """The replayed seeds' facts appended again in pieces to a new log: the kept fold after
    each piece equals a refold, and at the end the seeds' 84 -> 963 toll is the state."""
    seeds = EventStore(replayed_seeds, read_only=True)
    original = [e for e in seeds.read(types=["FactReported"])]
    seeds.close()
    store = EventStore(f"sqlite:///{tmp_path / 'again.db'}")
    kept = Folds(store)
    watch = "nagorno-karabakh"
    for start in range(0, len(original), 13):
        piece = original[start : start + 13]
        store.append(
            [NewEvent(stream=e.stream, data=e.data, occurred_at=e.occurred_at) for e in piece]
        )
        with kept.current(watch) as fold:
            same(fold, fold_of(list(store.read()), watch))
    with kept.current(watch) as fold:
        tolls = {(t.side, t.category, t.outcome): t.count for t in fold.state().tolls}
    assert tolls[("armenian", "military", "killed")] == 963
    store.close()
