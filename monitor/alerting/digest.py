"""The daily digest: once a day, per watch, one message saying what changed.

Alerts tell the moment something important happens; a desk also wants the day in one message.
At the configured time (``[digest] at``, UTC) each watch that learned anything in the past day
gets one digest: the facts recorded since the previous digest time, and where they leave the
conflict (the timeline's state). A digest is an ``AlertRaised`` of the rule ``daily-digest``
whose id derives from the watch and the day, appended with its outbox rows in one transaction,
so it is delivered like any alert, exactly once, and silences apply to it. Its content depends
only on events recorded before the digest time, so building it again gives the same message.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from sqlmodel import Session

from monitor.alerting.silences import silences_in_log, silencing
from monitor.events import AlertRaised, AlertSuppressed, FactReported, as_utc
from monitor.notify.outbox import enqueue
from monitor.store.log import EventStore, NewEvent, event_id_for
from monitor.timeline import Timeline, build
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


def day_of(store: EventStore, watch: Watch, ends: datetime) -> Timeline:
    """The watch's facts recorded in the day before ``ends``, and the state at ``ends``."""
    starts = ends - DAY
    known = [
        e
        for e in store.read(types=["FactReported"])
        if isinstance(e.data, FactReported) and as_utc(e.recorded_at) < ends
    ]
    story = build(known, watch.id)
    fresh = {e.id for e in known if as_utc(e.recorded_at) >= starts}
    return story.model_copy(update={"facts": [f for f in story.facts if f.event_id in fresh]})


class Digester:
    """Sends the digests that are due; run it on one replica at a time."""

    def __init__(self, store: EventStore, channels: Sequence[str], at: time) -> None:
        self.store = store
        self.channels = list(channels)
        self.at = at

    def run(self, watches: Sequence[Watch], now: datetime) -> list[AlertRaised]:
        """The digests of the latest due day not yet in the log; nothing when none is due."""
        if not self.channels:
            return []
        ends = last_due(now, self.at)
        sent: list[AlertRaised] = []
        for watch in watches:
            key = f"alert:{digest_id(watch.id, ends)}"
            if self.store.get(event_id_for(key)) is not None:
                continue  # this day's digest is in the log (sent, or silenced)
            story = day_of(self.store, watch, ends)
            if not story.facts:
                continue
            alert = compose(story, watch, ends - DAY, ends).model_copy(
                update={"channels": self.channels}
            )
            with self.store.transaction() as session:
                if self._record(session, alert, key, now):
                    sent.append(alert)
        return sent

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
