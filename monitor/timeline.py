"""A conflict's story as the log tells it: its facts in event-time order and where they leave it.

The projections follow the log in the order articles arrived; a reader asking "what is the state
of this war" wants the order things happened in the world. So the timeline orders a watch's facts
by event time (the article's publication time, else when the fact was recorded; the log position
breaks ties) and folds them into the current state: the latest cumulative toll of each series,
the latest ceasefire status, and every outside actor with what it was reported doing.

The fold is incremental. Every piece of its state is decided by comparing (event time, position)
keys ("the latest", "the first"), never by the order facts were fed in, so folding a log in any
split of chunks gives what one fold of the whole gives. ``Folds`` keeps each watch's fold with
the log position it reflects and, when asked, reads only the facts appended since: a new fact
costs one read of the tail, not a refold of the log. The command line, the daily digest and the
dashboard all read the state this way; the facts themselves stay in the log and are read by
position (``facts_at``) when a page lists them.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session, col

from monitor.events import (
    Casualties,
    Ceasefire,
    Diplomacy,
    Downing,
    FactReported,
    ThirdParty,
    as_utc,
    parse_event_data,
)
from monitor.store.log import IN_CHUNK, EventStore, StoredEvent, to_stored
from monitor.store.tables import EventRow

# Bump when what a fold keeps, or how it decides, changes: a fold of another version is
# never carried forward, it is folded again from the start of the log.
FOLD_VERSION = 2
READ_BATCH = 2000  # rows per query while folding a long stretch of the log

Key = tuple[datetime, int]  # (event time, log position): how facts are ordered


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
    return fact_time(data, event.occurred_at, event.recorded_at)


def fact_time(data: FactReported, occurred: datetime | None, recorded: datetime) -> datetime:
    return as_utc(data.article.published or occurred or recorded)


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
    """One fact as the timeline lists it."""
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


@dataclass(frozen=True, slots=True)
class Mark:
    """One fact as the fold keeps it: where it sorts (event time, then log position), what it
    is and, for a casualty report, the figures a chart draws. Quotes and links stay in the log
    and are read by position when a page shows the fact (a fold keeps under 300 bytes a fact,
    its lists included)."""

    at: datetime
    seq: int
    type: str
    outlet: str | None = None
    # casualties (not historical) only: (side, category, outcome) and the figures
    series: tuple[str | None, str, str] | None = None
    count: int | None = None
    increment: int | None = None
    cumulative: bool = False
    qualifier: str = "exact"


# Marks sort by (event time, position); a C-level key, since a fold sorts a whole log of them.
order_key: Callable[[Mark], Key] = attrgetter("at", "seq")


class State(BaseModel):
    """Where a watch's facts leave it."""

    tolls: list[Toll]
    ceasefire: CeasefireNow | None
    third_parties: list[Outsider]


@dataclass
class _Seen:
    """An outside actor as folded so far; each part keyed so that any order gives the same."""

    first: Key
    event_id: str
    kinds: dict[str, Key] = field(default_factory=dict)
    supports: dict[str, Key] = field(default_factory=dict)
    stances: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)


def _earliest(known: dict[str, Key], value: str, key: Key) -> None:
    if value not in known or key < known[value]:
        known[value] = key


class Fold:
    """One watch's facts folded up to log position ``head``; ``add`` folds more.

    Not thread-safe on its own: ``Folds`` serialises the reads and writes of each fold.
    ``revision`` counts the facts folded in, so what was derived from a fold can be kept
    until a fact of this watch arrives.
    """

    def __init__(self, watch: str) -> None:
        self.watch = watch
        self.version = FOLD_VERSION
        self.head = 0
        self.revision = 0
        self.facts: list[Mark] = []  # every fact, in (event time, position) order
        self.by_type: dict[str, list[Mark]] = {}
        self.by_outlet: dict[str, list[Mark]] = {}
        self.series: dict[tuple[str | None, str, str], list[Mark]] = {}
        self._tolls: dict[tuple[str | None, str, str], tuple[Key, Toll]] = {}
        self._ceasefire: tuple[Key, CeasefireNow] | None = None
        self._outsiders: dict[str, _Seen] = {}

    def add(self, events: Iterable[StoredEvent]) -> int:
        """Fold these events in (other watches' and other kinds are passed over); each event
        is to be folded once. Returns how many facts of this watch were among them."""
        return self._add(
            (e.seq, e.id, event_time(e, e.data), e.data)
            for e in events
            if isinstance(e.data, FactReported)
        )

    def _add(self, facts: Iterable[tuple[int, str, datetime, FactReported]]) -> int:
        """Fold (position, event id, event time, fact) items in."""
        marks = [
            self._fold(seq, event_id, at, data)
            for seq, event_id, at, data in facts
            if data.watch == self.watch
        ]
        if not marks:
            return 0
        marks.sort(key=order_key)
        _merge(self.facts, marks)
        by_type: dict[str, list[Mark]] = {}
        by_outlet: dict[str, list[Mark]] = {}
        series: dict[tuple[str | None, str, str], list[Mark]] = {}
        for m in marks:  # one pass, still in order: each group is sorted too
            by_type.setdefault(m.type, []).append(m)
            if m.outlet:
                by_outlet.setdefault(m.outlet, []).append(m)
            if m.series:
                series.setdefault(m.series, []).append(m)
        for kind, group in by_type.items():
            _merge(self.by_type.setdefault(kind, []), group)
        for outlet, group in by_outlet.items():
            _merge(self.by_outlet.setdefault(outlet, []), group)
        for name, group in series.items():
            _merge(self.series.setdefault(name, []), group)
        self.revision += len(marks)
        return len(marks)

    def _fold(self, seq: int, event_id: str, at: datetime, data: FactReported) -> Mark:
        """Fold one fact into the state; its mark, for the lists."""
        key = (at, seq)
        fact = data.fact
        mark = Mark(at=at, seq=seq, type=fact.type, outlet=data.article.outlet)
        if isinstance(fact, Casualties) and not fact.historical:
            name = (fact.side, fact.category, fact.outcome)
            mark = Mark(
                at=at,
                seq=seq,
                type=fact.type,
                outlet=data.article.outlet,
                series=name,
                count=fact.count,
                increment=fact.increment,
                cumulative=fact.cumulative,
                qualifier=fact.qualifier,
            )
            held = self._tolls.get(name)
            if fact.cumulative and fact.count is not None and (held is None or held[0] < key):
                self._tolls[name] = (
                    key,
                    Toll(
                        side=fact.side,
                        category=fact.category,
                        outcome=fact.outcome,
                        count=fact.count,
                        qualifier=fact.qualifier,
                        at=at,
                        event_id=event_id,
                        url=data.article.url,
                    ),
                )
        elif isinstance(fact, Ceasefire):
            if self._ceasefire is None or self._ceasefire[0] < key:
                now = CeasefireNow(status=fact.status, broker=fact.broker, at=at, event_id=event_id)
                self._ceasefire = (key, now)
        elif isinstance(fact, ThirdParty) and fact.stance != "denied":
            seen = self._outsiders.get(fact.actor)
            if seen is None:
                seen = self._outsiders[fact.actor] = _Seen(first=key, event_id=event_id)
            elif key < seen.first:
                seen.first, seen.event_id = key, event_id
            _earliest(seen.kinds, fact.kind, key)
            if fact.supports:
                _earliest(seen.supports, fact.supports, key)
            seen.stances.add(fact.stance)
            seen.sources.add(data.article.outlet or data.article.url)
        return mark

    def state(self) -> State:
        """The latest toll per series, the latest ceasefire status, every outside actor."""
        outsiders = [
            Outsider(
                actor=actor,
                kinds=sorted(seen.kinds, key=seen.kinds.__getitem__),
                supports=sorted(seen.supports, key=seen.supports.__getitem__),
                stances=sorted(seen.stances),
                sources=sorted(seen.sources),
                first_seen=seen.first[0],
                event_id=seen.event_id,
            )
            for actor, seen in self._outsiders.items()
        ]
        return State(
            tolls=sorted(
                (toll for _key, toll in self._tolls.values()),
                key=lambda t: (t.side or "", t.category, t.outcome),
            ),
            ceasefire=self._ceasefire[1] if self._ceasefire else None,
            third_parties=sorted(outsiders, key=lambda o: (o.first_seen, o.actor)),
        )

    def marks(
        self,
        fact_type: str | None = None,
        outlet: str | None = None,
        since: datetime | None = None,
    ) -> Sequence[Mark]:
        """The facts of one type and/or outlet, from ``since`` on, in event-time order."""
        if fact_type and outlet:
            chosen: Sequence[Mark] = [
                m for m in self.by_type.get(fact_type, []) if m.outlet == outlet
            ]
        elif fact_type:
            chosen = self.by_type.get(fact_type, [])
        elif outlet:
            chosen = self.by_outlet.get(outlet, [])
        else:
            chosen = self.facts
        if since is not None:
            chosen = chosen[bisect.bisect_left(chosen, as_utc(since), key=lambda m: m.at) :]
        return chosen

    def outlets(self) -> list[str]:
        return sorted(self.by_outlet)


def _merge(into: list[Mark], fresh: list[Mark]) -> None:
    """Put sorted ``fresh`` marks in their places: one by one when few, else sort once."""
    if len(fresh) > 16:
        into.extend(fresh)
        into.sort(key=order_key)  # two sorted runs: one linear merge
    else:
        for mark in fresh:
            bisect.insort(into, mark, key=order_key)


class Folds:
    """Each watch's fold over one store, brought up to the log head on every use by reading
    only the facts appended since the position it reflects.

    A consumer keeps one (the dashboard per server, the digester per process); the first use
    of a watch folds the log from the start. ``until`` holds a fold at an earlier position
    (the digest's end of day); asking for a position behind a fold folds again from zero.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._folds: dict[str, Fold] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def current(self, watch: str, until: int | None = None) -> Iterator[Fold]:
        """The watch's fold at the log head (or at ``until``), held for reading till the block
        ends: no other thread folds into it meanwhile."""
        with self._guard:
            lock = self._locks.setdefault(watch, threading.RLock())
        with lock:
            fold = self._folds.get(watch)
            if (
                fold is None
                or fold.version != FOLD_VERSION
                or (until is not None and until < fold.head)
            ):
                fold = Fold(watch)
            self._folds.pop(watch, None)
            self._advance(fold, until)  # a fold left half-way by an error is not kept
            self._folds[watch] = fold
            yield fold

    def _advance(self, fold: Fold, until: int | None) -> None:
        with self.store.read_session() as session:
            head = self.store.head(session)
            target = head if until is None else min(until, head)
            if fold.head < target:
                fold._add(self._tail(session, fold.watch, fold.head, target))
                fold.head = target

    @staticmethod
    def _tail(
        session: Session, watch: str, after: int, until: int
    ) -> Iterator[tuple[int, str, datetime, FactReported]]:
        """The watch's facts with ``after < seq <= until``, in batches; positions are gap-free
        up to the head read in this session, so none is missed. Only the columns a fold needs
        are read, and each payload goes through the one parser (upcast, then validate)."""
        while after < until:
            stmt = (
                select(
                    col(EventRow.seq),
                    col(EventRow.id),
                    col(EventRow.occurred_at),
                    col(EventRow.recorded_at),
                    col(EventRow.schema_version),
                    col(EventRow.data),
                )
                .where(
                    col(EventRow.type) == "FactReported",
                    col(EventRow.seq) > after,
                    col(EventRow.seq) <= until,
                    EventRow.data["watch"].as_string() == watch,
                )
                .order_by(col(EventRow.seq))
                .limit(READ_BATCH)
            )
            rows = session.execute(stmt).all()
            for seq, event_id, occurred, recorded, version, payload in rows:
                data = parse_event_data("FactReported", version, payload)
                assert isinstance(data, FactReported)
                yield seq, event_id, fact_time(data, occurred, recorded), data
            after = rows[-1][0] if len(rows) == READ_BATCH else until


def facts_at(store: EventStore, seqs: Sequence[int]) -> list[TimelineFact]:
    """The facts at these log positions, as the timeline lists them, in the order given."""
    found: dict[int, TimelineFact] = {}
    wanted = sorted(set(seqs))
    with store.read_session() as session:
        for i in range(0, len(wanted), IN_CHUNK):
            stmt = select(EventRow).where(col(EventRow.seq).in_(wanted[i : i + IN_CHUNK]))
            for row in session.execute(stmt).scalars():
                event = to_stored(row)
                if isinstance(event.data, FactReported):
                    found[event.seq] = entry(event, event.data)
    return [found[seq] for seq in seqs if seq in found]


def timeline(
    store: EventStore,
    watch: str,
    since: datetime | None = None,
    folds: Folds | None = None,
) -> Timeline:
    """The watch's state and its facts (from ``since`` on: it limits what is listed, not the
    state), as ``monitor timeline`` prints them."""
    with (folds or Folds(store)).current(watch) as fold:
        state = fold.state()
        seqs = [m.seq for m in fold.marks(since=since)]
    return Timeline(
        watch=watch,
        facts=facts_at(store, seqs),
        tolls=state.tolls,
        ceasefire=state.ceasefire,
        third_parties=state.third_parties,
    )
