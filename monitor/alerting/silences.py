"""Silences: an operator mutes matching alerts for a while (Alertmanager's silences).

A silence is an event in the log (``SilenceAdded``, ``SilenceExpired``), never a row edited in
place: the evaluator reads them in log order like any other input, so a backtest over the
same log silences the same alerts. Matchers test alert labels (``rule``, ``severity``,
``watch``, ``dedup_key``, ``status``, ``type``, ``event`` and the rule's own labels) with
``=``, ``!=``, ``=~`` and ``!~`` (regexes match the whole value, as in Alertmanager).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from monitor.alerting.pending import Pending
from monitor.alerting.state import GLOBAL, SILENCES, State
from monitor.events import SilenceAdded, SilenceExpired, SilenceMatcher, as_utc
from monitor.store.log import EventStore, NewEvent

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class SilenceError(ValueError):
    """A silence that cannot be added or expired (bad matcher, unknown id)."""


def parse_matcher(text: str) -> SilenceMatcher:
    """``rule=ceasefire-collapse``, ``severity!=info``, ``watch=~nagorno.*``."""
    m = _MATCHER.match(text)
    if not m:
        raise SilenceError(f"not a matcher: {text!r} (use name=value, !=, =~ or !~)")
    name, op, value = m.groups()
    value = value.strip("\"'")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise SilenceError(f"{text!r}: not a valid regular expression: {exc}") from exc
    # The pattern admits only the four operators; validation types ``op`` as one of them.
    return SilenceMatcher.model_validate({"name": name, "op": op, "value": value})


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: tuple[SilenceMatcher, ...]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""
    created_by: str | None = None

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        return all(_test(m, labels.get(m.name, "")) for m in self.matchers)

    def describe(self) -> str:
        text = ",".join(f"{m.name}{m.op}{m.value}" for m in self.matchers)
        note = f" ({self.comment})" if self.comment else ""
        return f"silence {self.silence_id} [{text}] until {self.ends_at.isoformat()}{note}"

    def to_json(self) -> dict[str, Any]:
        return {
            "silence_id": self.silence_id,
            "matchers": [m.model_dump() for m in self.matchers],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Silence:
        return cls(
            silence_id=raw["silence_id"],
            matchers=tuple(SilenceMatcher.model_validate(m) for m in raw["matchers"]),
            starts_at=datetime.fromisoformat(raw["starts_at"]),
            ends_at=datetime.fromisoformat(raw["ends_at"]),
            comment=raw.get("comment", ""),
            created_by=raw.get("created_by"),
        )


def _test(m: SilenceMatcher, value: str) -> bool:
    if m.op == "=":
        return value == m.value
    if m.op == "!=":
        return value != m.value
    hit = re.fullmatch(m.value, value) is not None
    return hit if m.op == "=~" else not hit


def _fold(table: dict[str, Silence], data: SilenceAdded | SilenceExpired) -> None:
    """One silence event applied to the silences known so far."""
    if isinstance(data, SilenceAdded):
        table[data.silence_id] = Silence(
            data.silence_id,
            tuple(data.matchers),
            as_utc(data.starts_at),
            as_utc(data.ends_at),
            data.comment,
            data.created_by,
        )
    elif data.silence_id in table:
        old = table[data.silence_id]
        ends = min(old.ends_at, as_utc(data.expired_at))
        table[data.silence_id] = Silence(
            old.silence_id, old.matchers, old.starts_at, ends, old.comment, old.created_by
        )


def silence_state(state: State, data: SilenceAdded | SilenceExpired) -> None:
    """Fold a silence event into the evaluator's state."""
    raw = state.get(GLOBAL, SILENCES) or {}
    table = {k: Silence.from_json(v) for k, v in raw.items()}
    _fold(table, data)
    state.put(GLOBAL, SILENCES, {k: v.to_json() for k, v in table.items()})


def active_silences(state: State, at: datetime) -> list[Silence]:
    table = state.get(GLOBAL, SILENCES) or {}
    silences = (Silence.from_json(raw) for _, raw in sorted(table.items()))
    return [s for s in silences if s.active(at)]


def silencing(silences: list[Silence], labels: dict[str, str]) -> Silence | None:
    """The first silence that matches these labels, if any."""
    return next((s for s in silences if s.matches(labels)), None)


class Silences:
    """The last noise-control stage: an operator's silence mutes matching alerts. Silences
    are matched against the moment the triggering event entered the log (``clock``)."""

    kind = "silence"

    def mutes(self, pending: Pending, state: State) -> str | None:
        silence = silencing(active_silences(state, pending.clock), pending.labels())
        return f"silenced by {silence.describe()}" if silence is not None else None

    def raised(self, pending: Pending, alert: Any, state: State) -> None:
        return None


def silences_in_log(store: EventStore, session: Session | None = None) -> list[Silence]:
    """Every silence the log holds, as of its latest events (for alerts raised outside the
    evaluator, such as source health, and for ``monitor silence list``)."""
    table: dict[str, Silence] = {}
    for event in store.read(types=["SilenceAdded", "SilenceExpired"], session=session):
        if isinstance(event.data, SilenceAdded | SilenceExpired):
            _fold(table, event.data)
    return list(table.values())


# --- operator commands (the CLI's `monitor silence ...`) ------------------------------------


def add_silence(
    store: EventStore,
    matchers: list[str],
    duration: timedelta,
    *,
    now: datetime,
    comment: str = "",
    created_by: str | None = None,
) -> SilenceAdded:
    """Append a silence starting ``now``; the id is new each time (an operator's action)."""
    if not matchers:
        raise SilenceError("a silence needs at least one --match")
    if duration <= timedelta(0):
        raise SilenceError("a silence needs a positive duration")
    parsed = [parse_matcher(m) for m in matchers]
    silence_id = str(uuid.uuid4())
    data = SilenceAdded(
        silence_id=silence_id,
        matchers=parsed,
        starts_at=as_utc(now),
        ends_at=as_utc(now) + duration,
        created_by=created_by,
        comment=comment,
    )
    store.append(
        [
            NewEvent(
                stream=f"silence:{silence_id}",
                data=data,
                idempotency_key=f"silence:{silence_id}",
                occurred_at=as_utc(now),
            )
        ]
    )
    return data


def list_silences(
    store: EventStore, *, now: datetime, include_expired: bool = False
) -> list[dict[str, Any]]:
    """Every silence in the log with its state at ``now`` (active, pending or expired)."""
    now = as_utc(now)
    rows = []
    for silence in silences_in_log(store):
        status = (
            "active" if silence.active(now) else "pending" if now < silence.starts_at else "expired"
        )
        if status == "expired" and not include_expired:
            continue
        rows.append({**silence.to_json(), "status": status})
    return rows


def expire_silence(store: EventStore, silence_id: str, *, now: datetime) -> SilenceExpired:
    """End a silence now; a prefix of the id is enough when it is unambiguous."""
    known = [
        e.data.silence_id
        for e in store.read(types=["SilenceAdded"])
        if isinstance(e.data, SilenceAdded)
    ]
    found = [s for s in known if s.startswith(silence_id)]
    if len(found) != 1:
        what = "no silence" if not found else f"{len(found)} silences"
        raise SilenceError(f"{what} with id {silence_id!r}")
    data = SilenceExpired(silence_id=found[0], expired_at=as_utc(now))
    store.append(
        [
            NewEvent(
                stream=f"silence:{found[0]}",
                data=data,
                idempotency_key=f"silence-expired:{found[0]}",
                occurred_at=as_utc(now),
            )
        ]
    )
    return data
