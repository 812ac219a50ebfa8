"""A rule that raises while it evaluates an event: skipped for that event, never in the way
of the others.

Each failure is a ``RuleFailed`` event. The evaluator's state keeps each rule's current run
of failures (``FAILING``, which /healthz reads), ended by the rule's next clean evaluation.
The first failure of a run of one version of a rule raises one warning to the ``health``
channels, through the operator's silences like any alert.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.alerting.pending import Compiled, Route, alert_uuid
from monitor.alerting.silences import active_silences, silencing
from monitor.alerting.sinks import Sink
from monitor.alerting.state import FAILING, GLOBAL, State
from monitor.events import AlertRaised, AlertSuppressed, RuleFailed

log = logging.getLogger(__name__)

HEALTH_RULE = "rule-failure"  # the rule name on health alerts about a failing rule


@dataclass
class Failures:
    """Failure bookkeeping for one evaluator; ``routes`` says which channels are health's."""

    routes: Sequence[Route]

    def failed(
        self,
        c: Compiled,
        event_id: str,
        exc: Exception,
        state: State,
        sink: Sink,
        when: datetime,
        clock: datetime,
    ) -> None:
        """Record the failure, count it, and tell the health channels at the start of a run
        (unless an operator's silence, matched at ``clock``, mutes it)."""
        rule = c.rule
        error = f"{type(exc).__name__}: {exc}"
        log.error("rule %s failed on event %s: %s", rule.id, event_id, error, exc_info=exc)
        failure = RuleFailed(rule=rule.id, rule_hash=c.digest, event_id=event_id, error=error)
        sink.failed(failure, when, event_id)
        failing = state.get(GLOBAL, FAILING) or {}
        entry = failing.get(rule.id)
        first = entry is None or entry.get("rule_hash") != c.digest
        if entry is None or first:
            entry = {"rule_hash": c.digest, "since": when.isoformat(), "first_event": event_id}
        failures = int(entry.get("failures", 0)) + 1
        entry.update(failures=failures, last_event=event_id, error=error[:500])
        failing[rule.id] = entry
        state.put(GLOBAL, FAILING, failing)
        if not first:
            return
        alert = _failure_alert(c, entry, self.routes)
        labels = {**alert.labels, "rule": alert.rule, "severity": alert.severity}
        silence = silencing(active_silences(state, clock), labels)
        if silence is None:
            sink.raised(alert, when, event_id)
            return
        item = AlertSuppressed(
            rule=alert.rule,
            dedup_key=alert.dedup_key,
            reason=f"silenced by {silence.describe()}",
            trigger_event_id=event_id,
            kind="silence",
            alert_id=alert.alert_id,
            title=alert.title,
        )
        sink.suppressed(item, when, event_id)


def rule_ok(rule_id: str, state: State) -> None:
    """A rule that evaluated cleanly ends its run of failures."""
    failing = state.values.get((GLOBAL, FAILING))
    if failing and rule_id in failing:
        state.put_or_delete(GLOBAL, FAILING, {k: v for k, v in failing.items() if k != rule_id})


def forget_removed(rules: dict[str, Compiled], state: State) -> None:
    """A rule removed or renamed while failing is no longer failing."""
    failing = state.values.get((GLOBAL, FAILING))
    if failing and not failing.keys() <= rules.keys():
        state.put_or_delete(GLOBAL, FAILING, {k: v for k, v in failing.items() if k in rules})


def _failure_alert(c: Compiled, entry: dict[str, str], routes: Sequence[Route]) -> AlertRaised:
    rule = c.rule
    key = f"{HEALTH_RULE}:{rule.id}:{c.digest}:{entry['first_event']}"
    summary = (
        f"Rule {rule.id} failed while evaluating event {entry['first_event']}: "
        f"{entry['error']}. The rule is skipped for such events; the other rules go on."
    )
    return AlertRaised(
        alert_id=alert_uuid(key),
        rule=HEALTH_RULE,
        rule_hash=c.digest,
        severity="warning",
        title=f"Rule {rule.id} is failing",
        summary=summary,
        body=summary,
        dedup_key=key,
        data={"rule": rule.id, "error": entry["error"], "event_id": entry["first_event"]},
        channels=[r.name for r in routes if r.health],
        labels={"kind": "rule_failure", "failing_rule": rule.id},
        trigger_event_id=entry["first_event"],
        explanation=[f"evaluating rule {rule.id} raised {entry['error']}"],
    )
