"""Rule unit tests in YAML, shaped like ``promtool test rules``.

A test file names rule files and a list of tests; each test feeds facts (and silences and
clock ticks) at time offsets through the real ``Evaluator`` with in-memory state, then
compares the alerts raised with the expected ones (in any order; ``expect: []`` means none
may fire). Nothing touches a database::

    rule_files: [../alerts/casualty-jump.yaml]
    start: 2020-09-30T00:00:00Z
    tests:
      - name: a large rise fires
        input:
          - at: 0h
            outlet: AP
            fact: {type: casualties, side: armenian, count: 120, cumulative: true}
          - at: 24d
            fact: {type: casualties, side: armenian, count: 410, cumulative: true}
        expect:
          - rule: casualty-jump
            data: {previous: 120, current: 410}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.alerting.evaluator import Evaluator
from monitor.alerting.rules import (
    RuleError,
    RuleSet,
    describe,
    load_rule_paths,
    parse_span,
    read_yaml,
)
from monitor.alerting.silences import parse_matcher
from monitor.events import (
    FACT_ADAPTER,
    AlertRaised,
    AlertSuppressed,
    ArticleRef,
    EventData,
    FactReported,
    RulesTicked,
    SilenceAdded,
    SilenceExpired,
)
from monitor.store.log import StoredEvent

TEST_NAMESPACE = uuid.UUID("0b5e7d0c-52a4-4f7e-9d43-7c1c9f6a2e10")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SilenceInput(_Strict):
    id: str | None = None
    match: list[str] = Field(min_length=1)
    for_: timedelta = Field(alias="for")
    comment: str = ""

    _d = field_validator("for_", mode="before")(parse_span)

    @field_validator("match")
    @classmethod
    def _parses(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_matcher(text)
        return value


class InputItem(_Strict):
    """One thing that happens at ``at`` after the test's start: a fact, a silence, a tick."""

    at: timedelta = timedelta(0)
    watch: str = "test"
    outlet: str | None = "Test Wire"
    # Facts given the same ``article`` come from one article (one report), published at the
    # ``at`` of its first fact; by default each fact has an article of its own.
    article: str | None = None
    url: str | None = None
    title: str | None = None
    fact: dict[str, Any] | None = None
    silence: SilenceInput | None = None
    expire_silence: str | None = None
    tick: bool = False

    _d = field_validator("at", mode="before")(parse_span)

    @field_validator("fact")
    @classmethod
    def _fact_parses(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            FACT_ADAPTER.validate_python(_fact_defaults(value))
        return value

    @model_validator(mode="after")
    def _one_thing(self) -> InputItem:
        given = [
            self.fact is not None,
            self.silence is not None,
            bool(self.expire_silence),
            self.tick,
        ]
        if sum(given) != 1:
            raise ValueError("give exactly one of fact, silence, expire_silence, tick")
        return self


class ExpectedAlert(_Strict):
    rule: str
    status: str | None = None
    severity: str | None = None
    watch: str | None = None
    dedup_key: str | None = None
    title: str | None = None
    summary: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    evidence_count: int | None = None


class ExpectedSuppression(_Strict):
    rule: str
    kind: str | None = None
    reason_contains: str | None = None


class RuleTest(_Strict):
    name: str
    input: list[InputItem] = Field(min_length=1)
    expect: list[ExpectedAlert]
    expect_suppressed: list[ExpectedSuppression] | None = None


class RuleTestFile(_Strict):
    rule_files: list[str] = Field(min_length=1)
    start: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    tests: list[RuleTest] = Field(min_length=1)


def _fact_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    quote = raw.get("quote", f"(test) {raw.get('type', 'fact')} reported.")
    return {"quote": quote, "span": [0, len(quote)], **raw}


@dataclass
class TestResult:
    file: str
    name: str
    problems: list[str] = field(default_factory=list)
    alerts: list[AlertRaised] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_test_file(path: Path) -> tuple[RuleTestFile, RuleSet]:
    """The test file and the rules it names (paths relative to the test file, globs allowed)."""
    node, raw = read_yaml(path)
    try:
        spec = RuleTestFile.model_validate(raw)
    except ValidationError as exc:
        raise RuleError([describe(path, node, err) for err in exc.errors()]) from exc
    paths: list[Path] = []
    for pattern in spec.rule_files:
        matched = sorted(path.parent.glob(pattern))
        if not matched:
            raise RuleError([f"{path}: rule_files: nothing matches {pattern!r}"])
        paths.extend(matched)
    return spec, load_rule_paths(paths, where=path)


def build_events(test: RuleTest, start: datetime, salt: str) -> list[StoredEvent]:
    """The test's input as a log: one stored event per item, in the order written."""
    events = []
    published: dict[str, datetime] = {}
    for i, item in enumerate(test.input, start=1):
        when = start + item.at
        event_id = str(uuid.uuid5(TEST_NAMESPACE, f"{salt}|{test.name}|{i}"))
        data: EventData
        if item.fact is not None:
            fact = FACT_ADAPTER.validate_python(_fact_defaults(item.fact))
            article = item.article or f"t{i}"
            when = published.setdefault(article, when)
            url = item.url or f"https://news.test/{item.article or i}"
            ref = ArticleRef(
                article_id=article, url=url, outlet=item.outlet, title=item.title, published=when
            )
            data = FactReported(watch=item.watch, article=ref, fact=fact)
            stream = f"article:{article}"
        elif item.silence is not None:
            s = item.silence
            data = SilenceAdded(
                silence_id=s.id or f"s{i}",
                matchers=[parse_matcher(m) for m in s.match],
                starts_at=when,
                ends_at=when + s.for_,
                comment=s.comment,
            )
            stream = f"silence:{data.silence_id}"
        elif item.expire_silence:
            data = SilenceExpired(silence_id=item.expire_silence, expired_at=when)
            stream = f"silence:{item.expire_silence}"
        else:
            data, stream = RulesTicked(at=when), "rules:clock"
        events.append(
            StoredEvent(
                seq=i,
                id=event_id,
                stream=stream,
                stream_version=1,
                type=data.type,
                schema_version=1,
                occurred_at=when,
                recorded_at=when,
                idempotency_key=None,
                data=data,
                metadata={},
            )
        )
    return events


def run_test_file(path: Path) -> list[TestResult]:
    spec, rules = load_test_file(path)
    results = []
    for test in spec.tests:
        sink = Evaluator(rules).run(build_events(test, spec.start, str(path.name)))
        result = TestResult(str(path), test.name, alerts=sink.alerts)
        result.problems.extend(compare_alerts(test.expect, sink.alerts))
        if test.expect_suppressed is not None:
            result.problems.extend(compare_suppressed(test.expect_suppressed, sink.suppressions))
        results.append(result)
    return results


def _alert_matches(want: ExpectedAlert, got: AlertRaised) -> bool:
    for name in ("rule", "status", "severity", "watch", "dedup_key", "title", "summary"):
        expected = getattr(want, name)
        if expected is not None and getattr(got, name) != expected:
            return False
    if want.evidence_count is not None and len(got.evidence) != want.evidence_count:
        return False
    return all(got.data.get(k) == v for k, v in want.data.items()) and all(
        got.labels.get(k) == v for k, v in want.labels.items()
    )


def _pair(wants: list[Any], gots: list[Any], fits: Any) -> list[int] | None:
    """Match every expectation to a distinct actual item (backtracking: lists are short)."""

    def go(i: int, used: set[int]) -> list[int] | None:
        if i == len(wants):
            return []
        for j, got in enumerate(gots):
            if j not in used and fits(wants[i], got):
                rest = go(i + 1, used | {j})
                if rest is not None:
                    return [j, *rest]
        return None

    return go(0, set())


def _show(alert: AlertRaised) -> str:
    data = {k: v for k, v in alert.data.items() if v is not None}
    return f"{alert.rule} [{alert.status}] {alert.title!r} data={data}"


def compare_alerts(wants: list[ExpectedAlert], gots: list[AlertRaised]) -> list[str]:
    if len(wants) == len(gots) and _pair(wants, gots, _alert_matches) is not None:
        return []
    problems = [f"expected {len(wants)} alert(s), got {len(gots)}"]
    for want in wants:
        if not any(_alert_matches(want, g) for g in gots):
            problems.append(f"  missing: {want.model_dump(exclude_defaults=True)}")
    for got in gots:
        if not any(_alert_matches(w, got) for w in wants):
            problems.append(f"  unexpected: {_show(got)}")
    if len(problems) == 1:
        problems.append("  got: " + "; ".join(_show(g) for g in gots))
    return problems


def _suppression_matches(want: ExpectedSuppression, got: AlertSuppressed) -> bool:
    return (
        want.rule == got.rule
        and (want.kind is None or want.kind == got.kind)
        and (want.reason_contains is None or want.reason_contains in got.reason)
    )


def compare_suppressed(wants: list[ExpectedSuppression], gots: list[AlertSuppressed]) -> list[str]:
    if len(wants) == len(gots) and _pair(wants, gots, _suppression_matches) is not None:
        return []
    got = "; ".join(f"{g.rule} {g.kind}: {g.reason}" for g in gots) or "none"
    want = "; ".join(str(w.model_dump(exclude_none=True)) for w in wants) or "none"
    return [f"expected suppressions {want}", f"  got {got}"]


def run_paths(paths: list[Path]) -> tuple[list[TestResult], list[str]]:
    """Every test file given (directories: their ``*.yaml``); returns results and load errors."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    results: list[TestResult] = []
    errors: list[str] = []
    for file in files:
        try:
            results.extend(run_test_file(file))
        except RuleError as exc:
            errors.extend(exc.problems)
    return results, errors
