"""The daily digest: once a day, per watch, one message saying what changed.

Alerts tell the moment something important happens; a desk also wants the day in one message.
At the configured time (``[digest] at``, UTC) each watch that learned anything in the past day
gets one digest: the facts recorded since the previous digest time, and where they leave the
conflict (the timeline's state). A digest is an ``AlertRaised`` of the rule ``daily-digest``
whose id derives from the watch and the day, appended with its outbox rows in one transaction,
so it is delivered like any alert, exactly once, and silences apply to it. Its content depends
only on the log up to the first event recorded at or after the digest time, so building it again
gives the same message. The state comes from the timeline's incremental fold, which the digester
keeps from one day (and one minute's check) to the next: a due day reads the log's tail, not
the whole log.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from monitor.alerting.silences import silences_in_log, silencing
from monitor.events import AlertRaised, AlertSuppressed, as_utc
from monitor.notify.outbox import enqueue
from monitor.store.log import EventStore, NewEvent, event_id_for
from monitor.store.tables import EventRow
from monitor.timeline import Folds, Timeline, facts_at
from monitor.watches import Watch

RULE = "daily-digest"
NAMESPACE = uuid.UUID("6f1d5f2c-3a57-4d1e-9a55-2b8d1c7f0e64")
DAY = timedelta(days=1)
MAX_LISTED = 20  # facts quoted in one digest; the rest are counted


def last_due(now: datetime, at: time) -> datetime:
    """The most recent digest time at or before ``now``."""
    now = as_utc(now)
    today = datetime.combine(now.date(), at, tzinfo=UTC)
    return today if now >= today else today - DAY


def digest_id(watch: str, ends: datetime) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{RULE}:{watch}:{as_utc(ends).isoformat()}"))


def compose(story: Timeline, watch: Watch, starts: datetime, ends: datetime) -> AlertRaised:
    """The digest of one watch for the day ending at ``ends``: counts, state, the facts."""
    kinds = Counter(f.type.replace("_", " ") for f in story.facts)
    counted = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    state: list[str] = []
    for toll in story.tolls:
        who = " ".join(x for x in (toll.side, toll.category) if x)
        state.append(f"toll {who} {toll.outcome}: {toll.count:,}")
    if story.ceasefire is not None:
        broker = f" (broker {story.ceasefire.broker})" if story.ceasefire.broker else ""
        state.append(f"ceasefire: {story.ceasefire.status}{broker}")
    new_outsiders = [o.actor for o in story.third_parties if o.first_seen >= starts]
    if new_outsiders:
        state.append(f"outside actors first reported: {', '.join(new_outsiders)}")
    lines = [f"{len(story.facts)} new facts ({counted}).", *state, ""]
    for fact in story.facts[:MAX_LISTED]:
        lines.append(f"{fact.at:%Y-%m-%d %H:%M} {fact.summary}: {fact.quote} ({fact.url})")
    if len(story.facts) > MAX_LISTED:
        lines.append(f"... and {len(story.facts) - MAX_LISTED} more (monitor timeline {watch.id})")
    day = f"{starts:%Y-%m-%d %H:%M} to {ends:%Y-%m-%d %H:%M} UTC"
    return AlertRaised(
        alert_id=digest_id(watch.id, ends),
        rule=RULE,
        rule_hash=hashlib.sha256(RULE.encode()).hexdigest()[:16],
        severity="info",
        watch=watch.id,
        title=f"{watch.name}: the day in {len(story.facts)} facts",
        summary=f"{watch.name}, {day}: {counted}." + (f" {'; '.join(state)}." if state else ""),
        body="\n".join(lines),
        dedup_key=f"{RULE}:{watch.id}:{ends.isoformat()}",
        data={
            "from": starts.isoformat(),
            "until": ends.isoformat(),
            "facts": len(story.facts),
            "by_type": dict(sorted(kinds.items())),
            "tolls": [t.model_dump(mode="json") for t in story.tolls],
            "ceasefire": story.ceasefire.model_dump(mode="json") if story.ceasefire else None,
            "new_third_parties": new_outsiders,
        },
        labels={"kind": "digest", "watch": watch.id},
    )


def position_at(store: EventStore, when: datetime, after: int = 0) -> tuple[int, bool]:
    """The log up to the first event recorded at or after ``when``: its last position, and
    whether the log has reached ``when`` (else the position is the head, and may grow).

    The log is cut by position, so that the digest's state is one fold of a prefix of the
    log; every event before the cut was recorded before ``when``. ``after`` is a position
    known to lie before the cut (a cut for an earlier time), so only the log beyond it is read.
    """
    with store.read_session() as session:
        head = store.head(session)
        stmt = select(func.min(col(EventRow.seq))).where(
            col(EventRow.seq) > after,
            col(EventRow.seq) <= head,
            col(EventRow.recorded_at) >= as_utc(when),
        )
        first = session.execute(stmt).scalar()
    return (head, False) if first is None else (int(first) - 1, True)


def day_of(store: EventStore, folds: Folds, watch: Watch, starts: int, ends: int) -> Timeline:
    """The watch's state at log position ``ends``, with its facts after ``starts`` listed."""
    with folds.current(watch.id, until=ends) as fold:
        state = fold.state()
        seqs = [m.seq for m in fold.facts if m.seq > starts]
    return Timeline(
        watch=watch.id,
        facts=facts_at(store, seqs),
        tolls=state.tolls,
        ceasefire=state.ceasefire,
        third_parties=state.third_parties,
    )


class Digester:
    """Sends the digests that are due; run it on one replica at a time."""

    def __init__(self, store: EventStore, channels: Sequence[str], at: time) -> None:
        self.store = store
        self.channels = list(channels)
        self.at = at
        self.folds = Folds(store)  # each watch's state, folded on from one day to the next
        self._cuts: dict[datetime, int] = {}  # digest time -> log position, once it has passed

    def run(self, watches: Sequence[Watch], now: datetime) -> list[AlertRaised]:
        """The digests of the latest due day not yet in the log; nothing when none is due."""
        if not self.channels:
            return []
        ends = last_due(now, self.at)
        sent: list[AlertRaised] = []
        day: tuple[int, int] | None = None
        for watch in watches:
            key = f"alert:{digest_id(watch.id, ends)}"
            if self.store.get(event_id_for(key)) is not None:
                continue  # this day's digest is in the log (sent, or silenced)
            day = day or (self._cut(ends - DAY), self._cut(ends))
            story = day_of(self.store, self.folds, watch, *day)
            if not story.facts:
                continue
            alert = compose(story, watch, ends - DAY, ends).model_copy(
                update={"channels": self.channels}
            )
            with self.store.transaction() as session:
                if self._record(session, alert, key, now):
                    sent.append(alert)
        return sent

    def _cut(self, when: datetime) -> int:
        """``position_at(when)``, remembered once the log has passed ``when`` (it cannot
        change then): the digest asks for the same two times each minute of a day, and for
        yesterday's end as today's start."""
        if when in self._cuts:
            return self._cuts[when]
        earlier = [p for t, p in self._cuts.items() if t <= when]
        cut, settled = position_at(self.store, when, after=max(earlier, default=0))
        if settled:
            self._cuts[when] = cut
            for old in sorted(self._cuts)[:-4]:
                del self._cuts[old]
        return cut

    def _record(self, session: Session, alert: AlertRaised, key: str, now: datetime) -> bool:
        labels = {**alert.labels, "rule": RULE, "severity": alert.severity, "status": "firing"}
        active = [s for s in silences_in_log(self.store, session) if s.active(now)]
        silence = silencing(active, labels)
        if silence is not None:
            muted = AlertSuppressed(
                rule=RULE,
                dedup_key=alert.dedup_key,
                reason=f"silenced by {silence.describe()}",
                trigger_event_id=alert.alert_id,
                kind="silence",
                alert_id=alert.alert_id,
                title=alert.title,
            )
            # Keyed like the alert itself: a silenced day is decided once, not retried.
            self.store.append(
                [NewEvent(stream=f"rule:{RULE}", data=muted, idempotency_key=key, occurred_at=now)],
                session=session,
            )
            return False
        result = self.store.append(
            [NewEvent(stream=f"alert:{alert.alert_id}", data=alert, idempotency_key=key)],
            session=session,
        )
        if not result.created[0]:
            return False
        enqueue(session, alert.alert_id, alert.channels, now)
        return True
