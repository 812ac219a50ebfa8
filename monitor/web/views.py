"""What the dashboard shows, read from the database with bounded queries.

A watch's state, chart, ceasefire history and timeline order come from the timeline's
incremental fold (``monitor.timeline.Folds``, the one place that decides what "latest" means),
kept by the ``Views`` object of one server: a request after new facts reads only the log's tail,
and each page then reads only the facts it shows, by position. Alerts are the newest few
hundred; feed numbers are aggregates computed by the database. Nothing here is module-level
state: what is remembered between requests lives on the ``Views`` instance the server holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, case, func, select
from sqlmodel import col

from monitor.config import FeedConfig
from monitor.events import AlertRaised, AlertSuppressed, Evidence, as_utc
from monitor.notify.admin import DeliveryState, delivery_states
from monitor.status import status_snapshot
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
    Fold,
    Folds,
    Mark,
    Outsider,
    TimelineFact,
    Toll,
    facts_at,
    order_key,
)

PAGE_SIZE = 50
ALERTS_SHOWN = 200
FACT_TYPES = ("casualties", "ceasefire", "third_party", "downing", "diplomacy")
CHART_OUTCOMES = ("killed", "wounded")
HELD_OUTCOMES = ("missing", "captured")  # figures of people, not deaths: listed, not plotted
NO_SIDE = "unattributed"
HISTORY_SHOWN = 200  # ceasefire reports listed, the latest; missing and captured likewise
POINTS_PER_SERIES = 200  # marks per chart series; a longer series keeps one per slot of time
# Slot widths for thinning a long series, smallest first: slots are aligned to these widths
# from a fixed origin, so a new report changes only its own slot, not every mark's choice.
SLOTS = tuple(timedelta(hours=h) for h in (1 / 60, 0.25, 1, 3, 6, 12, 24, 48, 168, 720, 2160, 8760))
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
FACTS_KEPT = 8192  # facts remembered by position (a logged fact never changes)


def _watch_of() -> ColumnElement[str]:
    return EventRow.data["watch"].as_string()


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


def slot_width(marks: Sequence[Mark]) -> timedelta | None:
    """The narrowest slot that cuts these reports' time span into at most
    ``POINTS_PER_SERIES`` slots; None when there are few enough to draw every one."""
    if len(marks) <= POINTS_PER_SERIES:
        return None
    span = marks[-1].at - marks[0].at
    for width in SLOTS:
        if span / width < POINTS_PER_SERIES:
            return width
    return SLOTS[-1] * (span / SLOTS[-1] / POINTS_PER_SERIES + 1)


def thin(marks: Sequence[Mark], keep: Callable[[list[Mark]], Mark]) -> list[Mark]:
    """At most about ``POINTS_PER_SERIES`` marks, one chosen per slot of time (the latest
    total, the largest increment), so a chart of years stays a page, not megabytes."""
    width = slot_width(marks)
    if width is None:
        return list(marks)
    chosen: list[Mark] = []
    bucket: list[Mark] = []
    current = None
    for mark in marks:
        slot = (mark.at - ORIGIN) // width
        if slot != current and bucket:
            chosen.append(keep(bucket))
            bucket = []
        current = slot
        bucket.append(mark)
    if bucket:
        chosen.append(keep(bucket))
    return chosen


def chart_marks(fold: Fold) -> dict[tuple[str, str, str], tuple[list[Mark], list[Mark]]]:
    """Series -> (totals, increments) to plot: cumulative reports are totals, other figures
    (and the "rose by 36" part of a cumulative report) are increments; thinned."""
    out = {}
    for (side, category, outcome), marks in fold.series.items():
        if outcome not in CHART_OUTCOMES:
            continue
        totals = [m for m in marks if m.cumulative and m.count is not None]
        increments = [m for m in marks if (m.increment if m.cumulative else m.count) is not None]
        totals = thin(totals, lambda bucket: bucket[-1])
        increments = thin(increments, lambda bucket: max(bucket, key=_increment))
        if totals or increments:
            out[(side or NO_SIDE, category, outcome)] = (totals, increments)
    return out


def _increment(mark: Mark) -> int:
    value = mark.increment if mark.cumulative else mark.count
    return value or 0


def casualty_series(
    marks: dict[tuple[str, str, str], tuple[list[Mark], list[Mark]]],
    facts: dict[int, TimelineFact],
) -> dict[str, list[Series]]:
    """Side -> its killed/wounded series, in event time, each mark with its source."""

    def point(mark: Mark, count: int, kind: str, qualifier: str) -> Point:
        f = facts[mark.seq]
        return Point(
            at=mark.at,
            count=count,
            kind=kind,
            qualifier=qualifier,
            event_id=f.event_id,
            url=f.url,
            outlet=f.outlet,
            quote=f.quote,
        )

    by_side: dict[str, list[Series]] = {}
    for key in sorted(marks, key=lambda k: (k[0] == NO_SIDE, k)):
        totals, increments = marks[key]
        by_side.setdefault(key[0], []).append(
            Series(
                side=key[0],
                category=key[1],
                outcome=key[2],
                totals=[point(m, m.count or 0, "total", m.qualifier) for m in totals],
                increments=[
                    point(m, _increment(m), "increment", "exact" if m.cumulative else m.qualifier)
                    for m in increments
                ],
            )
        )
    return by_side


class WatchState(BaseModel):
    """What the watch page shows beside its timeline, derived once per change of the fold."""

    tolls: list[Toll]
    ceasefire: CeasefireNow | None
    third_parties: list[Outsider]
    series: dict[str, list[Series]]
    ceasefire_history: list[TimelineFact]
    ceasefire_reports: int
    held: list[TimelineFact]  # missing and captured reports, the latest
    held_reports: int


class Views:
    """The dashboard's reads of one store, and what they remember between requests.

    Each watch's fold (kept up to the log head by reading its tail), the watch state derived
    from it (kept while no fact of that watch arrives) and the facts pages showed, by position.
    One instance per server, shared by its request threads; nothing is global.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.folds = Folds(store)
        self._states: dict[str, tuple[Fold, int, WatchState]] = {}
        self._facts: dict[int, TimelineFact] = {}
        self._lock = threading.Lock()

    def facts(self, seqs: Sequence[int]) -> dict[int, TimelineFact]:
        """The facts at these positions, read from the log only when not remembered."""
        with self._lock:
            known = {seq: self._facts[seq] for seq in seqs if seq in self._facts}
        missing = [seq for seq in seqs if seq not in known]
        if missing:
            read = {f.seq: f for f in facts_at(self.store, missing)}
            known.update(read)
            with self._lock:
                self._facts.update(read)
                for old in list(self._facts)[: max(0, len(self._facts) - FACTS_KEPT)]:
                    del self._facts[old]
        return known

    def watch_state(self, watch: str) -> WatchState:
        """Tolls, ceasefire, third parties, chart, ceasefire history and the missing and
        captured of one watch, as of the log head."""
        with self.folds.current(watch) as fold:
            kept = self._states.get(watch)
            if kept is not None and kept[0] is fold and kept[1] == fold.revision:
                return kept[2]
            revision = fold.revision
            state = fold.state()
            plotted = chart_marks(fold)
            ceasefires = fold.by_type.get("ceasefire", [])
            history = list(ceasefires[-HISTORY_SHOWN:])
            held_all = [
                m for name, marks in fold.series.items() if name[2] in HELD_OUTCOMES for m in marks
            ]
        held_all.sort(key=order_key)
        held = held_all[-HISTORY_SHOWN:]
        wanted = [m.seq for t, i in plotted.values() for m in (*t, *i)]
        found = self.facts([*wanted, *(m.seq for m in history), *(m.seq for m in held)])
        value = WatchState(
            tolls=state.tolls,
            ceasefire=state.ceasefire,
            third_parties=state.third_parties,
            series=casualty_series(plotted, found),
            ceasefire_history=[found[m.seq] for m in history],
            ceasefire_reports=len(ceasefires),
            held=[found[m.seq] for m in held],
            held_reports=len(held_all),
        )
        with self._lock:
            self._states[watch] = (fold, revision, value)
        return value

    def timeline_page(
        self,
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
        with self.folds.current(watch) as fold:
            chosen = fold.marks(fact_type, outlet, since)
            window = [m.seq for m in chosen[(page - 1) * size : page * size + 1]]
            total = len(chosen)
            outlets = fold.outlets()
        found = self.facts(window[:size])
        return TimelinePage(
            watch=watch,
            facts=[found[seq] for seq in window[:size]],
            page=page,
            size=size,
            total=total,
            has_next=len(window) > size,
            fact_type=fact_type,
            outlet=outlet,
            outlets=outlets,
        )


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
