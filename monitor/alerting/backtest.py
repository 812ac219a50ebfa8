"""Backtests and explanations: the live ``Evaluator`` run over the stored log in memory.

Both read the log and never write it: the evaluator gets fresh in-memory state and a
collecting sink, so cooldowns, holds, inhibitions and silences (which are log events) act
exactly as they do live, and nothing is queued or sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.alerting.evaluator import (
    INPUT_TYPES,
    CollectSink,
    Evaluator,
    State,
    Trace,
    event_time,
)
from monitor.alerting.rules import RuleSet, parse_span
from monitor.events import AlertRaised, AlertSuppressed, DeliveryAttempted, FactReported
from monitor.store.log import EventStore, StoredEvent

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO date or datetime (UTC when no zone is given), or a duration before ``now``
    ("7d", or "7d ago" as people write it)."""
    text = text.strip()
    if text.lower().endswith(" ago"):
        text = text[: -len(" ago")].strip()
    if _DATE.match(text):
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        return now - parse_span(text)
    except ValueError as exc:
        raise ValueError(
            f"not a time: {text!r} (use 2020-10-24, 2020-10-24T16:00Z, 7d or '7d ago')"
        ) from exc


@dataclass
class Backtest:
    rules: RuleSet
    alerts: list[AlertRaised] = field(default_factory=list)
    suppressions: list[AlertSuppressed] = field(default_factory=list)
    events: int = 0


def backtest(
    store: EventStore,
    rules: RuleSet,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Backtest:
    """Alerts ``rules`` would have raised over the log. Events before ``since`` still build
    state (series, cooldowns) but their alerts are not reported; events after ``until``
    (event time) are not evaluated."""
    counted = [0]

    def events() -> Iterator[StoredEvent]:
        for event in store.read(types=INPUT_TYPES):
            if until is None or event_time(event) <= until:
                counted[0] += 1
                yield event

    sink = Evaluator(rules).run(events(), State(), CollectSink())
    keep = [a for a in sink.alerts if since is None or sink.times[a.alert_id] >= since]
    return Backtest(rules, keep, sink.suppressions, counted[0])


@dataclass
class Diff:
    added: list[AlertRaised]
    removed: list[AlertRaised]
    unchanged: int


def compare(old: Backtest, new: Backtest) -> Diff:
    """Alerts the new rules add and remove, by alert id (rule, dedup key, trigger event)."""
    old_ids = {a.alert_id for a in old.alerts}
    new_ids = {a.alert_id for a in new.alerts}
    return Diff(
        added=[a for a in new.alerts if a.alert_id not in old_ids],
        removed=[a for a in old.alerts if a.alert_id not in new_ids],
        unchanged=len(old_ids & new_ids),
    )


# --- explanations ---------------------------------------------------------------------------


class ExplainError(LookupError):
    """The alert, rule or event to explain does not exist (or is ambiguous)."""


def find_alert(store: EventStore, alert_id: str) -> tuple[StoredEvent, AlertRaised]:
    found = [
        (e, e.data)
        for e in store.read(types=["AlertRaised"])
        if isinstance(e.data, AlertRaised) and e.data.alert_id.startswith(alert_id)
    ]
    if len(found) != 1:
        raise ExplainError(f"{'no' if not found else len(found)} alerts with id {alert_id!r}")
    return found[0]


def explain_alert(store: EventStore, alert_id: str, rules: RuleSet | None = None) -> list[str]:
    """What the log says about one alert: rule and hash, trigger, figures, reasons, evidence,
    related suppressions and deliveries."""
    stored, alert = find_alert(store, alert_id)
    lines = [
        f"alert {alert.alert_id} ({alert.status}, {alert.severity})",
        f"  title: {alert.title}",
        f"  rule: {alert.rule} (hash {alert.rule_hash})",
        f"  raised at (event time): {stored.occurred_at}; log seq {stored.seq}",
        f"  dedup key: {alert.dedup_key}",
    ]
    if rules is not None:
        current = rules.by_id(alert.rule)
        if current is None:
            lines.append("  the rule is no longer in the rule set")
        elif current.digest() != alert.rule_hash:
            lines.append(f"  the rule has changed since (now hash {current.digest()})")
        else:
            lines.append("  the rule is unchanged since")
    trigger = store.get(alert.trigger_event_id) if alert.trigger_event_id else None
    if trigger is not None and isinstance(trigger.data, FactReported):
        fact = trigger.data.fact
        lines += [
            f"  trigger: event {trigger.id} (seq {trigger.seq}), {fact.type} fact in "
            f"{trigger.data.watch}, published {trigger.data.article.published}",
            f"    {fact.model_dump(exclude={'quote', 'span'}, exclude_defaults=True)}",
        ]
    lines.append("  why:")
    lines += [f"    {why}" for why in alert.explanation] or ["    (not recorded)"]
    if alert.data:
        lines.append("  data (inputs, series values, thresholds):")
        lines += [f"    {k}: {v}" for k, v in alert.data.items() if v is not None]
    lines.append("  evidence:")
    for ev in alert.evidence:
        lines.append(f"    > {ev.quote}")
        lines.append(f"      {ev.outlet or ''} {ev.url} {ev.published or ''} (event {ev.event_id})")
    related = [
        e.data
        for e in store.read(types=["AlertSuppressed", "DeliveryAttempted"])
        if (isinstance(e.data, AlertSuppressed) and e.data.dedup_key == alert.dedup_key)
        or (isinstance(e.data, DeliveryAttempted) and e.data.alert_id == alert.alert_id)
    ]
    for item in related:
        if isinstance(item, AlertSuppressed):
            lines.append(f"  suppressed repeat ({item.kind}): {item.reason}")
        elif isinstance(item, DeliveryAttempted):
            lines.append(f"  delivery to {item.channel}: attempt {item.attempt} {item.outcome}")
    return lines


def explain_rule(store: EventStore, rules: RuleSet, rule_id: str, event_id: str) -> list[str]:
    """Replay the log in memory with the whole rule set (inhibitions and silences need it)
    and report what ``rule_id`` did with event ``event_id``: filters, state, thresholds and
    noise control."""
    rule = rules.by_id(rule_id)
    if rule is None:
        raise ExplainError(f"no rule {rule_id!r} (known: {', '.join(r.id for r in rules.rules)})")
    target = store.get(event_id) or next(
        (e for e in store.read(types=["FactReported"]) if e.id.startswith(event_id)), None
    )
    if target is None:
        raise ExplainError(f"no event {event_id!r}")
    lines = [
        f"rule {rule.id} ({rule.type}, {rule.severity}, hash {rule.digest()}) on event "
        f"{target.id} (seq {target.seq}, {target.type})"
    ]
    if not isinstance(target.data, FactReported):
        return [*lines, f"  rules evaluate FactReported events only, not {target.type}"]
    lines.append(
        f"  event time {event_time(target).isoformat()}; fact: "
        f"{target.data.fact.model_dump(exclude={'span'}, exclude_defaults=True)}"
    )
    if rule.event != target.data.fact.type:
        return [
            *lines,
            f"  not selected: the rule reads {rule.event} facts, this is {target.data.fact.type}",
        ]
    trace = Trace(rule.id, target.id)
    evaluator = Evaluator(rules, trace=trace)
    evaluator.run(store.read(types=INPUT_TYPES))
    lines += [f"  {line}" for line in trace.lines] or ["  (the rule did not see this event)"]
    return lines


def alert_row(alert: AlertRaised) -> dict[str, Any]:
    return {
        "id": alert.alert_id,
        "rule": alert.rule,
        "status": alert.status,
        "severity": alert.severity,
        "title": alert.title,
        "dedup_key": alert.dedup_key,
        "trigger_event_id": alert.trigger_event_id,
    }
