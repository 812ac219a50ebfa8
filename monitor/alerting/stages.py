"""Noise control as stages (Alertmanager's ``MultiStage`` of ``Muter``s): each looks at an
alert candidate and either lets it pass or says why it is muted.

The evaluator runs them in order from a list, for every rule type alike: cooldown, then
inhibition, then silences (``monitor.alerting.silences``). The first stage that mutes wins
and its reason becomes an ``AlertSuppressed`` event; an alert that passes them all is raised,
and each stage then records what it needs to know of it (when it fired, what it inhibits).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from monitor.alerting.pending import Pending
from monitor.alerting.rules import SEVERITY_RANK
from monitor.alerting.ruletypes import fmt_duration
from monitor.alerting.state import GLOBAL, State
from monitor.events import AlertRaised


class Stage(Protocol):
    kind: str  # the ``AlertSuppressed.kind`` of what this stage mutes

    def mutes(self, pending: Pending, state: State) -> str | None:
        """Why this candidate must not be sent; None lets it pass."""
        ...

    def raised(self, pending: Pending, alert: AlertRaised, state: State) -> None:
        """The candidate passed every stage and was raised."""
        ...


def last_fired(pending: Pending, state: State) -> dict[str, Any] | None:
    """The last alert raised under this candidate's dedup key, if any."""
    return state.get(pending.rule.rule.id, f"fired:{pending.key}")


class Cooldown:
    """The same dedup key within the rule's cooldown (either side in event time) is a repeat."""

    kind = "cooldown"

    def mutes(self, pending: Pending, state: State) -> str | None:
        cooldown = pending.rule.rule.cooldown
        last = last_fired(pending, state)
        if pending.resolved or last is None or cooldown <= timedelta(0):
            return None
        if abs(pending.when - datetime.fromisoformat(last["at"])) >= cooldown:
            return None
        return f"cooldown {fmt_duration(cooldown)} since alert {last['alert_id']} at {last['at']}"

    def raised(self, pending: Pending, alert: AlertRaised, state: State) -> None:
        state.put(
            pending.rule.rule.id,
            f"fired:{pending.key}",
            {"at": pending.when.isoformat(), "alert_id": alert.alert_id, "status": alert.status},
        )


class Inhibition:
    """A higher-severity alert of another rule with the same inhibit key mutes this one for
    the inhibitor's ``inhibit_for``."""

    kind = "inhibited"

    def mutes(self, pending: Pending, state: State) -> str | None:
        key = pending.inhibit_key
        if key is None:
            return None
        source = (state.get(GLOBAL, f"inhibit:{key}") or {}).get("active")
        if not source:
            return None
        rule = pending.rule.rule
        higher = SEVERITY_RANK[source["severity"]] > SEVERITY_RANK[rule.severity]
        start, until = (datetime.fromisoformat(source[k]) for k in ("at", "until"))
        if not (higher and source["rule"] != rule.id and start <= pending.when < until):
            return None
        return (
            f"inhibited by {source['severity']} alert {source['alert_id']} "
            f"(rule {source['rule']}) with inhibit key {key!r} until {source['until']}"
        )

    def raised(self, pending: Pending, alert: AlertRaised, state: State) -> None:
        key = pending.inhibit_key
        if key is None or pending.resolved:
            return
        row = state.get(GLOBAL, f"inhibit:{key}") or {}
        current = row.get("active")
        when = pending.when
        if (
            current is not None
            and SEVERITY_RANK[current["severity"]] > SEVERITY_RANK[alert.severity]
            and datetime.fromisoformat(current["until"]) > when
        ):
            return  # a stronger inhibitor is still active
        row["active"] = {
            "severity": alert.severity,
            "alert_id": alert.alert_id,
            "rule": alert.rule,
            "at": when.isoformat(),
            "until": (when + pending.rule.rule.inhibit_for).isoformat(),
        }
        state.put(GLOBAL, f"inhibit:{key}", row)
