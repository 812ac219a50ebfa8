"""Rule evaluation as a projection over the log.

``Evaluator.process`` takes one stored event at a time, in log order, with a ``State`` (rule
memory) and a ``Sink`` (where alerts and suppressions go). The live path (``catch_up``) keeps
state in the ``rule_state`` table and appends ``AlertRaised`` + outbox rows in the same
transaction as that state and the checkpoint; backtests, rule unit tests and explanations run
the very same ``process`` with in-memory state and a collecting sink, so they can never send
or write anything. Alert ids derive from the rule, dedup key and triggering event, so
re-evaluating the same log raises the same alerts.

Noise control, in order, for every rule type alike: dedup key + cooldown, ``for`` holds
(resolved in event time by a later event or a recorded ``RulesTicked``), inhibition by a
higher-severity alert with the same inhibit key, silences (operator events in the log).
Every suppression is an ``AlertSuppressed`` event with its reason.

Time: rule time is event time (the article's publication), whatever order the feeds answered
in. A late or backdated report is placed at its publication time: series rules compare it with
what was published before it, and when it changes the verdict on a later figure already in the
log, that figure's alert is raised then (the same alert an in-order reading raises). An alert
raised on late data says so in its explanation. What was sent cannot be unsent: when the first
report to arrive was not the first published, the alert quotes the one that arrived first.
Silences are operator actions on
the wall-clock timeline, so they are matched against the moment the triggering event entered
the log (``recorded_at``), which is stored: a backtest of the same log silences the same alerts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import delete, select, tuple_
from sqlmodel import Session

from monitor.alerting.rules import SEVERITY_RANK, Condition, MatchRule, Rule, RuleSet
from monitor.alerting.ruletypes import (
    Observed,
    RuleType,
    Verdict,
    fmt_duration,
    lookup,
    outlet_of,
    rule_type_for,
)
from monitor.alerting.silences import Silence, active_silences, silence_state
from monitor.alerting.templates import (
    DEFAULT_BODY,
    DEFAULT_BODY_HTML,
    DEFAULT_SUMMARY,
    DEFAULT_TITLES,
    RESOLVED_TITLE,
    render,
)
from monitor.events import (
    AlertRaised,
    AlertSuppressed,
    Evidence,
    FactReported,
    RuleFailed,
    RulesTicked,
    SilenceAdded,
    SilenceExpired,
    as_utc,
)
from monitor.store.log import EventStore, NewEvent, StoredEvent
from monitor.store.tables import Checkpoint, OutboxRow, RuleState

log = logging.getLogger(__name__)

ALERT_NAMESPACE = uuid.UUID("a7c3e0d2-5f4b-4e8a-8d2c-1b9e6f3a0c55")
CHECKPOINT = "rules"
# Event types the evaluator consumes; everything else in the log is skipped unread.
INPUT_TYPES = ("FactReported", "SilenceAdded", "SilenceExpired", "RulesTicked")
# State rows not owned by one rule ("~" cannot start a rule id).
GLOBAL = "~evaluator"
HOLDS = "holds"
FAILING = "failing"  # rule id -> its current run of failures (read by /healthz)
LATEST = "latest"  # the latest publication time of the facts evaluated so far
HEALTH_RULE = "rule-failure"  # the rule name on health alerts about a failing rule


class Route(BaseModel):
    """A channel as the evaluator sees it: a name and the tags it accepts (``*``: all)."""

    name: str
    tags: list[str]
    health: bool = False  # also receives health alerts (a rule that fails)

    def accepts(self, rule_channels: Sequence[str]) -> bool:
        return "*" in self.tags or any(t in self.tags for t in rule_channels)


# --- state ----------------------------------------------------------------------------------


class State:
    """Rule memory as a dict of (rule, key) -> JSON value, remembering what changed."""

    def __init__(self, values: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.values: dict[tuple[str, str], dict[str, Any]] = values or {}
        self.dirty: set[tuple[str, str]] = set()

    def get(self, rule: str, key: str) -> dict[str, Any] | None:
        value = self.values.get((rule, key))
        return dict(value) if value is not None else None

    def put(self, rule: str, key: str, value: dict[str, Any]) -> None:
        self.values[(rule, key)] = value
        self.dirty.add((rule, key))

    def delete(self, rule: str, key: str) -> None:
        if self.values.pop((rule, key), None) is not None:
            self.dirty.add((rule, key))

    def memory(self, rule: str) -> RuleMemory:
        return RuleMemory(self, rule)

    @classmethod
    def load(cls, session: Session) -> State:
        rows = session.execute(select(RuleState.rule, RuleState.key, RuleState.value)).all()
        return cls({(r, k): v for r, k, v in rows})

    def flush(self, session: Session, chunk: int = 400) -> None:
        """Write what changed since the last flush: delete those rows, insert the live ones."""
        keys = sorted(self.dirty)
        for i in range(0, len(keys), chunk):
            part = keys[i : i + chunk]
            session.execute(
                delete(RuleState).where(tuple_(RuleState.rule, RuleState.key).in_(part))
            )
            rows = [
                {"rule": r, "key": k, "value": self.values[(r, k)]}
                for r, k in part
                if (r, k) in self.values
            ]
            if rows:
                session.execute(RuleState.__table__.insert(), rows)  # type: ignore[attr-defined]
        self.dirty.clear()


@dataclass
class RuleMemory:
    """One rule's view of the state."""

    state: State
    rule: str

    def get(self, key: str) -> dict[str, Any] | None:
        return self.state.get(self.rule, key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.state.put(self.rule, key, value)

    def delete(self, key: str) -> None:
        self.state.delete(self.rule, key)


# --- sinks ----------------------------------------------------------------------------------


class Sink(Protocol):
    def raised(self, alert: AlertRaised, when: datetime, cause: str) -> bool:
        """Record an alert; False when it was recorded before (a replay)."""
        ...

    def suppressed(self, item: AlertSuppressed, when: datetime, cause: str) -> None: ...

    def failed(self, item: RuleFailed, when: datetime, cause: str) -> None: ...


class LogSink:
    """The live sink: buffers alerts and suppressions, then ``flush`` appends them to the log
    in one batch and queues one outbox row per routed channel for each alert the log did not
    hold yet, all inside the evaluator's transaction."""

    def __init__(self, store: EventStore, session: Session) -> None:
        self.store = store
        self.session = session
        self.pending: list[NewEvent] = []

    def raised(self, alert: AlertRaised, when: datetime, cause: str) -> bool:
        self.pending.append(
            NewEvent(
                stream=f"alert:{alert.alert_id}",
                data=alert,
                idempotency_key=f"alert:{alert.alert_id}",
                occurred_at=when,
                metadata={"causation_id": cause},
            )
        )
        # Rule state records the alert either way: on a replay it was raised before, and
        # cooldowns must count from it.
        return True

    def suppressed(self, item: AlertSuppressed, when: datetime, cause: str) -> None:
        self.pending.append(
            NewEvent(
                stream=f"rule:{item.rule}",
                data=item,
                idempotency_key=f"suppressed:{item.rule}:{item.dedup_key}:{cause}:{item.kind}",
                occurred_at=when,
                metadata={"causation_id": cause},
            )
        )

    def failed(self, item: RuleFailed, when: datetime, cause: str) -> None:
        self.pending.append(
            NewEvent(
                stream=f"rule:{item.rule}",
                data=item,
                idempotency_key=f"rule-failed:{item.rule}:{item.event_id}",
                occurred_at=when,
                metadata={"causation_id": cause},
            )
        )

    def flush(self) -> list[AlertRaised]:
        """Append what was buffered; returns the alerts that are new to the log."""
        if not self.pending:
            return []
        result = self.store.append(self.pending, session=self.session)
        self.pending = []
        now = datetime.now(UTC)  # delivery scheduling is wall-clock business, not rule time
        fresh: dict[str, AlertRaised] = {}
        for event, created in zip(result.events, result.created, strict=True):
            alert = event.data
            if not created or not isinstance(alert, AlertRaised) or alert.alert_id in fresh:
                continue  # raised before: a replay must not queue it again
            fresh[alert.alert_id] = alert
            for channel in alert.channels:
                self.session.add(
                    OutboxRow(
                        alert_id=alert.alert_id,
                        channel=channel,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        return list(fresh.values())


@dataclass
class CollectSink:
    """The backtest sink: keeps everything in memory, writes and sends nothing."""

    alerts: list[AlertRaised] = field(default_factory=list)
    suppressions: list[AlertSuppressed] = field(default_factory=list)
    failures: list[RuleFailed] = field(default_factory=list)
    times: dict[str, datetime] = field(default_factory=dict)

    def raised(self, alert: AlertRaised, when: datetime, cause: str) -> bool:
        if alert.alert_id in self.times:
            return False
        self.times[alert.alert_id] = when
        self.alerts.append(alert)
        return True

    def suppressed(self, item: AlertSuppressed, when: datetime, cause: str) -> None:
        self.suppressions.append(item)

    def failed(self, item: RuleFailed, when: datetime, cause: str) -> None:
        self.failures.append(item)


# --- helpers --------------------------------------------------------------------------------


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
    """Rule time: the article's publication, else when the fact happened, else when logged."""
    data = event.data
    if isinstance(data, FactReported) and data.article.published:
        return as_utc(data.article.published)
    if isinstance(data, RulesTicked):
        return as_utc(data.at)
    return as_utc(event.occurred_at or event.recorded_at)


Check = tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], bool], Condition]


def _getter(path: str) -> Callable[[dict[str, Any]], Any]:
    if "." not in path:
        return lambda ctx: ctx.get(path)
    return lambda ctx: lookup(ctx, path)


def _checks(conditions: dict[str, Condition]) -> list[Check]:
    """Each filter as (name, field getter, one predicate, condition); flattened once here
    because filters run for every rule on every event."""
    out: list[Check] = []
    for name, cond in conditions.items():
        for test in cond.predicates():
            out.append((name, _getter(name), test, cond))
    return out


@dataclass
class Compiled:
    """A rule with its filters pre-split, its type object and its template context."""

    rule: Rule
    kind: RuleType
    where: list[Check]
    cancel_if: list[Check]
    dump: dict[str, Any]
    digest: str

    @staticmethod
    def first_failure(ctx: dict[str, Any], checks: list[Check]) -> tuple[Check, Any] | None:
        """The first filter the fact fails (and the value it saw); None when all pass."""
        for check in checks:
            value = check[1](ctx)
            if not check[2](value):
                return check, value
        return None


def describe_failure(failure: tuple[Check, Any]) -> str:
    (name, _, _, cond), value = failure
    return f"{name}={value!r} fails {cond.failing(value)}"


def compile_rule(rule: Rule) -> Compiled:
    return Compiled(
        rule=rule,
        kind=rule_type_for(rule),
        where=_checks(rule.where),
        cancel_if=_checks(rule.cancel_if),
        dump=rule.model_dump(mode="json", by_alias=True),
        digest=rule.digest(),
    )


@dataclass
class Trace:
    """Lines explaining what one rule did with one event (``monitor rules explain``)."""

    rule_id: str
    event_id: str
    lines: list[str] = field(default_factory=list)


def _default_key(rule: Rule) -> str:
    if rule.type == "new_value":
        return "{{ watch }}:{{ data.value }}"
    if rule.type == "jump":
        return "{{ watch }}:{{ data.series }}:{{ data.current }}"
    if rule.type in ("transition", "corroborated"):
        return "{{ watch }}:{{ data.key }}"
    if rule.type == "frequency":
        return "{{ watch }}:{{ data.group }}"
    return "{{ watch }}:{{ article.article_id }}:{{ span[0] }}"


def _within(previous_iso: str, when: datetime, window: timedelta) -> bool:
    previous = datetime.fromisoformat(previous_iso)
    return window > timedelta(0) and abs(when - previous) < window


# --- the evaluator --------------------------------------------------------------------------


@dataclass
class Pending:
    """An alert candidate on its way through noise control."""

    rule: Compiled
    verdict: Verdict
    ctx: dict[str, Any]
    trigger: str  # the fact event that made the rule fire
    when: datetime  # event time of the alert
    clock: datetime  # recorded_at of the log event being processed (for silences)
    outlets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The hits of ``per_report`` rules on the facts of one article, one alert per rule once
    the article's facts have all been read (they are appended together)."""

    article: str
    state: State
    sink: Sink
    pending: dict[str, Pending] = field(default_factory=dict)

    def join(self, p: Pending) -> None:
        rule = p.rule.rule
        assert isinstance(rule, MatchRule)
        first = self.pending.setdefault(f"{rule.id}\x1f{p.ctx.get('watch')}", p)
        if first is p:
            p.verdict.data.update({name: [] for name in rule.collect})
        else:
            quotes = {e.quote for e in first.verdict.evidence}
            first.verdict.evidence.extend(e for e in p.verdict.evidence if e.quote not in quotes)
        for name, path in rule.collect.items():
            value = lookup(p.ctx, path)
            if value not in (None, "") and value not in first.verdict.data[name]:
                first.verdict.data[name].append(value)


class Evaluator:
    """Runs a rule set over the log, raising alerts as it goes."""

    def __init__(
        self, rules: RuleSet, routes: Sequence[Route] = (), *, trace: Trace | None = None
    ) -> None:
        self.rules = rules
        self.routes = list(routes)
        self.trace = trace
        compiled = [compile_rule(r) for r in rules.rules]
        # Higher severity first: a critical alert raised by a fact inhibits a warning raised by
        # the same fact.
        compiled.sort(key=lambda c: -SEVERITY_RANK[c.rule.severity])
        self.compiled = {c.rule.id: c for c in compiled}
        self.by_event: dict[str, list[Compiled]] = {}
        self.report: Report | None = None
        for c in compiled:
            self.by_event.setdefault(c.rule.event, []).append(c)

    # -- driving --------------------------------------------------------------------------

    def catch_up(self, store: EventStore, batch: int = 500) -> list[AlertRaised]:
        """Evaluate every input event after the checkpoint: one transaction per batch holds
        the alerts, outbox rows, rule state and checkpoint together."""
        raised: list[AlertRaised] = []
        state: State | None = None
        while True:
            with store.transaction() as session:
                state = state or State.load(session)
                row = session.get(Checkpoint, CHECKPOINT) or Checkpoint(name=CHECKPOINT, seq=0)
                head = store.head(session)
                limit = batch
                while True:
                    events = list(
                        store.read(
                            row.seq, types=INPUT_TYPES, limit=limit, until=head, session=session
                        )
                    )
                    full = len(events) == limit
                    whole = whole_reports(events) if full else events
                    if whole or not full:
                        events = whole
                        break
                    limit *= 2  # one article longer than the batch: read it whole
                sink = LogSink(store, session)
                for event in events:
                    self.process(event, state, sink)
                self.end_report()
                raised.extend(sink.flush())
                state.flush(session)
                row.seq = events[-1].seq if full else head
                session.add(row)
            if not full:
                return raised

    def tick(self, store: EventStore, now: datetime) -> list[AlertRaised]:
        """Let holds whose time has come fire without waiting for a later fact. The tick is
        appended to the log as ``RulesTicked`` first, so a replay resolves them identically;
        nothing is appended when no hold is due."""
        raised = self.catch_up(store)
        with store.read_session() as session:
            row = session.get(RuleState, (GLOBAL, HOLDS))
            due = [
                d for d in (row.value if row else {}).values() if datetime.fromisoformat(d) <= now
            ]
        if not due:
            return raised
        at = now.astimezone(UTC)
        store.append(
            [
                NewEvent(
                    stream="rules:clock",
                    data=RulesTicked(at=at),
                    idempotency_key=f"tick:{at.isoformat()}",
                    occurred_at=at,
                )
            ]
        )
        return raised + self.catch_up(store)

    def run(
        self,
        events: Iterable[StoredEvent],
        state: State | None = None,
        sink: CollectSink | None = None,
    ) -> CollectSink:
        """Evaluate events in memory (backtests, rule unit tests, explanations)."""
        state = state if state is not None else State()
        sink = sink if sink is not None else CollectSink()
        for event in events:
            if event.type in INPUT_TYPES:
                self.process(event, state, sink)
        self.end_report()
        return sink

    # -- one event --------------------------------------------------------------------------

    def process(self, event: StoredEvent, state: State, sink: Sink) -> list[AlertRaised]:
        data = event.data
        out: list[AlertRaised] = []
        if self.report is not None and self.report.article != _article_of(event):
            out = self.end_report()
        if isinstance(data, SilenceAdded | SilenceExpired):
            silence_state(state, data)
            return out
        if not isinstance(data, FactReported | RulesTicked):
            return out
        when = event_time(event)
        clock = as_utc(event.recorded_at)
        failing = state.values.get((GLOBAL, FAILING))
        if failing and not failing.keys() <= self.compiled.keys():
            # A rule removed or renamed while failing is no longer failing.
            kept = {k: v for k, v in failing.items() if k in self.compiled}
            if kept:
                state.put(GLOBAL, FAILING, kept)
            else:
                state.delete(GLOBAL, FAILING)
        out.extend(self._resolve_holds(state, sink, when, clock, event.id))
        if isinstance(data, FactReported):
            out.extend(self._evaluate(event, data, state, sink, when, clock))
        return out

    def _evaluate(
        self,
        event: StoredEvent,
        data: FactReported,
        state: State,
        sink: Sink,
        when: datetime,
        clock: datetime,
    ) -> list[AlertRaised]:
        latest = (state.values.get((GLOBAL, LATEST)) or {}).get("at")
        shared: dict[str, Any] = {}
        if latest is not None and latest > when.isoformat():
            shared["late"] = (
                f"raised on late data: published {when.isoformat()}, it reached the log after "
                f"facts published up to {latest}"
            )
        else:
            state.put(GLOBAL, LATEST, {"at": when.isoformat()})
        out: list[AlertRaised] = []
        for c in self.by_event.get(data.fact.type, ()):
            try:
                out.extend(self._evaluate_rule(c, event, data, state, sink, when, clock, shared))
            except Exception as exc:  # one broken rule must not stop the others
                self._rule_failed(c, event.id, exc, state, sink, when)
                continue
            self._rule_ok(c.rule.id, state)
        return out

    def _evaluate_rule(
        self,
        c: Compiled,
        event: StoredEvent,
        data: FactReported,
        state: State,
        sink: Sink,
        when: datetime,
        clock: datetime,
        shared: dict[str, Any],
    ) -> list[AlertRaised]:
        """One rule on one fact. ``shared`` caches the fact's context across rules."""
        rule = c.rule
        note = self._noter(rule.id, event.id)
        if not rule.applies_to(data.watch):
            note(f"not selected: watch {data.watch!r} is not in {rule.watches}")
            return []
        if "ctx" not in shared:
            shared["ctx"] = fact_context(event)
        ctx: dict[str, Any] = shared["ctx"]
        if c.cancel_if and c.first_failure(ctx, c.cancel_if) is None:
            self._cancel_holds(c, ctx, state, sink, when, event.id, note)
        failed = c.first_failure(ctx, c.where)
        if failed is not None:
            if note is not _ignore:
                note(f"not selected: {describe_failure(failed)}")
            return []
        tracing = note is not _ignore
        if tracing:
            note(f"selected: {rule.event} fact in {data.watch} passes every where filter")
        if "seen" not in shared:
            shared["seen"] = Observed(event.id, when, ctx, evidence_of(event))
        seen: Observed = shared["seen"]
        memory = state.memory(rule.id)
        verdict = c.kind.check(seen, memory)
        if tracing:
            note(f"{rule.type}: {verdict.why}")
        out = self._revisit(c, verdict, seen, state, sink, clock, note)
        if not verdict.fire:
            if verdict.restates and rule.hold:
                pending = Pending(
                    c, verdict, ctx, event.id, when, clock, [outlet_of(ctx, "outlet")]
                )
                self._confirm_hold(pending, state, seen.evidence, note)
            note("verdict: no alert")
            return out
        pending = Pending(c, verdict, ctx, event.id, when, clock, [outlet_of(ctx, "outlet")])
        if "late" in shared:
            pending.notes.append(shared["late"])
        if isinstance(rule, MatchRule) and rule.per_report:
            if self.report is None:
                self.report = Report(data.article.article_id, state, sink)
            self.report.join(pending)
            note("joins the one alert of its report (per_report)")
            return out
        alert = self._hold_or_raise(pending, state, sink, note)
        return [*out, alert] if alert is not None else out

    def _revisit(
        self,
        c: Compiled,
        verdict: Verdict,
        seen: Observed,
        state: State,
        sink: Sink,
        clock: datetime,
        note: Callable[[str], None],
    ) -> list[AlertRaised]:
        """A late fact placed at its publication time can change the verdict on a fact
        published after it that the log holds already: such an alert is raised for that fact
        (the alert it would have had, had the facts come in order), saying why it is late."""
        out: list[AlertRaised] = []
        for later, again in verdict.later:
            note(f"{c.rule.type}, again for {later.event_id} published after it: {again.why}")
            if not again.fire:
                continue
            outlets = [outlet_of(later.ctx, "outlet")]
            p = Pending(c, again, later.ctx, later.event_id, later.time, clock, outlets)
            p.notes.append(
                f"raised on late data: {seen.event_id}, published {seen.time.isoformat()}, "
                f"reached the log after this fact, published {later.time.isoformat()}"
            )
            alert = self._hold_or_raise(p, state, sink, self._noter(c.rule.id, later.event_id))
            if alert is not None:
                out.append(alert)
        return out

    def end_report(self) -> list[AlertRaised]:
        """The article's facts are all read: its ``per_report`` hits become alerts."""
        report, self.report = self.report, None
        out: list[AlertRaised] = []
        for p in report.pending.values() if report is not None else ():
            assert report is not None
            note = self._noter(p.rule.rule.id, p.trigger)
            try:
                alert = self._hold_or_raise(p, report.state, report.sink, note)
            except Exception as exc:
                self._rule_failed(p.rule, p.trigger, exc, report.state, report.sink, p.when)
                continue
            if alert is not None:
                out.append(alert)
        return out

    # -- failures -----------------------------------------------------------------------------

    def _rule_failed(
        self, c: Compiled, event_id: str, exc: Exception, state: State, sink: Sink, when: datetime
    ) -> None:
        """Record the failure as an event, count it, and tell the health channels once per
        run of failures of this version of the rule."""
        rule = c.rule
        error = f"{type(exc).__name__}: {exc}"
        log.error("rule %s failed on event %s: %s", rule.id, event_id, error, exc_info=exc)
        failure = RuleFailed(rule=rule.id, rule_hash=c.digest, event_id=event_id, error=error)
        sink.failed(failure, when, event_id)
        failing = state.get(GLOBAL, FAILING) or {}
        entry = failing.get(rule.id)
        first = entry is None or entry.get("rule_hash") != c.digest
        if first:
            entry = {"rule_hash": c.digest, "since": when.isoformat(), "first_event": event_id}
        assert entry is not None
        entry.update(
            failures=int(entry.get("failures", 0)) + 1, last_event=event_id, error=error[:500]
        )
        failing[rule.id] = entry
        state.put(GLOBAL, FAILING, failing)
        if first:
            sink.raised(self._failure_alert(c, entry), when, event_id)

    def _rule_ok(self, rule_id: str, state: State) -> None:
        """A rule that evaluated cleanly ends its run of failures."""
        failing = state.values.get((GLOBAL, FAILING))
        if failing and rule_id in failing:
            rest = {k: v for k, v in failing.items() if k != rule_id}
            if rest:
                state.put(GLOBAL, FAILING, rest)
            else:
                state.delete(GLOBAL, FAILING)

    def _failure_alert(self, c: Compiled, entry: dict[str, Any]) -> AlertRaised:
        rule = c.rule
        key = f"{HEALTH_RULE}:{rule.id}:{c.digest}:{entry['first_event']}"
        summary = (
            f"Rule {rule.id} failed while evaluating event {entry['first_event']}: "
            f"{entry['error']}. The rule is skipped for such events; the other rules go on."
        )
        return AlertRaised(
            alert_id=str(uuid.uuid5(ALERT_NAMESPACE, key)),
            rule=HEALTH_RULE,
            rule_hash=c.digest,
            severity="warning",
            title=f"Rule {rule.id} is failing",
            summary=summary,
            body=summary,
            dedup_key=key,
            data={"rule": rule.id, "error": entry["error"], "event_id": entry["first_event"]},
            channels=[r.name for r in self.routes if r.health],
            labels={"kind": "rule_failure", "failing_rule": rule.id},
            trigger_event_id=entry["first_event"],
            explanation=[f"evaluating rule {rule.id} raised {entry['error']}"],
        )

    def _noter(self, rule_id: str, event_id: str) -> Callable[[str], None]:
        trace = self.trace
        if trace is None or trace.rule_id != rule_id or trace.event_id != event_id:
            return _ignore
        return trace.lines.append

    # -- noise control -----------------------------------------------------------------------

    def _dedup_key(self, p: Pending) -> str:
        rule = p.rule.rule
        template = rule.dedup_key or _default_key(rule)
        try:
            return f"{rule.id}:" + render(template, self._tctx(p))
        except ValueError as exc:
            p.notes.append(f"dedup_key template failed ({exc}); default key used")
            return f"{rule.id}:" + render(_default_key(rule), self._tctx(p))

    def _tctx(self, p: Pending, evidence: list[Evidence] | None = None) -> dict[str, Any]:
        ev = [e.model_dump(mode="json") for e in (evidence or p.verdict.evidence)]
        return {
            **p.ctx,
            "fact": p.ctx,
            "rule": p.rule.dump,
            "data": p.verdict.data,
            "evidence": ev,
            "status": p.verdict.status,
        }

    def _hold_or_raise(
        self, p: Pending, state: State, sink: Sink, note: Callable[[str], None]
    ) -> AlertRaised | None:
        rule = p.rule.rule
        key = self._dedup_key(p)
        memory = state.memory(rule.id)
        held = memory.get(f"hold:{key}")
        if p.verdict.status == "resolved" and held is not None:
            self._drop_hold(state, rule.id, key)
            reason = "resolved before its hold ended: nothing was sent, so nothing to resolve"
            note(f"suppressed: {reason}")
            self._suppress(p, key, "hold_cancelled", reason, sink)
            return None
        if rule.hold > timedelta(0) and p.verdict.status == "firing":
            if held is not None:
                held["outlets"] = sorted({*held["outlets"], *p.outlets})
                held["evidence"].append(p.verdict.evidence[-1].model_dump(mode="json"))
                memory.put(f"hold:{key}", held)
                note(f"held: joins the pending alert {key} (outlets {held['outlets']})")
                return None
            due = p.when + rule.hold
            memory.put(
                f"hold:{key}",
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
            index[f"{rule.id}\x1f{key}"] = due.isoformat()
            state.put(GLOBAL, HOLDS, index)
            note(f"held: 'for {fmt_duration(rule.hold)}' until {due.isoformat()}")
            return None
        return self._finish(p, key, state, sink, note)

    def _confirm_hold(
        self, p: Pending, state: State, evidence: Evidence, note: Callable[[str], None]
    ) -> None:
        """A later report of the same thing while an alert is held counts as confirmation."""
        try:
            key = f"{p.rule.rule.id}:" + render(
                p.rule.rule.dedup_key or _default_key(p.rule.rule), self._tctx(p)
            )
        except ValueError:
            return
        memory = state.memory(p.rule.rule.id)
        held = memory.get(f"hold:{key}")
        if held is None:
            return
        held["outlets"] = sorted({*held["outlets"], *p.outlets})
        held["evidence"].append(evidence.model_dump(mode="json"))
        memory.put(f"hold:{key}", held)
        note(f"confirms the held alert {key} (outlets {held['outlets']})")

    def _drop_hold(self, state: State, rule_id: str, key: str) -> None:
        state.delete(rule_id, f"hold:{key}")
        index = state.get(GLOBAL, HOLDS) or {}
        index.pop(f"{rule_id}\x1f{key}", None)
        if index:
            state.put(GLOBAL, HOLDS, index)
        else:
            state.delete(GLOBAL, HOLDS)

    def _cancel_holds(
        self,
        c: Compiled,
        ctx: dict[str, Any],
        state: State,
        sink: Sink,
        when: datetime,
        event_id: str,
        note: Callable[[str], None],
    ) -> None:
        """A fact matching ``cancel_if`` (e.g. a denial) drops this rule's pending alerts in
        the same watch (and with equal ``cancel_same`` fields) whose hold has not ended."""
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
            self._drop_hold(state, c.rule.id, key)
            reason = f"cancelled during its hold by fact {event_id} matching cancel_if"
            note(f"cancels pending alert {key}")
            self._note_for(c.rule.id, held["trigger"], f"suppressed: {reason}")
            p = self._pending_from_hold(c, held, when, when)
            self._suppress(p, key, "hold_cancelled", reason, sink, cause=event_id)

    def _pending_from_hold(
        self, c: Compiled, held: dict[str, Any], when: datetime, clock: datetime
    ) -> Pending:
        v = held["verdict"]
        evidence = [Evidence.model_validate(e) for e in held["evidence"]]
        verdict = Verdict(True, v["why"], v["data"], evidence, v["status"])
        return Pending(c, verdict, held["ctx"], held["trigger"], when, clock, held["outlets"])

    def _resolve_holds(
        self, state: State, sink: Sink, now: datetime, clock: datetime, cause: str
    ) -> list[AlertRaised]:
        index = state.get(GLOBAL, HOLDS)
        if not index:
            return []
        due = sorted((d, entry) for entry, d in index.items() if datetime.fromisoformat(d) <= now)
        out: list[AlertRaised] = []
        for due_iso, entry in due:
            rule_id, key = entry.split("\x1f", 1)
            held = state.get(rule_id, f"hold:{key}")
            self._drop_hold(state, rule_id, key)
            c = self.compiled.get(rule_id)
            if c is None or held is None:
                log.warning("dropping a held alert of rule %s: the rule is gone", rule_id)
                continue
            try:
                alert = self._release_hold(c, held, key, due_iso, state, sink, clock, cause)
            except Exception as exc:  # as for a fact: only this rule is affected
                self._rule_failed(c, held["trigger"], exc, state, sink, now)
                continue
            if alert is not None:
                out.append(alert)
        return out

    def _release_hold(
        self,
        c: Compiled,
        held: dict[str, Any],
        key: str,
        due_iso: str,
        state: State,
        sink: Sink,
        clock: datetime,
        cause: str,
    ) -> AlertRaised | None:
        """A hold ended: raise the alert if it was confirmed and is still true."""
        rule_id = c.rule.id
        note = self._noter(rule_id, held["trigger"])
        p = self._pending_from_hold(c, held, datetime.fromisoformat(due_iso), clock)
        p.notes.append(f"held for {fmt_duration(c.rule.hold)} until {due_iso}")
        if len(p.outlets) < c.rule.confirm_outlets:
            reason = (
                f"hold ended with {len(p.outlets)} outlet(s) ({', '.join(p.outlets)}), "
                f"confirm_outlets is {c.rule.confirm_outlets}"
            )
            note(f"suppressed: {reason}")
            self._suppress(p, key, "hold_unconfirmed", reason, sink, cause=cause)
            return None
        stale = c.kind.still_true(p.verdict.data, state.memory(rule_id))
        if stale is not None:
            note(f"suppressed: {stale}")
            self._suppress(p, key, "hold_cancelled", stale, sink, cause=cause)
            return None
        note(f"hold ended at {due_iso}, still true with outlets {p.outlets}")
        return self._finish(p, key, state, sink, note)

    def _note_for(self, rule_id: str, event_id: str, line: str) -> None:
        self._noter(rule_id, event_id)(line)

    def _finish(
        self, p: Pending, key: str, state: State, sink: Sink, note: Callable[[str], None]
    ) -> AlertRaised | None:
        """Cooldown, inhibition and silences, then raise."""
        rule = p.rule.rule
        memory = state.memory(rule.id)
        last = memory.get(f"fired:{key}")
        resolved = p.verdict.status == "resolved"
        if resolved and (last is None or last.get("status") != "firing"):
            note("no alert: nothing was sent for this key, so there is nothing to resolve")
            return None
        if not resolved and last is not None and _within(last["at"], p.when, rule.cooldown):
            reason = (
                f"cooldown {fmt_duration(rule.cooldown)} since alert {last['alert_id']} "
                f"at {last['at']}"
            )
            note(f"suppressed: {reason}")
            self._suppress(p, key, "cooldown", reason, sink)
            return None
        inhibit_key = self._inhibit_key(p)
        if inhibit_key is not None:
            source = (state.get(GLOBAL, f"inhibit:{inhibit_key}") or {}).get("active")
            if source and self._inhibits(source, rule.severity, rule.id, p.when):
                reason = (
                    f"inhibited by {source['severity']} alert {source['alert_id']} "
                    f"(rule {source['rule']}) with inhibit key {inhibit_key!r} "
                    f"until {source['until']}"
                )
                note(f"suppressed: {reason}")
                self._suppress(p, key, "inhibited", reason, sink)
                return None
        labels = self._labels(p, key)
        for silence in active_silences(state, p.clock):
            if silence.matches(labels):
                reason = f"silenced by {silence.describe()}"
                note(f"suppressed: {reason}")
                self._suppress(p, key, "silence", reason, sink)
                return None
        alert = self._build(p, key)
        note(f"raised alert {alert.alert_id}: {alert.title}")
        if not sink.raised(alert, p.when, p.trigger):
            note("already in the log (replay): not queued again")
            return None
        memory.put(
            f"fired:{key}",
            {"at": p.when.isoformat(), "alert_id": alert.alert_id, "status": alert.status},
        )
        if inhibit_key is not None and not resolved:
            self._record_inhibitor(state, inhibit_key, alert, rule.inhibit_for, p.when)
        return alert

    def _inhibit_key(self, p: Pending) -> str | None:
        template = p.rule.rule.inhibit_key
        if template is None:
            return None
        try:
            return render(template, self._tctx(p))
        except ValueError as exc:
            p.notes.append(f"inhibit_key template failed: {exc}")
            return None

    @staticmethod
    def _inhibits(source: dict[str, Any], severity: str, rule_id: str, when: datetime) -> bool:
        higher = SEVERITY_RANK[source["severity"]] > SEVERITY_RANK[severity]
        start, until = (datetime.fromisoformat(source[k]) for k in ("at", "until"))
        return higher and source["rule"] != rule_id and start <= when < until

    @staticmethod
    def _record_inhibitor(
        state: State, key: str, alert: AlertRaised, period: timedelta, when: datetime
    ) -> None:
        row = state.get(GLOBAL, f"inhibit:{key}") or {}
        current = row.get("active")
        until = when + period
        stronger = current is not None and (
            SEVERITY_RANK[current["severity"]] > SEVERITY_RANK[alert.severity]
        )
        if stronger and datetime.fromisoformat(current["until"]) > when:
            return  # a stronger inhibitor is still active
        row["active"] = {
            "severity": alert.severity,
            "alert_id": alert.alert_id,
            "rule": alert.rule,
            "at": when.isoformat(),
            "until": until.isoformat(),
        }
        state.put(GLOBAL, f"inhibit:{key}", row)

    def _labels(self, p: Pending, key: str) -> dict[str, str]:
        rule = p.rule.rule
        return {
            **rule.labels,
            "rule": rule.id,
            "type": rule.type,
            "severity": rule.severity,
            "watch": str(p.ctx.get("watch")),
            "dedup_key": key,
            "status": p.verdict.status,
            "event": rule.event,
        }

    def _alert_id(self, p: Pending, key: str) -> str:
        suffix = "" if p.verdict.status == "firing" else f"|{p.verdict.status}"
        return str(uuid.uuid5(ALERT_NAMESPACE, f"{p.rule.rule.id}|{key}|{p.trigger}{suffix}"))

    def _render(self, p: Pending, template: str, default: str, html: bool = False) -> str:
        ctx = self._tctx(p)
        try:
            return render(template, ctx, html=html)
        except ValueError as exc:
            p.notes.append(f"template failed, default used: {exc}")
            return render(default, ctx, html=html)

    def _build(self, p: Pending, key: str) -> AlertRaised:
        rule = p.rule.rule
        resolved = p.verdict.status == "resolved"
        default_title = RESOLVED_TITLE if resolved else DEFAULT_TITLES[rule.type]
        title = self._render(
            p, default_title if resolved else rule.title or default_title, default_title
        )
        body_html = None
        if rule.body_html is not None or rule.body is None:
            body_html = self._render(
                p, rule.body_html or DEFAULT_BODY_HTML, DEFAULT_BODY_HTML, True
            )
        summary = self._render(p, rule.summary or DEFAULT_SUMMARY, DEFAULT_SUMMARY)
        body = self._render(p, rule.body or DEFAULT_BODY, DEFAULT_BODY)
        explanation = [p.verdict.why, *p.notes]  # after rendering: notes say what fell back
        if rule.hold:
            explanation.append(f"outlets during the hold: {', '.join(p.outlets)}")
        return AlertRaised(
            alert_id=self._alert_id(p, key),
            rule=rule.id,
            rule_hash=p.rule.digest,
            severity=rule.severity,
            watch=p.ctx.get("watch"),
            title=title,
            summary=summary,
            body=body,
            body_html=body_html,
            dedup_key=key,
            data=p.verdict.data,
            evidence=p.verdict.evidence,
            channels=[r.name for r in self.routes if r.accepts(rule.channels)],
            labels=dict(rule.labels),
            status="resolved" if resolved else "firing",
            trigger_event_id=p.trigger,
            explanation=explanation,
        )

    def _suppress(
        self, p: Pending, key: str, kind: str, reason: str, sink: Sink, cause: str | None = None
    ) -> None:
        item = AlertSuppressed(
            rule=p.rule.rule.id,
            dedup_key=key,
            reason=reason,
            trigger_event_id=p.trigger,
            kind=kind,
            alert_id=self._alert_id(p, key),
            title=self._render(
                p,
                p.rule.rule.title or DEFAULT_TITLES[p.rule.rule.type],
                DEFAULT_TITLES[p.rule.rule.type],
            ),
        )
        sink.suppressed(item, p.when, cause or p.trigger)


def _ignore(_line: str) -> None:
    return None


def _article_of(event: StoredEvent) -> str | None:
    data = event.data
    return data.article.article_id if isinstance(data, FactReported) else None


def whole_reports(events: list[StoredEvent]) -> list[StoredEvent]:
    """A full batch, less the facts of its last article, which may go on in the next batch:
    a report is evaluated whole, within one transaction. Empty when the batch is all one
    article (the caller then reads a larger batch)."""
    last = _article_of(events[-1])
    if last is None:
        return events
    cut = len(events)
    while cut > 0 and _article_of(events[cut - 1]) == last:
        cut -= 1
    return events[:cut]


__all__ = [
    "CHECKPOINT",
    "CollectSink",
    "Evaluator",
    "LogSink",
    "Route",
    "Silence",
    "State",
    "Trace",
    "event_time",
    "evidence_of",
    "fact_context",
]
