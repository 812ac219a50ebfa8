"""A conflict's story as the log tells it: its facts in event-time order and where they leave it.

The projections follow the log in the order articles arrived; a reader asking "what is the state
of this war" wants the order things happened in the world. So the timeline sorts a watch's facts
by event time (the article's publication time, else when the fact was recorded; the log position
breaks ties) and folds them into the current state: the latest cumulative toll of each series,
the latest ceasefire status, and every outside actor with what it was reported doing. The result
is a pure function of the facts, whatever order the feeds answered in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from monitor.events import (
    Casualties,
    Ceasefire,
    Diplomacy,
    Downing,
    FactReported,
    ThirdParty,
    as_utc,
)
from monitor.store.log import EventStore, StoredEvent


class TimelineFact(BaseModel):
    """One fact as a reader of the timeline sees it: when, what, and where it was read."""

    seq: int
    event_id: str
    at: datetime
    type: str
    summary: str
    quote: str
    url: str
    outlet: str | None = None
    title: str | None = None
    fact: dict[str, object]


class Toll(BaseModel):
    """The latest cumulative figure of one series (side, category, outcome)."""

    side: str | None
    category: str
    outcome: str
    count: int
    qualifier: str
    at: datetime
    event_id: str
    url: str


class CeasefireNow(BaseModel):
    status: str
    broker: str | None
    at: datetime
    event_id: str


class Outsider(BaseModel):
    actor: str
    kinds: list[str]
    supports: list[str] = Field(default_factory=list)
    stances: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    first_seen: datetime
    event_id: str


class Timeline(BaseModel):
    watch: str
    facts: list[TimelineFact]
    tolls: list[Toll]
    ceasefire: CeasefireNow | None
    third_parties: list[Outsider]


def event_time(event: StoredEvent, data: FactReported) -> datetime:
    """When the fact happened as far as the log knows: publication, else record time."""
    return as_utc(data.article.published or event.occurred_at or event.recorded_at)


def summarize(data: FactReported) -> str:
    """One line a person reads: the fact's figures in plain words (codes as stored)."""
    fact = data.fact
    if isinstance(fact, Casualties):
        figure = "some" if fact.count is None else f"{fact.count:,}"
        if fact.qualifier == "at_least" and fact.count is not None:
            figure = f"at least {figure}"
        elif fact.qualifier == "about" and fact.count is not None:
            figure = f"about {figure}"
        who = " ".join(p for p in (fact.side or fact.party, fact.category) if p)
        total = " (total)" if fact.cumulative else ""
        return f"{figure} {who} {fact.outcome}{total}".replace("  ", " ")
    if isinstance(fact, Ceasefire):
        return f"ceasefire {fact.status}" + (f" (broker {fact.broker})" if fact.broker else "")
    if isinstance(fact, ThirdParty):
        helps = f" supporting {fact.supports}" if fact.supports else ""
        return f"{fact.actor}: {fact.kind}{helps} ({fact.stance})"
    if isinstance(fact, Downing):
        owner = f" of {fact.owner}" if fact.owner else ""
        return f"{fact.count} {fact.asset}{owner} downed" + (" (denied)" if fact.denied else "")
    if isinstance(fact, Diplomacy):
        return f"{fact.kind}: {', '.join(fact.participants) or 'unnamed parties'}"
    return fact.type


def entry(event: StoredEvent, data: FactReported, at: datetime | None = None) -> TimelineFact:
    """One fact as the timeline lists it (pages of the timeline read them one page at a time)."""
    return TimelineFact(
        seq=event.seq,
        event_id=event.id,
        at=at or event_time(event, data),
        type=data.fact.type,
        summary=summarize(data),
        quote=data.fact.quote,
        url=data.article.url,
        outlet=data.article.outlet,
        title=data.article.title,
        fact=data.fact.model_dump(mode="json"),
    )


def build(events: Iterable[StoredEvent], watch: str, since: datetime | None = None) -> Timeline:
    """Fold a watch's facts in event-time order; ``since`` limits what is listed, not the state."""
    mine: list[tuple[datetime, int, StoredEvent, FactReported]] = []
    for e in events:
        if isinstance(e.data, FactReported) and e.data.watch == watch:
            mine.append((event_time(e, e.data), e.seq, e, e.data))
    mine.sort(key=lambda item: (item[0], item[1]))
    tolls: dict[tuple[str | None, str, str], Toll] = {}
    ceasefire: CeasefireNow | None = None
    outsiders: dict[str, Outsider] = {}
    listed: list[TimelineFact] = []
    for at, _seq, event, data in mine:
        fact = data.fact
        if isinstance(fact, Casualties) and fact.cumulative and not fact.historical:
            if fact.count is not None:
                key = (fact.side, fact.category, fact.outcome)
                tolls[key] = Toll(
                    side=fact.side,
                    category=fact.category,
                    outcome=fact.outcome,
                    count=fact.count,
                    qualifier=fact.qualifier,
                    at=at,
                    event_id=event.id,
                    url=data.article.url,
                )
        elif isinstance(fact, Ceasefire):
            ceasefire = CeasefireNow(
                status=fact.status, broker=fact.broker, at=at, event_id=event.id
            )
        elif isinstance(fact, ThirdParty) and fact.stance != "denied":
            known = outsiders.setdefault(
                fact.actor,
                Outsider(actor=fact.actor, kinds=[], first_seen=at, event_id=event.id),
            )
            if fact.kind not in known.kinds:
                known.kinds.append(fact.kind)
            if fact.supports and fact.supports not in known.supports:
                known.supports.append(fact.supports)
            # Sorted, so that the same facts give the same lists whatever order they arrived in.
            known.stances = sorted({*known.stances, fact.stance})
            source = data.article.outlet or data.article.url
            known.sources = sorted({*known.sources, source})
        if since is None or at >= as_utc(since):
            listed.append(entry(event, data, at))
    return Timeline(
        watch=watch,
        facts=listed,
        tolls=sorted(tolls.values(), key=lambda t: (t.side or "", t.category, t.outcome)),
        ceasefire=ceasefire,
        third_parties=sorted(outsiders.values(), key=lambda o: (o.first_seen, o.actor)),
    )


def timeline(store: EventStore, watch: str, since: datetime | None = None) -> Timeline:
    return build(store.read(types=["FactReported"]), watch, since)
