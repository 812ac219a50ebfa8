"""Rule evaluation as a consumer of the log.

``Evaluator.process`` takes one stored event at a time, in log order, with a ``State`` (rule
memory, ``alerting/state.py``) and a ``Sink`` (where alerts and suppressions go,
``alerting/sinks.py``). The live path (``catch_up``) is one more consumer that
``store.projections.follow`` feeds: rule state, ``AlertRaised`` events and their outbox rows
are written in the transaction that moves its checkpoint. Backtests, rule unit tests and
explanations run the very same ``process`` with in-memory state and a collecting sink.

A fact visits only the rules whose static selectors (fact type, watches, equality filters)
it passes (``index.py``). A fact selected by a rule goes to the rule's type
(``ruletypes.py``), which says whether it fires; a firing candidate (``pending.py``) may
wait in a ``for`` hold (``holds.py``), then passes the noise-control stages in order
(``stages.py``: cooldown, inhibition, then silences), the first that mutes it recording an
``AlertSuppressed`` with its reason. A rule that raises is skipped for that event only
(``failures.py``).

Time: rule time is event time (the article's publication), whatever order the feeds answered
in. A late or backdated report is placed at its publication time: series rules compare it with
what was published before it, and when it changes the verdict on a later figure already in the
log, that figure's alert is raised then (the same alert an in-order reading raises). An alert
raised on late data says so in its explanation. What was sent cannot be unsent: when the first
report to arrive was not the first published, the alert quotes the one that arrived first.
Silences are operator actions on the wall-clock timeline, so they are matched against the
moment the triggering event entered the log (``recorded_at``), which is stored: a backtest of
the same log silences the same alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session

from monitor.alerting.failures import Failures, forget_removed, rule_ok
from monitor.alerting.holds import Holds
from monitor.alerting.index import RuleIndex
from monitor.alerting.pending import (
    Compiled,
    Pending,
    Route,
    compile_rule,
    describe_failure,
    event_time,
    evidence_json,
    evidence_of,
    fact_context,
)
from monitor.alerting.rules import SEVERITY_RANK, MatchRule, RuleSet
from monitor.alerting.ruletypes import Observed, Verdict, lookup, outlet_of
from monitor.alerting.silences import Silences, silence_state
from monitor.alerting.sinks import CollectSink, LogSink, Sink, suppress
from monitor.alerting.stages import Cooldown, Inhibition, Stage, last_fired
from monitor.alerting.state import FAILING, GLOBAL, HOLDS, LATEST, State
from monitor.events import (
    AlertRaised,
    FactReported,
    RulesTicked,
    SilenceAdded,
    SilenceExpired,
    as_utc,
)
from monitor.store.log import EventStore, NewEvent, StoredEvent
from monitor.store.projections import Consumer, follow_all
from monitor.store.tables import RuleState

CHECKPOINT = "rules"
# Event types the evaluator consumes; everything else in the log is skipped unread.
INPUT_TYPES = ("FactReported", "SilenceAdded", "SilenceExpired", "RulesTicked")
Note = Callable[[str], None]


@dataclass
class Trace:
    """Lines explaining what one rule did with one event (``monitor rules explain``)."""

    rule_id: str
    event_id: str
    lines: list[str] = field(default_factory=list)


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
        self.index = RuleIndex(compiled)
        self.stages: list[Stage] = [Cooldown(), Inhibition(), Silences()]
        self.holds = Holds(self._noter)
        self.failures = Failures(self.routes)
        self.report: Report | None = None
        # The live state as committed with the checkpoint at this seq (``LiveRun``).
        self._kept: tuple[int, State] | None = None

    # -- driving --------------------------------------------------------------------------

    def catch_up(
        self, store: EventStore, batch: int = 2000, also: Sequence[Consumer] = ()
    ) -> list[AlertRaised]:
        """Evaluate every input event after the checkpoint (see ``LiveRun``); ``also``: other
        consumers (the projections) that follow the log in the same pass, so that each event
        is read once for all of them.

        ``batch``: events per transaction. Each transaction rewrites the state rows its
        events changed (a busy series once per batch, however many reports it had), so a
        backlog costs less in larger batches. A batch is evaluated in a read transaction and
        only its writes take the log's write lock (see ``follow_all``)."""
        run = LiveRun(self, store)
        follow_all(store, [run, *also], batch)
        return run.raised

    def tick(
        self, store: EventStore, now: datetime, also: Sequence[Consumer] = ()
    ) -> list[AlertRaised]:
        """Let holds whose time has come fire without waiting for a later fact. The tick is
        appended to the log as ``RulesTicked`` first, so a replay resolves them identically;
        nothing is appended when no hold is due. ``also``: as for ``catch_up``."""
        raised = self.catch_up(store, also=also)
        with store.read_session() as session:
            row = session.get(RuleState, (GLOBAL, HOLDS))
            ends = (row.value if row else {}).values()
            due = [d for d in ends if datetime.fromisoformat(d) <= now]
        if not due:
            return raised
        at = now.astimezone(UTC)
        tick = RulesTicked(at=at)
        key = f"tick:{at.isoformat()}"
        store.append(
            [NewEvent(stream="rules:clock", data=tick, idempotency_key=key, occurred_at=at)]
        )
        return raised + self.catch_up(store, also=also)

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
        when, clock = event_time(event), as_utc(event.recorded_at)
        forget_removed(self.compiled, state)
        for rule_id, key, due_iso, held in self.holds.due(state, when):
            c = self.compiled.get(rule_id)
            if c is None:
                continue  # the rule is gone: so is its alert
            try:
                p = self.holds.release(c, held, key, due_iso, state, sink, clock, event.id)
                alert = self.finish(p, state, sink) if p is not None else None
            except Exception as exc:  # as for a fact: only this rule is affected
                self.failures.failed(c, held["trigger"], exc, state, sink, when, clock)
                continue
            out.extend([alert] if alert is not None else [])
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
        fact_type = data.fact.type
        at = when.isoformat()
        late = lateness(state, at)
        of_type = self.index.by_type.get(fact_type)
        if not of_type:
            return []
        # Explanations visit every rule on the fact type, to say why the others stay silent.
        rules = of_type if self.trace is not None else self.index.candidates(data)
        failing = state.values.get((GLOBAL, FAILING)) or {}
        if failing and len(rules) < len(of_type):
            # A rule its selectors skip has evaluated this fact cleanly: as when it is visited,
            # that ends its run of failures.
            chosen = {c.rule.id for c in rules}
            for c in of_type:
                if c.rule.id in failing and c.rule.id not in chosen:
                    rule_ok(c.rule.id, state)
        if not rules:
            return []
        ctx = fact_context(event)
        seen = Observed(
            event.id,
            when,
            ctx,
            None,
            at,
            make=lambda: evidence_of(event),
            json=evidence_json(event.id, ctx),
        )
        out: list[AlertRaised] = []
        for c in rules:
            try:
                out.extend(self._evaluate_rule(c, data, seen, state, sink, clock, late))
            except Exception as exc:  # one broken rule must not stop the others
                self.failures.failed(c, event.id, exc, state, sink, when, clock)
                continue
            if c.rule.id in failing:
                rule_ok(c.rule.id, state)
        return out

    def _evaluate_rule(
        self,
        c: Compiled,
        data: FactReported,
        seen: Observed,
        state: State,
        sink: Sink,
        clock: datetime,
        late: str | None,
    ) -> list[AlertRaised]:
        """One rule on one fact (``late``: why the fact counts as late data, if it does)."""
        rule = c.rule
        note: Note
        if self.trace is None:  # the index chose the rule: its watches and selectors pass
            note, where = _ignore, c.unselected if c.unselected is not None else c.where
        else:  # explanations visit every rule of the fact's type
            note, where = self._noter(rule.id, seen.event_id), c.where
            if not rule.applies_to(data.watch):
                note(f"not selected: watch {data.watch!r} is not in {rule.watches}")
                return []
        if c.cancel_if and c.first_failure(seen.ctx, c.cancel_if) is None:
            self.holds.cancel(c, seen.ctx, state, sink, seen.time, seen.event_id)
        failed = c.first_failure(seen.ctx, where) if where else None
        tracing = note is not _ignore  # explanations are built only when asked for
        if failed is not None:
            if tracing:
                note(f"not selected: {describe_failure(failed)}")
            return []
        if tracing:
            note(f"selected: {rule.event} fact in {data.watch} passes every where filter")
        verdict = c.kind.check(seen, state.memory(rule.id))
        if tracing:
            note(f"{rule.type}: {verdict.why}")
        out = self._revisit(c, verdict, seen, state, sink, clock, note) if verdict.later else []
        if not verdict.fire and not (verdict.restates and rule.hold):
            note("verdict: no alert")
            return out
        outlets = [outlet_of(seen.ctx, "outlet")]
        pending = Pending(c, verdict, seen.ctx, seen.event_id, seen.time, clock, outlets)
        if not verdict.fire:
            self.holds.confirm(pending, state, seen.evidence_json(), note)
            note("verdict: no alert")
            return out
        if late:
            pending.notes.append(late)
        if isinstance(rule, MatchRule) and rule.per_report:
            self.report = self.report or Report(data.article.article_id, state, sink)
            self.report.join(pending)
            note("joins the one alert of its report (per_report)")
            return out
        alert = self._raise(pending, state, sink, note)
        return [*out, alert] if alert is not None else out

    def _revisit(
        self,
        c: Compiled,
        verdict: Verdict,
        seen: Observed,
        state: State,
        sink: Sink,
        clock: datetime,
        note: Note,
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
            alert = self._raise(p, state, sink, self._noter(c.rule.id, later.event_id))
            out.extend([alert] if alert is not None else [])
        return out

    def end_report(self) -> list[AlertRaised]:
        """The article's facts are all read: its ``per_report`` hits become alerts."""
        report, self.report = self.report, None
        out: list[AlertRaised] = []
        for p in report.pending.values() if report is not None else ():
            assert report is not None
            state, sink = report.state, report.sink
            try:
                alert = self._raise(p, state, sink, self._noter(p.rule.rule.id, p.trigger))
            except Exception as exc:
                self.failures.failed(p.rule, p.trigger, exc, state, sink, p.when, p.clock)
                continue
            out.extend([alert] if alert is not None else [])
        return out

    # -- noise control ----------------------------------------------------------------------

    def _raise(self, p: Pending, state: State, sink: Sink, note: Note) -> AlertRaised | None:
        """Into a ``for`` hold, or on through the stages now."""
        return None if self.holds.take(p, state, sink, note) else self.finish(p, state, sink, note)

    def finish(
        self, p: Pending, state: State, sink: Sink, note: Note | None = None
    ) -> AlertRaised | None:
        """Run the stages in order; an alert no stage mutes is raised."""
        note = note or self._noter(p.rule.rule.id, p.trigger)
        if p.resolved and (last_fired(p, state) or {}).get("status") != "firing":
            note("no alert: nothing was sent for this key, so there is nothing to resolve")
            return None
        for stage in self.stages:
            reason = stage.mutes(p, state)
            if reason is not None:
                note(f"suppressed: {reason}")
                suppress(sink, p, stage.kind, reason)
                return None
        alert = p.alert(self.routes)
        note(f"raised alert {alert.alert_id}: {alert.title}")
        if not sink.raised(alert, p.when, p.trigger):
            note("already in the log (replay): not queued again")
            return None
        for stage in self.stages:
            stage.raised(p, alert, state)
        return alert

    def _noter(self, rule_id: str, event_id: str) -> Note:
        trace = self.trace
        if trace is None or trace.rule_id != rule_id or trace.event_id != event_id:
            return _ignore
        return trace.lines.append


class LiveRun(Consumer):
    """The evaluator as a consumer of the log, for one ``catch_up``: each batch's alerts,
    suppressions, outbox rows and changed state are written in the transaction that moves
    the checkpoint. A batch never ends inside an article's facts (``follow_all`` sees to
    it), so that a report is evaluated whole.

    The rule state is read from ``rule_state`` once, then kept by the evaluator from one
    batch and one ``catch_up`` to the next: it is the table's content for as long as the
    checkpoint stays where this evaluator's last commit left it. When the checkpoint has
    moved (another process evaluated, the consumer was reset) or a transaction did not
    commit (its changes to the state in memory are not in the table), the table is read
    again."""

    name = CHECKPOINT
    types = INPUT_TYPES

    def __init__(self, evaluator: Evaluator, store: EventStore) -> None:
        super().__init__()
        self.evaluator = evaluator
        self.store = store
        self.state: State | None = None
        self.sink: LogSink | None = None
        self.raised: list[AlertRaised] = []

    def begin(self, session: Session, at: int) -> None:
        kept, self.evaluator._kept = self.evaluator._kept, None  # changed from here on
        self.state = kept[1] if kept is not None and kept[0] == at else State.load(session)
        self.sink = LogSink(self.store)

    def apply(self, session: Session, event: StoredEvent) -> None:
        assert self.state is not None and self.sink is not None
        self.evaluator.process(event, self.state, self.sink)

    def end(self, session: Session, to: int) -> None:
        assert self.state is not None and self.sink is not None
        self.evaluator.end_report()
        self.raised.extend(self.sink.flush(session))
        self.state.flush(session)

    def committed(self, to: int) -> None:
        assert self.state is not None
        self.evaluator._kept = (to, self.state)  # the table's content at ``to`` from now on

    def discard(self) -> None:
        self.evaluator.report = None  # its facts are evaluated again by the next batch
        self.state = self.sink = None


@dataclass
class Report:
    """The hits of ``per_report`` rules on the facts of one article, one alert per rule and
    watch once the article's facts have all been read (they are appended together)."""

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


def _ignore(_line: str) -> None:
    return None


def lateness(state: State, at: str) -> str | None:
    """Why a fact published at ``at`` (ISO form) is late (facts published after it were
    evaluated already), or None when it is the newest so far (it then becomes the newest)."""
    latest = (state.values.get((GLOBAL, LATEST)) or {}).get("at")
    if latest is None or latest < at:
        state.put(GLOBAL, LATEST, {"at": at})
    if latest is None or latest <= at:
        return None
    return (
        f"raised on late data: published {at}, it reached the log after facts published up "
        f"to {latest}"
    )


def _article_of(event: StoredEvent) -> str | None:
    data = event.data
    return data.article.article_id if isinstance(data, FactReported) else None


__all__ = [
    "CHECKPOINT",
    "INPUT_TYPES",
    "CollectSink",
    "Evaluator",
    "LogSink",
    "Route",
    "State",
    "Trace",
    "event_time",
    "evidence_of",
    "fact_context",
]
