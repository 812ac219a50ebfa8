"""``for`` holds: an alert that must stay true for a while (and may wait for a second outlet)
before it is sent, Prometheus' pending state in event time.

A held candidate is kept in the rule's state under ``hold:<dedup key>``, with an index of
when each hold ends under the evaluator's ``HOLDS`` row. Later reports of the same thing
join it (their outlets count towards ``confirm_outlets``); a fact matching ``cancel_if``
drops it; a resolution before the end drops it too. A hold ends when event time (a later
fact, or a ``RulesTicked`` the daemon records) passes its end: it is then raised if it was
confirmed and is still true, else recorded as suppressed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from monitor.alerting.pending import Compiled, Pending
from monitor.alerting.ruletypes import Verdict, fmt_duration, lookup
from monitor.alerting.sinks import Sink, suppress
from monitor.alerting.state import GLOBAL, HOLDS, State
from monitor.events import Evidence

log = logging.getLogger(__name__)

# Hold ends are stored as ISO text and compared with every event's time: parse each once.
_parse = lru_cache(maxsize=4096)(datetime.fromisoformat)

Note = Callable[[str], None]


@dataclass
class Holds:
    """Hold bookkeeping for one evaluator; ``noter`` gives the trace line writer of a
    (rule, event) pair, for ``monitor rules explain``."""

    noter: Callable[[str, str], Note]
    # The hold index last looked at and its earliest end: most events end no hold, and the
    # index changes only when a hold is taken or dropped (``State.put`` stores a new dict).
    _first: tuple[dict[str, str], datetime] | None = field(default=None, repr=False)

    def take(self, p: Pending, state: State, sink: Sink, note: Note) -> bool:
        """True when the hold took the candidate (held, joined, or cancelled by its own
        resolution); False when it goes on to noise control now."""
        rule = p.rule.rule
        memory = state.memory(rule.id)
        held = memory.get(f"hold:{p.key}")
        if p.resolved and held is not None:
            self._drop(state, rule.id, p.key)
            reason = "resolved before its hold ended: nothing was sent, so nothing to resolve"
            note(f"suppressed: {reason}")
            suppress(sink, p, "hold_cancelled", reason)
            return True
        if rule.hold <= timedelta(0) or p.verdict.status != "firing":
            return False
        if held is not None:
            held["outlets"] = sorted({*held["outlets"], *p.outlets})
            held["evidence"].append(p.verdict.evidence[-1].model_dump(mode="json"))
            memory.put(f"hold:{p.key}", held)
            note(f"held: joins the pending alert {p.key} (outlets {held['outlets']})")
            return True
        due = p.when + rule.hold
        memory.put(
            f"hold:{p.key}",
            {
                "due": due.isoformat(),
                "trigger": p.trigger,
                "when": p.when.isoformat(),
                "ctx": p.ctx,
                "verdict": {
                    "why": p.verdict.why,
                    "data": p.verdict.data,
                    "status": p.verdict.status,
                },
                "evidence": [e.model_dump(mode="json") for e in p.verdict.evidence],
                "outlets": sorted(set(p.outlets)),
            },
        )
        index = state.get(GLOBAL, HOLDS) or {}
        index[f"{rule.id}\x1f{p.key}"] = due.isoformat()
        state.put(GLOBAL, HOLDS, index)
        note(f"held: 'for {fmt_duration(rule.hold)}' until {due.isoformat()}")
        return True

    def confirm(self, p: Pending, state: State, evidence: dict[str, Any], note: Note) -> None:
        """A later report of the same thing while an alert is held counts as confirmation
        (``evidence``: the report's, as JSON)."""
        memory = state.memory(p.rule.rule.id)
        held = memory.get(f"hold:{p.key}")
        if held is None:
            return
        held["outlets"] = sorted({*held["outlets"], *p.outlets})
        held["evidence"].append(evidence)
        memory.put(f"hold:{p.key}", held)
        note(f"confirms the held alert {p.key} (outlets {held['outlets']})")

    def cancel(
        self,
        c: Compiled,
        ctx: dict[str, Any],
        state: State,
        sink: Sink,
        when: datetime,
        event_id: str,
    ) -> None:
        """A fact matching ``cancel_if`` (e.g. a denial) drops this rule's pending alerts in
        the same watch (and with equal ``cancel_same`` fields) whose hold has not ended."""
        note = self.noter(c.rule.id, event_id)
        index = state.get(GLOBAL, HOLDS) or {}
        prefix = f"{c.rule.id}\x1f"
        for entry in sorted(index):
            if not entry.startswith(prefix):
                continue
            key = entry[len(prefix) :]
            held = state.get(c.rule.id, f"hold:{key}")
            if held is None or datetime.fromisoformat(held["due"]) < when:
                continue
            hctx = held["ctx"]
            if hctx.get("watch") != ctx.get("watch"):
                continue
            if any(lookup(hctx, f) != lookup(ctx, f) for f in c.rule.cancel_same):
                continue
            self._drop(state, c.rule.id, key)
            reason = f"cancelled during its hold by fact {event_id} matching cancel_if"
            note(f"cancels pending alert {key}")
            self.noter(c.rule.id, held["trigger"])(f"suppressed: {reason}")
            p = pending_from_hold(c, held, key, when, when)
            suppress(sink, p, "hold_cancelled", reason, event_id)

    def due(self, state: State, now: datetime) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Holds ended by ``now``, oldest first, taken out of the state:
        (rule id, dedup key, end, held candidate)."""
        index = state.values.get((GLOBAL, HOLDS))  # read only: runs for every event
        if not index:
            return []
        first = self._first
        if first is None or first[0] is not index:
            first = self._first = (index, min(_parse(d) for d in index.values()))
        if now < first[1]:
            return []
        ended = sorted((d, e) for e, d in index.items() if _parse(d) <= now)
        if not ended:
            return []
        out = []
        for due_iso, entry in ended:
            rule_id, key = entry.split("\x1f", 1)
            held = state.get(rule_id, f"hold:{key}")
            self._drop(state, rule_id, key)
            if held is None:
                log.warning("dropping a held alert of rule %s: its state is gone", rule_id)
                continue
            out.append((rule_id, key, due_iso, held))
        return out

    def release(
        self,
        c: Compiled,
        held: dict[str, Any],
        key: str,
        due_iso: str,
        state: State,
        sink: Sink,
        clock: datetime,
        cause: str,
    ) -> Pending | None:
        """A hold ended: the candidate, if it was confirmed and is still true."""
        note = self.noter(c.rule.id, held["trigger"])
        p = pending_from_hold(c, held, key, datetime.fromisoformat(due_iso), clock)
        p.notes.append(f"held for {fmt_duration(c.rule.hold)} until {due_iso}")
        if len(p.outlets) < c.rule.confirm_outlets:
            reason = (
                f"hold ended with {len(p.outlets)} outlet(s) ({', '.join(p.outlets)}), "
                f"confirm_outlets is {c.rule.confirm_outlets}"
            )
            note(f"suppressed: {reason}")
            suppress(sink, p, "hold_unconfirmed", reason, cause)
            return None
        stale = c.kind.still_true(p.verdict.data, state.memory(c.rule.id))
        if stale is not None:
            note(f"suppressed: {stale}")
            suppress(sink, p, "hold_cancelled", stale, cause)
            return None
        note(f"hold ended at {due_iso}, still true with outlets {p.outlets}")
        return p

    @staticmethod
    def _drop(state: State, rule_id: str, key: str) -> None:
        state.delete(rule_id, f"hold:{key}")
        index = state.get(GLOBAL, HOLDS) or {}
        index.pop(f"{rule_id}\x1f{key}", None)
        state.put_or_delete(GLOBAL, HOLDS, index)


def pending_from_hold(
    c: Compiled, held: dict[str, Any], key: str, when: datetime, clock: datetime
) -> Pending:
    v = held["verdict"]
    evidence = [Evidence.model_validate(e) for e in held["evidence"]]
    verdict = Verdict(True, v["why"], v["data"], evidence, v["status"])
    p = Pending(c, verdict, held["ctx"], held["trigger"], when, clock, held["outlets"])
    return p.keyed(key)
