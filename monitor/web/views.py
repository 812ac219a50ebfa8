"""What the dashboard shows, read from the database with bounded queries.

Pages never load the whole log: the timeline keeps, per filter, its facts' event times and
positions in order, read once and then grown by the events appended since, and each page reads
only its own 50 events by position. A watch's state, chart and third parties come from its
casualty, ceasefire and involvement facts only, folded by ``monitor.timeline`` (the one place
that decides what "latest" means) once per log head; alerts are the newest few hundred; feed
numbers are aggregates computed by the database.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, case, func, select
from sqlmodel import col

from monitor.config import FeedConfig
from monitor.events import AlertRaised, AlertSuppressed, Evidence, FactReported, as_utc
from monitor.notify.admin import DeliveryState, delivery_states
from monitor.observability import status_snapshot
from monitor.store.log import IN_CHUNK, EventStore, StoredEvent, to_stored
from monitor.store.tables import (
    AlertState,
    CeasefireState,
    EventRow,
    FeedLease,
    SeriesState,
    ThirdPartyState,
)
from monitor.timeline import (
    CeasefireNow,
    Outsider,
    Timeline,
    TimelineFact,
    Toll,
    build,
    entry,
)

PAGE_SIZE = 50
ALERTS_SHOWN = 200
FACT_TYPES = ("casualties", "ceasefire", "third_party", "downing", "diplomacy")
# The facts a watch's state, chart and third-party table are made of.
STATE_TYPES = ("casualties", "ceasefire", "third_party")
CHART_OUTCOMES = ("killed", "wounded")
NO_SIDE = "unattributed"
HISTORY_SHOWN = 200  # ceasefire reports listed, the latest
POINTS_PER_SERIES = 400  # marks per chart series; a longer series keeps one per stretch of time
CACHE_ENTRIES = 64

T = TypeVar("T")
_cache: dict[tuple[str, ...], tuple[int, Any]] = {}
_cache_lock = threading.Lock()


def at_head(
    store: EventStore,
    key: tuple[str, ...],
    compute: Callable[[], T],
    unchanged: Callable[[int, int], bool] | None = None,
) -> T:
    """``compute()``, remembered until the log grows in a way that matters to it.

    The log only grows, so whatever was derived from it at head ``n`` stays true until an event
    is appended; ``unchanged(n, head)`` may say that the events after ``n`` leave the value as
    it was, and it is kept. The head is read before computing, so a value that already saw a
    newer event is recomputed once more, never kept stale.
    """
    head = store.head()
    full = (store.url, *key)
    with _cache_lock:
        hit = _cache.get(full)
    if hit is not None and hit[0] == head:
        return hit[1]
    if hit is not None and hit[0] < head and unchanged is not None and unchanged(hit[0], head):
        value = hit[1]
        with _cache_lock:
            _cache[full] = (head, value)
        return value
    value = compute()
    with _cache_lock:
        _cache.pop(full, None)
        _cache[full] = (head, value)
        while len(_cache) > CACHE_ENTRIES:
            del _cache[next(iter(_cache))]
    return value


def _watch_of() -> ColumnElement[str]:
    return EventRow.data["watch"].as_string()


def _fact_type() -> ColumnElement[str]:
    return EventRow.data["fact"]["type"].as_string()


def _outlet() -> ColumnElement[str]:
    return EventRow.data["article"]["outlet"].as_string()


def _feed_of() -> ColumnElement[str]:
    return EventRow.data["feed"].as_string()


def _event_time() -> ColumnElement[datetime]:
    """A fact's event time in SQL: the pipeline records publication time as ``occurred_at``."""
    return func.coalesce(col(EventRow.occurred_at), col(EventRow.recorded_at))


# Links to articles are followed only for these schemes: a feed could offer "javascript:".
LINK_SCHEMES = ("http://", "https://", "file://")


def safe_url(url: str | None) -> str | None:
    """The URL when a link to it is harmless, else None (the page shows it as text)."""
    if url and url.strip().lower().startswith(LINK_SCHEMES):
        return url.strip()
    return None


# --- a watch ------------------------------------------------------------------------------------


def watch_ids(store: EventStore, configured: Sequence[str] = ()) -> list[str]:
    """Configured watches first, then any other the projections have seen (an old watch)."""
    found: set[str] = set()
    with store.read_session() as session:
        for column in (
            SeriesState.watch,
            CeasefireState.watch,
            ThirdPartyState.watch,
            AlertState.watch,
        ):
            found.update(w for w in session.execute(select(col(column)).distinct()).scalars() if w)
    return [*configured, *sorted(found - set(configured))]


def _state_facts(watch: str) -> list[ColumnElement[bool]]:
    return [
        col(EventRow.type) == "FactReported",
        _watch_of() == watch,
        _fact_type().in_(STATE_TYPES),
    ]


def story(store: EventStore, watch: str) -> Timeline:
    """The watch's state facts folded by the timeline (tolls, ceasefire, third parties)."""
    stmt = select(EventRow).where(*_state_facts(watch)).order_by(col(EventRow.seq))
    with store.read_session() as session:
        events = [to_stored(row) for row in session.execute(stmt).scalars()]
    return build(events, watch)


class TimelinePage(BaseModel):
    """One page of a watch's facts in event-time order, with the filters that chose it."""

    watch: str
    facts: list[TimelineFact]
    page: int
    size: int
    total: int
    has_next: bool
    fact_type: str | None = None
    outlet: str | None = None
    types: list[str] = Field(default_factory=lambda: list(FACT_TYPES))
    outlets: list[str] = Field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


class _Order(BaseModel):
    """A filter's facts in event-time order, as (event time, seq), as of log position ``head``."""

    head: int
    keys: list[tuple[datetime, int]]
    outlets: set[str]


_orders: dict[tuple[str, ...], _Order] = {}
ORDERS_KEPT = 16


def _order(store: EventStore, key: tuple[str, ...], where: list[Any]) -> _Order:
    """The filter's order, brought up to the log head by reading only the facts appended since.

    The first request reads every matching fact's time and position once (one query, two
    columns); later ones read the events after the last head seen (positions are gap-free as
    readers see them, so none is missed) and insert them where their event time puts them.
    Pages are then cut from memory and fetched by position, whatever their depth.
    """
    full = (store.url, *key)
    with _cache_lock:
        known = _orders.get(full)
    with store.read_session() as session:
        head = store.head(session)
        if known is not None and known.head == head:
            return known
        after = known.head if known is not None else 0
        stmt = select(_event_time(), col(EventRow.seq), _outlet()).where(
            *where, col(EventRow.seq) > after, col(EventRow.seq) <= head
        )
        rows = session.execute(stmt).all()
    keys = list(known.keys) if known is not None else []
    outlets = set(known.outlets) if known is not None else set()
    fresh = sorted((as_utc(at), int(seq)) for at, seq, _o in rows)
    if len(fresh) > len(keys) // 8:
        keys = sorted(keys + fresh)
    else:
        for item in fresh:
            bisect.insort(keys, item)
    outlets.update(o for _at, _seq, o in rows if o)
    order = _Order(head=head, keys=keys, outlets=outlets)
    with _cache_lock:
        _orders.pop(full, None)
        _orders[full] = order
        while len(_orders) > ORDERS_KEPT:
            del _orders[next(iter(_orders))]
    return order


def timeline_page(
    store: EventStore,
    watch: str,
    *,
    fact_type: str | None = None,
    outlet: str | None = None,
    page: int = 1,
    size: int = PAGE_SIZE,
    since: datetime | None = None,
) -> TimelinePage:
    """A page of the timeline in event-time order, filtered by fact type and outlet."""
    page = max(1, page)
    where: list[Any] = [col(EventRow.type) == "FactReported", _watch_of() == watch]
    if fact_type:
        where.append(_fact_type() == fact_type)
    if outlet:
        where.append(_outlet() == outlet)
    if since is not None:
        where.append(_event_time() >= as_utc(since))
    filters = (watch, fact_type or "", outlet or "", since.isoformat() if since else "")
    order = _order(store, ("order", *filters), where)
    everything = (
        order
        if not (fact_type or outlet or since)
        else _order(store, ("order", watch, "", "", ""), where[:2])
    )
    chosen = order.keys[(page - 1) * size : page * size + 1]
    wanted = [seq for _at, seq in chosen[:size]]
    found: dict[int, EventRow] = {}
    with store.read_session() as session:
        for i in range(0, len(wanted), IN_CHUNK):
            stmt = select(EventRow).where(col(EventRow.seq).in_(wanted[i : i + IN_CHUNK]))
            found.update((row.seq, row) for row in session.execute(stmt).scalars())
    facts = []
    for seq in wanted:
        event = to_stored(found[seq])
        assert isinstance(event.data, FactReported)
        facts.append(entry(event, event.data))
    return TimelinePage(
        watch=watch,
        facts=facts,
        page=page,
        size=size,
        total=len(order.keys),
        has_next=len(chosen) > size,
        fact_type=fact_type,
        outlet=outlet,
        outlets=sorted(everything.outlets),
    )


class Point(BaseModel):
    """One plotted report: a running total, or a figure for one day or one event."""

    at: datetime
    count: int
    kind: str  # "total" or "increment"
    qualifier: str = "exact"
    event_id: str
    url: str
    outlet: str | None = None
    quote: str = ""


class Series(BaseModel):
    side: str
    category: str
    outcome: str
    totals: list[Point] = Field(default_factory=list)
    increments: list[Point] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.side} {self.category} {self.outcome}"


def casualty_series(facts: Sequence[TimelineFact]) -> dict[str, list[Series]]:
    """Side -> its killed/wounded series, in event time: cumulative reports are totals, other
    figures (and the "rose by 36" part of a cumulative report) are increments."""
    series: dict[tuple[str, str, str], Series] = {}
    for f in facts:
        fact = f.fact
        if (
            f.type != "casualties"
            or fact.get("historical")
            or fact["outcome"] not in CHART_OUTCOMES
        ):
            continue
        side = str(fact.get("side") or NO_SIDE)
        key = (side, str(fact["category"]), str(fact["outcome"]))
        s = series.setdefault(key, Series(side=key[0], category=key[1], outcome=key[2]))
        where = Point(
            at=f.at,
            count=0,
            kind="total",
            event_id=f.event_id,
            url=f.url,
            outlet=f.outlet,
            quote=f.quote,
        )
        count, increment = fact.get("count"), fact.get("increment")
        qualifier = str(fact.get("qualifier") or "exact")
        if fact.get("cumulative"):
            if isinstance(count, int):
                s.totals.append(where.model_copy(update={"count": count, "qualifier": qualifier}))
            if isinstance(increment, int):
                s.increments.append(
                    where.model_copy(update={"count": increment, "kind": "increment"})
                )
        elif isinstance(count, int):
            update = {"count": count, "kind": "increment", "qualifier": qualifier}
            s.increments.append(where.model_copy(update=update))
    by_side: dict[str, list[Series]] = {}
    for key in sorted(series, key=lambda k: (k[0] == NO_SIDE, k)):
        s = series[key]
        s.totals = _thin(s.totals, lambda bucket: bucket[-1])
        s.increments = _thin(s.increments, lambda bucket: max(bucket, key=lambda p: p.count))
        if s.totals or s.increments:
            by_side.setdefault(key[0], []).append(s)
    return by_side


def _thin(points: list[Point], keep: Callable[[list[Point]], Point]) -> list[Point]:
    """At most ``POINTS_PER_SERIES`` marks: one chosen per run of consecutive reports (the
    latest total, the largest increment), so a chart of years stays a page, not megabytes."""
    if len(points) <= POINTS_PER_SERIES:
        return points
    step = -(-len(points) // POINTS_PER_SERIES)
    return [keep(points[i : i + step]) for i in range(0, len(points), step)]


class WatchState(BaseModel):
    """What the watch page shows beside its timeline, folded once per log head."""

    tolls: list[Toll]
    ceasefire: CeasefireNow | None
    third_parties: list[Outsider]
    series: dict[str, list[Series]]
    ceasefire_history: list[TimelineFact]
    ceasefire_reports: int


def watch_state(store: EventStore, watch: str) -> WatchState:
    def fold() -> WatchState:
        told = story(store, watch)
        history = ceasefire_history(told.facts)
        return WatchState(
            tolls=told.tolls,
            ceasefire=told.ceasefire,
            third_parties=told.third_parties,
            series=casualty_series(told.facts),
            ceasefire_history=history[-HISTORY_SHOWN:],
            ceasefire_reports=len(history),
        )

    def unchanged(after: int, head: int) -> bool:
        """No state fact of this watch among the events appended since."""
        stmt = (
            select(col(EventRow.seq))
            .where(*_state_facts(watch), col(EventRow.seq) > after, col(EventRow.seq) <= head)
            .limit(1)
        )
        with store.read_session() as session:
            return session.execute(stmt).first() is None

    return at_head(store, ("state", watch), fold, unchanged)


def ceasefire_history(facts: Sequence[TimelineFact]) -> list[TimelineFact]:
    """Every ceasefire report in event time: the status as it was said, one row each."""
    return [f for f in facts if f.type == "ceasefire"]


def tolls_by_side(tolls: Sequence[Toll]) -> dict[str, list[Toll]]:
    out: dict[str, list[Toll]] = {}
    for toll in tolls:
        out.setdefault(toll.side or NO_SIDE, []).append(toll)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == NO_SIDE, kv[0])))


# --- alerts -------------------------------------------------------------------------------------


class AlertView(BaseModel):
    alert_id: str
    seq: int
    at: datetime | None
    raised: datetime
    rule: str
    severity: str
    status: str
    watch: str | None
    title: str
    summary: str
    explanation: list[str]
    evidence: list[Evidence]
    deliveries: list[DeliveryState]
    channels: list[str]


class SuppressionView(BaseModel):
    seq: int
    at: datetime
    rule: str
    kind: str | None
    reason: str
    title: str | None
    alert_id: str | None
    trigger_event_id: str


def _newest(
    store: EventStore, kind: str, watch: str | None, since: datetime | None, limit: int
) -> list[StoredEvent]:
    where = [col(EventRow.type) == kind]
    if watch is not None and kind == "AlertRaised":
        where.append(_watch_of() == watch)
    if since is not None:
        where.append(_event_time() >= as_utc(since))
    stmt = select(EventRow).where(*where).order_by(col(EventRow.seq).desc()).limit(limit)
    with store.read_session() as session:
        return [to_stored(row) for row in session.execute(stmt).scalars()]


def alerts(
    store: EventStore,
    *,
    watch: str | None = None,
    since: datetime | None = None,
    limit: int = ALERTS_SHOWN,
) -> tuple[list[AlertView], list[SuppressionView]]:
    """The newest alerts with why they fired and where each delivery stands, and the newest
    suppressions with their reason; newest first."""
    deliveries = delivery_states(store)
    raised = []
    for event in _newest(store, "AlertRaised", watch, since, limit):
        a = event.data
        assert isinstance(a, AlertRaised)
        raised.append(
            AlertView(
                alert_id=a.alert_id,
                seq=event.seq,
                at=event.occurred_at,
                raised=event.recorded_at,
                rule=a.rule,
                severity=a.severity,
                status=a.status,
                watch=a.watch,
                title=a.title,
                summary=a.summary,
                explanation=a.explanation,
                evidence=a.evidence,
                deliveries=deliveries.get(a.alert_id, []),
                channels=a.channels,
            )
        )
    suppressed = []
    quiet = _newest(store, "AlertSuppressed", None, since, limit)
    triggers = _watches_of(store, [str(getattr(e.data, "trigger_event_id", "")) for e in quiet])
    for event in quiet:
        s = event.data
        assert isinstance(s, AlertSuppressed)
        if watch is not None and triggers.get(s.trigger_event_id) != watch:
            continue  # a suppression belongs to the watch of the fact that triggered it
        suppressed.append(
            SuppressionView(
                seq=event.seq,
                at=event.occurred_at or event.recorded_at,
                rule=s.rule,
                kind=s.kind,
                reason=s.reason,
                title=s.title,
                alert_id=s.alert_id,
                trigger_event_id=s.trigger_event_id,
            )
        )
    return raised, suppressed


def _watches_of(store: EventStore, event_ids: Sequence[str]) -> dict[str, str | None]:
    """The watch of each (fact) event named, by id."""
    out: dict[str, str | None] = {}
    ids = sorted(set(event_ids))
    with store.read_session() as session:
        for i in range(0, len(ids), IN_CHUNK):
            stmt = select(col(EventRow.id), _watch_of()).where(
                col(EventRow.id).in_(ids[i : i + IN_CHUNK])
            )
            out.update({event_id: w for event_id, w in session.execute(stmt).all()})
    return out


def recent_alert_counts(
    store: EventStore, now: datetime | None = None, window: timedelta = timedelta(hours=24)
) -> dict[str | None, int]:
    """Alerts the daemon raised in the last ``window`` (by when they were raised), per watch."""
    now = now or datetime.now(UTC)
    stmt = (
        select(_watch_of(), func.count())
        .where(col(EventRow.type) == "AlertRaised", col(EventRow.recorded_at) >= now - window)
        .group_by(_watch_of())
    )
    with store.read_session() as session:
        return {w: int(n) for w, n in session.execute(stmt).all()}


# --- feeds --------------------------------------------------------------------------------------


def feed_rows(
    store: EventStore, feeds: Sequence[FeedConfig], now: datetime | None = None
) -> list[dict[str, Any]]:
    """``monitor status``'s feed rows, with poll and error counts and the 304 share from the log."""
    now = now or datetime.now(UTC)
    snapshot = status_snapshot(store, feeds)
    not_modified = case((EventRow.data["not_modified"].as_boolean(), 1), else_=0)
    polled = (
        select(_feed_of(), func.count(), func.sum(not_modified))
        .where(col(EventRow.type) == "FeedPolled")
        .group_by(_feed_of())
    )
    failed = (
        select(_feed_of(), func.count())
        .where(col(EventRow.type) == "FeedFailed")
        .group_by(_feed_of())
    )
    with store.read_session() as session:
        polls = {f: (int(n), int(nm or 0)) for f, n, nm in session.execute(polled).all()}
        errors = {f: int(n) for f, n in session.execute(failed).all()}
        etags = {
            f: bool(e or m)
            for f, e, m in session.execute(
                select(col(FeedLease.feed), col(FeedLease.etag), col(FeedLease.last_modified))
            ).all()
        }
    rows = []
    for row in snapshot["feeds"]:
        name = row["feed"]
        ok, unchanged = polls.get(name, (0, 0))
        success = row["last_success"]
        lag = now - datetime.fromisoformat(success) if success else None
        rows.append(
            {
                **row,
                "polls_ok": ok,
                "polls_failed": errors.get(name, 0),
                "not_modified": unchanged,
                "not_modified_rate": unchanged / ok if ok else None,
                "validators": etags.get(name, False),
                "lag": lag,
            }
        )
    return rows


def feed_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    failing = [r["feed"] for r in rows if r["consecutive_failures"]]
    polls = [
        r["last_poll"] or r["last_success"] for r in rows if r["last_poll"] or r["last_success"]
    ]
    return {"feeds": len(rows), "failing": failing, "last_poll": max(polls) if polls else None}
