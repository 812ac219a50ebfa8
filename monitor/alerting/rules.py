"""Alert rules: typed YAML files, validated with errors that name file, line and field.

A rule selects facts (``event`` plus ``where`` filters, scoped to ``watches``) and says when
they are worth telling someone: ``match`` (every time), ``new_value`` (the first time a value
is seen), ``jump`` (a cumulative series rises by at least N or P%).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.config import parse_duration

FactType = Literal["casualties", "ceasefire", "third_party", "downing", "diplomacy"]
Severity = Literal["info", "warning", "critical"]
Scalar = str | int | float | bool | None


class Condition(BaseModel):
    """A filter on one fact field; a bare scalar in YAML means ``equals``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    equals: Scalar = None
    not_equals: Scalar = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    regex: str | None = None
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None
    exists: bool | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    def test(self, value: Any) -> bool:
        fields = self.model_fields_set
        checks = (
            ("exists", lambda: (value is not None) == self.exists),
            ("equals", lambda: value == self.equals),
            ("not_equals", lambda: value != self.not_equals),
            ("in_", lambda: value in (self.in_ or [])),
            ("not_in", lambda: value not in (self.not_in or [])),
            ("regex", lambda: value is not None and re.search(self.regex or "", str(value)) is not None),
            ("gte", lambda: _num(value) is not None and _num(value) >= self.gte),
            ("gt", lambda: _num(value) is not None and _num(value) > self.gt),
            ("lte", lambda: _num(value) is not None and _num(value) <= self.lte),
            ("lt", lambda: _num(value) is not None and _num(value) < self.lt),
        )
        return all(check() for name, check in checks if name in fields)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    severity: Severity = "warning"
    watches: list[str] | None = None
    event: FactType
    where: dict[str, Condition] = Field(default_factory=dict)
    dedup_key: str | None = None
    cooldown: timedelta = timedelta(0)
    channels: list[str] = Field(default_factory=lambda: ["all"])
    labels: dict[str, str] = Field(default_factory=dict)
    title: str | None = None
    summary: str | None = None

    @field_validator("where", mode="before")
    @classmethod
    def _scalars_mean_equals(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, dict) else {"equals": v} for k, v in value.items()}
        return value

    _cooldown = field_validator("cooldown", mode="before")(parse_duration)

    def applies_to(self, watch: str) -> bool:
        return self.watches is None or watch in self.watches

    def digest(self) -> str:
        """A hash of the rule's meaning, stored with each alert it raises."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class MatchRule(RuleBase):
    type: Literal["match"]


class NewValueRule(RuleBase):
    type: Literal["new_value"]
    value: str
    per: list[str] = Field(default_factory=lambda: ["watch"])


class JumpRule(RuleBase):
    type: Literal["jump"]
    value: str = "count"
    series: list[str] = Field(default_factory=lambda: ["watch", "side", "category", "outcome"])
    min_increase: int | None = Field(default=None, ge=1)
    min_percent: float | None = Field(default=None, gt=0)


Rule = Annotated[Union[MatchRule, NewValueRule, JumpRule], Field(discriminator="type")]


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule]


class RuleError(ValueError):
    """One or more problems in rule files, each naming file, line, column and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RuleSet(BaseModel):
    rules: list[Rule]
    digest: str

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def load_rules(directory: Path) -> RuleSet:
    """Every ``*.yaml`` under ``directory``; raises RuleError listing every problem found."""
    problems: list[str] = []
    rules: list[Rule] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            rules.extend(load_rule_file(path))
        except RuleError as exc:
            problems.extend(exc.problems)
    seen: dict[str, int] = {}
    for rule in rules:
        seen[rule.id] = seen.get(rule.id, 0) + 1
    problems.extend(f"{directory}: rule id {i!r} is defined {n} times" for i, n in seen.items() if n > 1)
    if problems:
        raise RuleError(problems)
    digest = hashlib.sha256("".join(r.digest() for r in rules).encode()).hexdigest()[:16]
    return RuleSet(rules=rules, digest=digest)


def load_rule_file(path: Path) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except OSError as exc:
        raise RuleError([f"{path}: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise RuleError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    single = isinstance(raw, dict) and "rules" not in raw
    try:
        return RuleFile.model_validate({"rules": [raw]} if single else raw).rules
    except ValidationError as exc:
        raise RuleError([_describe(path, node, err, single) for err in exc.errors()]) from exc


_RULE_TYPES = ("match", "new_value", "jump")
_KNOWN_KEYS = {
    name
    for model in (MatchRule, NewValueRule, JumpRule)
    for name in model.model_fields
} | {"in"}


def _describe(path: Path, node: yaml.Node | None, err: Any, single: bool) -> str:
    loc = [p for p in err["loc"] if p not in _RULE_TYPES]
    if single:
        loc = loc[2:]
    line, col = _position(node, loc)
    field = ".".join(str(p) for p in loc) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden" and loc:
        close = difflib.get_close_matches(str(loc[-1]), sorted(_KNOWN_KEYS), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return f"{path}:{line}:{col}: {field}: {message}"


def _position(node: yaml.Node | None, loc: list[Any]) -> tuple[int, int]:
    """Walk the composed YAML tree along a pydantic error location to the nearest node."""
    if node is None:
        return 1, 1
    best = node
    for part in loc:
        child = _child(best, part)
        if child is None:
            break
        best = child
    return best.start_mark.line + 1, best.start_mark.column + 1


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return key if not isinstance(value, yaml.MappingNode | yaml.SequenceNode) else value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
