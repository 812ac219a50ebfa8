"""What the evaluator works with: rules compiled for speed, facts as rules see them, and the
alert candidate (``Pending``) that the noise-control stages look at and that becomes an
``AlertRaised`` (or an ``AlertSuppressed`` saying why not).

Alert ids derive from the rule, dedup key and triggering event, so re-evaluating the same
log raises the same alerts. Templates that fail on the values they meet fall back to the
defaults, and the alert's explanation says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from monitor.alerting.rules import Condition, Rule
from monitor.alerting.ruletypes import RuleType, Verdict, lookup, rule_type_for
from monitor.alerting.templates import (
    DEFAULT_BODY,
    DEFAULT_BODY_HTML,
    DEFAULT_SUMMARY,
    DEFAULT_TITLES,
    RESOLVED_TITLE,
    reads,
    render,
)
from monitor.events import AlertRaised, AlertSuppressed, Evidence, FactReported, RulesTicked, as_utc
from monitor.store.log import StoredEvent, uuid5_text

ALERT_NAMESPACE = uuid.UUID("a7c3e0d2-5f4b-4e8a-8d2c-1b9e6f3a0c55")
_NAMESPACE_BYTES = ALERT_NAMESPACE.bytes


def alert_uuid(text: str) -> str:
    """``str(uuid.uuid5(ALERT_NAMESPACE, text))``: every alert and suppression has one."""
    return uuid5_text(_NAMESPACE_BYTES, text)


class Route(BaseModel):
    """A channel as the evaluator sees it: a name and the tags it accepts (``*``: all)."""

    name: str
    tags: list[str]
    health: bool = False  # also receives health alerts (a rule that fails)

    def accepts(self, rule_channels: Sequence[str]) -> bool:
        return "*" in self.tags or any(t in self.tags for t in rule_channels)


# --- facts as rules see them ----------------------------------------------------------------


def fact_context(event: StoredEvent) -> dict[str, Any]:
    """The fields a rule can filter and template on: the fact's, plus watch and article."""
    data = event.data
    assert isinstance(data, FactReported)
    dumped = data.model_dump(mode="json")  # one serializer call for fact and article
    article = dumped["article"]
    return {**dumped["fact"], "watch": data.watch, "article": article, "outlet": article["outlet"]}


def evidence_json(event_id: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """``evidence_of(event)`` in JSON, read off the fact's context (``fact_context``), which
    holds the same fields serialized the same way: no model is built for it."""
    article = ctx["article"]
    return {
        "event_id": event_id,
        "quote": ctx["quote"],
        "url": article["url"],
        "outlet": article["outlet"],
        "published": article["published"],
    }


def evidence_of(event: StoredEvent) -> Evidence:
    """The fact's evidence; its fields come from a stored fact the log validated already,
    so the model is put together without validating them again."""
    data = event.data
    assert isinstance(data, FactReported)
    return Evidence.model_construct(
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


# --- compiled rules -------------------------------------------------------------------------

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
    # The ``where`` filters left to check on a fact the rule index selected for this rule
    # (the index decided the others); all of ``where`` until an index has looked at it.
    unselected: list[Check] | None = None

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


def default_key(rule: Rule) -> str:
    if rule.type == "new_value":
        return "{{ watch }}:{{ data.value }}"
    if rule.type == "jump":
        return "{{ watch }}:{{ data.series }}:{{ data.current }}"
    if rule.type in ("transition", "corroborated"):
        return "{{ watch }}:{{ data.key }}"
    if rule.type == "frequency":
        return "{{ watch }}:{{ data.group }}"
    return "{{ watch }}:{{ article.article_id }}:{{ span[0] }}"


# --- the candidate --------------------------------------------------------------------------


@dataclass
class Pending:
    """An alert candidate on its way through holds and noise control."""

    rule: Compiled
    verdict: Verdict
    ctx: dict[str, Any]
    trigger: str  # the fact event that made the rule fire
    when: datetime  # event time of the alert
    clock: datetime  # recorded_at of the log event being processed (for silences)
    outlets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _key: str | None = field(default=None, repr=False)
    _inhibit: tuple[str | None] | None = field(default=None, repr=False)
    # The template context, with the evidence (True) and without it (False).
    _contexts: dict[bool, tuple[tuple[int, str], dict[str, Any]]] = field(
        default_factory=dict, repr=False
    )

    @property
    def resolved(self) -> bool:
        return self.verdict.status == "resolved"

    def context(self, template: str | None = None, html: bool = False) -> dict[str, Any]:
        """What templates see: the fact's fields, plus rule, data, evidence and status.

        Built once for the several texts of an alert; built again if the evidence grew
        since (a ``per_report`` alert gathers its report's facts before it renders). For a
        ``template`` that never reads the evidence (a dedup key, most titles), the evidence
        is left out: turning it into JSON is most of the cost of a context."""
        verdict = self.verdict
        full = template is None or "evidence" in reads(template, html=html)
        stamp = (len(verdict.evidence), verdict.status)
        kept = self._contexts.get(full)
        if kept is None or kept[0] != stamp:
            context = {
                **self.ctx,
                "fact": self.ctx,
                "rule": self.rule.dump,
                "data": verdict.data,
                "status": verdict.status,
            }
            if full:
                context["evidence"] = [e.model_dump(mode="json") for e in verdict.evidence]
            kept = self._contexts[full] = (stamp, context)
        return kept[1]

    def render(self, template: str, default: str, html: bool = False) -> str:
        try:
            return render(template, self.context(template, html), html=html)
        except ValueError as exc:
            self.notes.append(f"template failed, default used: {exc}")
            return render(default, self.context(default, html), html=html)

    @property
    def key(self) -> str:
        """The dedup key: what makes two alerts the same alert."""
        if self._key is None:
            rule = self.rule.rule
            template = rule.dedup_key or default_key(rule)
            try:
                key = render(template, self.context(template))
            except ValueError as exc:
                self.notes.append(f"dedup_key template failed ({exc}); default key used")
                key = render(default_key(rule), self.context(default_key(rule)))
            self._key = f"{rule.id}:{key}"
        return self._key

    def keyed(self, key: str) -> Pending:
        self._key = key
        return self

    @property
    def inhibit_key(self) -> str | None:
        if self._inhibit is None:
            template = self.rule.rule.inhibit_key
            value = None
            if template is not None:
                try:
                    value = render(template, self.context(template))
                except ValueError as exc:
                    self.notes.append(f"inhibit_key template failed: {exc}")
            self._inhibit = (value,)
        return self._inhibit[0]

    def labels(self) -> dict[str, str]:
        """What silences match on."""
        rule = self.rule.rule
        return {
            **rule.labels,
            "rule": rule.id,
            "type": rule.type,
            "severity": rule.severity,
            "watch": str(self.ctx.get("watch")),
            "dedup_key": self.key,
            "status": self.verdict.status,
            "event": rule.event,
        }

    @property
    def alert_id(self) -> str:
        suffix = "" if self.verdict.status == "firing" else f"|{self.verdict.status}"
        return alert_uuid(f"{self.rule.rule.id}|{self.key}|{self.trigger}{suffix}")

    def alert(self, routes: Sequence[Route]) -> AlertRaised:
        rule = self.rule.rule
        default_title = RESOLVED_TITLE if self.resolved else DEFAULT_TITLES[rule.type]
        title = self.render(
            default_title if self.resolved else rule.title or default_title, default_title
        )
        body_html = None
        if rule.body_html is not None or rule.body is None:
            body_html = self.render(rule.body_html or DEFAULT_BODY_HTML, DEFAULT_BODY_HTML, True)
        summary = self.render(rule.summary or DEFAULT_SUMMARY, DEFAULT_SUMMARY)
        body = self.render(rule.body or DEFAULT_BODY, DEFAULT_BODY)
        explanation = [self.verdict.why, *self.notes]  # after rendering: notes say what fell back
        if rule.hold:
            explanation.append(f"outlets during the hold: {', '.join(self.outlets)}")
        return AlertRaised(
            alert_id=self.alert_id,
            rule=rule.id,
            rule_hash=self.rule.digest,
            severity=rule.severity,
            watch=self.ctx.get("watch"),
            title=title,
            summary=summary,
            body=body,
            body_html=body_html,
            dedup_key=self.key,
            data=self.verdict.data,
            evidence=self.verdict.evidence,
            channels=[r.name for r in routes if r.accepts(rule.channels)],
            labels=dict(rule.labels),
            status="resolved" if self.resolved else "firing",
            trigger_event_id=self.trigger,
            explanation=explanation,
        )

    def suppression(self, kind: str, reason: str) -> AlertSuppressed:
        rule = self.rule.rule
        return AlertSuppressed(
            rule=rule.id,
            dedup_key=self.key,
            reason=reason,
            trigger_event_id=self.trigger,
            kind=kind,
            alert_id=self.alert_id,
            title=self.render(rule.title or DEFAULT_TITLES[rule.type], DEFAULT_TITLES[rule.type]),
        )
