"""Rule evaluation as a consumer of the log.

For each new ``FactReported`` event, every rule in scope decides whether it matches; noise
control (dedup key, cooldown) then decides whether to raise. Raising appends ``AlertRaised``
and one outbox row per routed channel in the same transaction as the rule state and the
checkpoint. Alert ids derive from the rule, dedup key and triggering event, so replaying the
log raises the same alerts, and the idempotent append means a replay never re-sends one.
All time here is event time (the article's publication), never the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from monitor.alerting.rules import JumpRule, MatchRule, NewValueRule, Rule, RuleSet
from monitor.alerting.templates import DEFAULT_SUMMARY, DEFAULT_TITLES, render
from monitor.events import AlertRaised, AlertSuppressed, Evidence, FactReported
from monitor.store.log import EventStore, NewEvent, StoredEvent
from monitor.store.projections import checkpoint
from monitor.store.tables import Checkpoint, OutboxRow, RuleState

ALERT_NAMESPACE = uuid.UUID("a7c3e0d2-5f4b-4e8a-8d2c-1b9e6f3a0c55")
CHECKPOINT = "rules"


class Route(BaseModel):
    """A channel as the evaluator sees it: a name and the tags it accepts (``*``: all)."""

    name: str
    tags: list[str]

    def accepts(self, rule_channels: Sequence[str]) -> bool:
        return "*" in self.tags or any(t in self.tags for t in rule_channels)


class Hit(BaseModel):
    """A rule's verdict that something is worth raising, before noise control."""

    data: dict[str, Any]
    evidence: list[Evidence]


class Memory:
    """Per-rule state in the ``rule_state`` table, inside the evaluator's transaction."""

    def __init__(self, session: Session, rule_id: str) -> None:
        self.session = session
        self.rule_id = rule_id

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.session.get(RuleState, (self.rule_id, key))
        return dict(row.value) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        row = self.session.get(RuleState, (self.rule_id, key))
        if row is None:
            self.session.add(RuleState(rule=self.rule_id, key=key, value=value))
        else:
            row.value = value
            self.session.add(row)


def fact_context(event: StoredEvent) -> dict[str, Any]:
    """The fields a rule can filter and template on: the fact's, plus watch and article."""
    data = event.data
    assert isinstance(data, FactReported)
    fact = data.fact.model_dump(mode="json")
    article = data.article.model_dump(mode="json")
    return {**fact, "watch": data.watch, "article": article, "outlet": data.article.outlet}


def evidence_of(event: StoredEvent) -> Evidence:
    data = event.data
    assert isinstance(data, FactReported)
    return Evidence(
        event_id=event.id,
        quote=data.fact.quote,
        url=data.article.url,
        outlet=data.article.outlet,
        published=data.article.published,
    )


def event_time(event: StoredEvent) -> datetime:
    data = event.data
    if isinstance(data, FactReported) and data.article.published:
        return data.article.published
    return event.occurred_at or event.recorded_at


def selects(rule: Rule, event: StoredEvent, context: dict[str, Any]) -> bool:
    data = event.data
    if not isinstance(data, FactReported) or data.fact.type != rule.event:
        return False
    if not rule.applies_to(data.watch):
        return False
    return all(cond.test(_lookup(context, name)) for name, cond in rule.where.items())


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _key(context: dict[str, Any], fields: Sequence[str]) -> str:
    return "|".join(str(_lookup(context, f)) for f in fields)


def check_match(rule: MatchRule, event: StoredEvent, ctx: dict[str, Any], memory: Memory) -> Hit:
    return Hit(data={}, evidence=[evidence_of(event)])


def check_new_value(
    rule: NewValueRule, event: StoredEvent, ctx: dict[str, Any], memory: Memory
) -> Hit | None:
    value = _lookup(ctx, rule.value)
    if value is None:
        return None
    key = f"seen:{_key(ctx, rule.per)}|{value}"
    if memory.get(key) is not None:
        return None
    memory.put(key, {"event_id": event.id})
    return Hit(data={"value": value}, evidence=[evidence_of(event)])


def check_jump(rule: JumpRule, event: StoredEvent, ctx: dict[str, Any], memory: Memory) -> Hit | None:
    current = _lookup(ctx, rule.value)
    if not isinstance(current, int | float) or isinstance(current, bool):
        return None
    key = f"series:{_key(ctx, rule.series)}"
    previous = memory.get(key)
    here = evidence_of(event)
    # The series remembers its highest figure: a lower report later is a competing claim, and
    # must not make the old figure look like a fresh jump.
    if previous is None or current > previous["value"]:
        memory.put(key, {"value": current, "evidence": here.model_dump(mode="json")})
    if previous is None:
        return None
    before = previous["value"]
    rise = current - before
    percent = (rise / before * 100) if before else None
    big_enough = (rule.min_increase is not None and rise >= rule.min_increase) or (
        rule.min_percent is not None and percent is not None and percent >= rule.min_percent
    )
    if rise <= 0 or not big_enough:
        return None
    data = {
        "series": " ".join(str(_lookup(ctx, f)) for f in rule.series if f != "watch"),
        "previous": before,
        "current": current,
        "increase": rise,
        "percent": round(percent, 1) if percent is not None else None,
        **{f: _lookup(ctx, f) for f in rule.series if f != "watch"},
    }
    return Hit(data=data, evidence=[Evidence.model_validate(previous["evidence"]), here])


CHECKS = {"match": check_match, "new_value": check_new_value, "jump": check_jump}


class Evaluator:
    """Runs a rule set over the log from its checkpoint, raising alerts as it goes."""

    def __init__(self, rules: RuleSet, routes: Sequence[Route] = ()) -> None:
        self.rules = rules
        self.routes = list(routes)

    def catch_up(self, store: EventStore, batch: int = 200) -> list[AlertRaised]:
        raised: list[AlertRaised] = []
        while True:
            with store.transaction() as session:
                start = checkpoint(session, CHECKPOINT)
                events = list(store.read(start, limit=batch, session=session))
                if not events:
                    return raised
                for event in events:
                    if event.type == "FactReported":
                        raised.extend(self._evaluate(store, session, event))
                row = session.get(Checkpoint, CHECKPOINT) or Checkpoint(name=CHECKPOINT)
                row.seq = events[-1].seq
                session.add(row)

    def _evaluate(self, store: EventStore, session: Session, event: StoredEvent) -> list[AlertRaised]:
        ctx = fact_context(event)
        out = []
        for rule in self.rules.rules:
            if not selects(rule, event, ctx):
                continue
            memory = Memory(session, rule.id)
            hit = CHECKS[rule.type](rule, event, ctx, memory)
            if hit is None:
                continue
            alert = self._raise(store, session, rule, event, ctx, hit, memory)
            if alert is not None:
                out.append(alert)
        return out

    def _raise(
        self,
        store: EventStore,
        session: Session,
        rule: Rule,
        event: StoredEvent,
        ctx: dict[str, Any],
        hit: Hit,
        memory: Memory,
    ) -> AlertRaised | None:
        tctx = {**ctx, "rule": rule.model_dump(mode="json"), "data": hit.data, "fact": ctx}
        dedup_key = f"{rule.id}:" + render(rule.dedup_key or _default_key(rule), tctx)
        when = event_time(event)
        last = memory.get(f"fired:{dedup_key}")
        if last is not None and _within(last["at"], when, rule.cooldown):
            reason = f"cooldown {rule.cooldown} since alert {last['alert_id']}"
            self._suppress(store, session, rule, dedup_key, event, reason)
            return None
        alert_id = str(uuid.uuid5(ALERT_NAMESPACE, f"{rule.id}|{dedup_key}|{event.id}"))
        alert = AlertRaised(
            alert_id=alert_id,
            rule=rule.id,
            rule_hash=rule.digest(),
            severity=rule.severity,
            watch=ctx["watch"],
            title=render(rule.title or DEFAULT_TITLES[rule.type], tctx),
            summary=render(rule.summary or DEFAULT_SUMMARY, tctx),
            dedup_key=dedup_key,
            data=hit.data,
            evidence=hit.evidence,
            channels=[r.name for r in self.routes if r.accepts(rule.channels)],
            labels=dict(rule.labels),
        )
        memory.put(f"fired:{dedup_key}", {"at": when.isoformat(), "alert_id": alert_id})
        result = store.append(
            [
                NewEvent(
                    stream=f"alert:{alert_id}",
                    data=alert,
                    idempotency_key=f"alert:{alert_id}",
                    occurred_at=when,
                    metadata={"causation_id": event.id},
                )
            ],
            session=session,
        )
        if not result.created[0]:
            return None  # raised before: a replay must not queue it again
        now = datetime.now(UTC)
        for channel in alert.channels:
            session.add(OutboxRow(alert_id=alert_id, channel=channel, next_attempt_at=now, created_at=now))
        return alert

    @staticmethod
    def _suppress(
        store: EventStore, session: Session, rule: Rule, key: str, event: StoredEvent, reason: str
    ) -> None:
        store.append(
            [
                NewEvent(
                    stream=f"rule:{rule.id}",
                    data=AlertSuppressed(
                        rule=rule.id, dedup_key=key, reason=reason, trigger_event_id=event.id
                    ),
                    idempotency_key=f"suppressed:{rule.id}:{key}:{event.id}",
                    occurred_at=event_time(event),
                    metadata={"causation_id": event.id},
                )
            ],
            session=session,
        )


def _default_key(rule: Rule) -> str:
    if isinstance(rule, NewValueRule):
        return "{{ watch }}:{{ data.value }}"
    if isinstance(rule, JumpRule):
        return "{{ watch }}:{{ data.series }}:{{ data.current }}"
    return "{{ watch }}:{{ article.article_id }}:{{ span[0] }}"


def _within(previous_iso: str, when: datetime, cooldown: timedelta) -> bool:
    previous = datetime.fromisoformat(previous_iso)
    return cooldown > timedelta(0) and abs(when - previous) < cooldown
