"""Alert rules: typed YAML files, validated with errors that name file, line, column and field.

A rule selects facts (``event`` plus ``where`` filters, scoped to ``watches``) and says when
they are worth telling someone: ``match`` (every time), ``new_value`` (the first time a value
is seen), ``jump`` (a cumulative series rises by at least N or P%), ``transition`` (a state
moves from A to B, and back), ``frequency`` (N events in a window) and ``corroborated`` (k
distinct outlets within a window). Noise control (dedup key, cooldown, ``for`` holds,
inhibition) is declared on the rule too; silences are operator events in the log.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from jinja2 import TemplateSyntaxError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.alerting.templates import compile_template
from monitor.durations import parse_duration
from monitor.events import ArticleRef, Casualties, Ceasefire, Diplomacy, Downing, ThirdParty

FactType = Literal["casualties", "ceasefire", "third_party", "downing", "diplomacy"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
Scalar = str | int | float | bool | None

FACT_MODELS: dict[str, type[BaseModel]] = {
    "casualties": Casualties,
    "ceasefire": Ceasefire,
    "third_party": ThirdParty,
    "downing": Downing,
    "diplomacy": Diplomacy,
}


def known_fields(event: str) -> set[str]:
    """Field paths a rule on ``event`` facts can name: the fact's, plus watch and article."""
    fact = set(FACT_MODELS[event].model_fields)
    article = {f"article.{name}" for name in ArticleRef.model_fields}
    return fact | article | {"watch", "outlet", "article"}


Predicate = Callable[[Any], bool]
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")
_SPAN_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_span(value: Any) -> timedelta:
    """A duration: ``90s``, ``6h``, ``7d``, compound ``1d4h30m`` (Prometheus style), or seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | timedelta):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 6h, 7d or 1d4h30m)")
    try:
        if isinstance(value, str):
            text = value.strip().replace(" ", "")
            parts = _SPAN.findall(text)
            if parts and "".join(n + u for n, u in parts) == text:
                return timedelta(seconds=sum(float(n) * _SPAN_UNITS[u] for n, u in parts))
        return parse_duration(value)
    except (OverflowError, TypeError) as exc:  # 1e400 seconds, NaN: no timedelta holds them
        raise ValueError(f"not a usable duration: {value!r} ({exc})") from exc


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Condition(BaseModel):
    """A filter on one fact field; a bare scalar in YAML means ``equals``. All tests given
    must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    equals: Scalar = None
    not_equals: Scalar = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    regex: str | None = None
    not_regex: str | None = None
    contains: Scalar = None
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None
    exists: bool | None = None

    _tests: list[tuple[str, Predicate]] = PrivateAttr(default_factory=list)

    @field_validator("regex", "not_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    def model_post_init(self, _context: Any) -> None:
        # Compiled once: conditions run for every rule on every event.
        self._tests = [(name, self._predicate(name)) for name in sorted(self.model_fields_set)]

    def _predicate(self, name: str) -> Predicate:
        v = getattr(self, name)
        if name == "exists":
            return lambda x: (x is not None) == v
        if name == "equals":
            return lambda x: x == v
        if name == "not_equals":
            return lambda x: x != v
        if name == "in_":
            return lambda x: x in v
        if name == "not_in":
            return lambda x: x not in v
        if name in ("regex", "not_regex"):
            pattern = re.compile(v)
            want = name == "regex"
            return lambda x: (x is not None and pattern.search(str(x)) is not None) == want
        if name == "contains":
            return lambda x: isinstance(x, list | tuple | str) and v in x
        ops: dict[str, Callable[[float, float], bool]] = {
            "gte": float.__ge__,
            "gt": float.__gt__,
            "lte": float.__le__,
            "lt": float.__lt__,
        }
        op = ops[name]
        return lambda x: (n := _num(x)) is not None and op(n, float(v))

    def test(self, value: Any) -> bool:
        return all(check(value) for _, check in self._tests)

    def predicates(self) -> list[Predicate]:
        return [check for _, check in self._tests]

    def failing(self, value: Any) -> str | None:
        """The first test that fails, as text for explanations; None when all pass."""
        for name, check in self._tests:
            if not check(value):
                return f"{name.rstrip('_')} {getattr(self, name)!r}"
        return None


def _fields_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_OPTIONAL_IN_DIGEST = ("per_report", "collect")


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
    hold: timedelta = Field(default=timedelta(0), alias="for")
    confirm_outlets: int = Field(default=1, ge=1)
    cancel_if: dict[str, Condition] = Field(default_factory=dict)
    cancel_same: list[str] = Field(default_factory=list)
    inhibit_key: str | None = None
    inhibit_for: timedelta = timedelta(days=1)
    channels: list[str] = Field(default_factory=lambda: ["all"])
    labels: dict[str, str] = Field(default_factory=dict)
    title: str | None = None
    summary: str | None = None
    body: str | None = None
    body_html: str | None = None

    @field_validator("where", "cancel_if", mode="before")
    @classmethod
    def _scalars_mean_equals(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, dict) else {"equals": v} for k, v in value.items()}
        return value

    _durations = field_validator("cooldown", "hold", "inhibit_for", mode="before")(parse_span)

    @field_validator("dedup_key", "inhibit_key", "title", "summary", "body", "body_html")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_template(value, html=False)
            except TemplateSyntaxError as exc:
                raise ValueError(f"template syntax error: {exc.message}") from exc
        return value

    def field_references(self) -> dict[str, list[str]]:
        """Fact fields this rule names, by rule key: checked at load time so that a typo
        is an error instead of a rule that silently never fires."""
        return {
            "where": list(self.where),
            "cancel_if": list(self.cancel_if),
            "cancel_same": self.cancel_same,
        }

    def applies_to(self, watch: str) -> bool:
        return self.watches is None or watch in self.watches

    def digest(self) -> str:
        """A hash of the rule's meaning (its validated text), stored with each alert it raises:
        reformatting or comments do not change it, any change of behaviour does."""
        dump = self.model_dump(mode="json", by_alias=True)
        for name in _OPTIONAL_IN_DIGEST:  # options added later: unset, old hashes stay valid
            if name in dump and not dump[name]:
                del dump[name]
        text = json.dumps(dump, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class MatchRule(RuleBase):
    """Every selected fact is worth an alert (noise control still applies).

    ``per_report``: the facts one article yields are one report, and one alert: a sentence
    naming two brokers of a collapsed truce, and the headline saying it collapsed, are one
    collapse. The first selected fact of the article is the alert's; ``collect`` gathers a
    field of every selected fact into a list (``collect: {brokers: broker}`` gives
    ``data.brokers``, distinct values in the order the text gives them, empty ones left out).
    """

    type: Literal["match"]
    per_report: bool = False
    collect: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _collect_needs_report(self) -> MatchRule:
        if self.collect and not self.per_report:
            raise ValueError("collect gathers the facts of one report: set per_report: true")
        return self

    def field_references(self) -> dict[str, list[str]]:
        return {**super().field_references(), "collect": list(self.collect.values())}


class NewValueRule(RuleBase):
    """The first time ``value`` is seen per ``per`` group (e.g. a new outside actor)."""

    type: Literal["new_value"]
    value: str
    per: list[str] = Field(default_factory=lambda: ["watch"])

    _list = field_validator("per", mode="before")(_fields_list)

    def field_references(self) -> dict[str, list[str]]:
        return {**super().field_references(), "value": [self.value], "per": self.per}


class JumpRule(RuleBase):
    """A cumulative figure of one series rises by at least ``min_increase`` or ``min_percent``
    over the highest earlier figure of the same series."""

    type: Literal["jump"]
    value: str = "count"
    series: list[str] = Field(default_factory=lambda: ["watch", "side", "category", "outcome"])
    min_increase: int | None = Field(default=None, ge=1)
    min_percent: float | None = Field(default=None, gt=0)

    _list = field_validator("series", mode="before")(_fields_list)

    @model_validator(mode="after")
    def _a_threshold(self) -> JumpRule:
        if self.min_increase is None and self.min_percent is None:
            raise ValueError("give min_increase, min_percent or both")
        return self

    def field_references(self) -> dict[str, list[str]]:
        return {**super().field_references(), "value": [self.value], "series": self.series}


class TransitionRule(RuleBase):
    """A state (``field``, per ``key``) moves from one of ``from`` to one of ``to``; when it
    later moves back out of ``to`` (into ``resolve_to``, by default ``from``), a resolved
    notice follows, as Alertmanager sends for an alert that stops firing."""

    type: Literal["transition"]
    field: str = "status"
    key: list[str] = Field(default_factory=lambda: ["watch"])
    from_: list[Scalar] | None = Field(default=None, alias="from")
    to: list[Scalar] = Field(min_length=1)
    resolve: bool = True
    resolve_to: list[Scalar] | None = None

    _list = field_validator("key", mode="before")(_fields_list)
    _to = field_validator("to", "from_", "resolve_to", mode="before")(_fields_list)

    def field_references(self) -> dict[str, list[str]]:
        return {**super().field_references(), "field": [self.field], "key": self.key}

    def resolves_on(self, state: Any) -> bool:
        if self.resolve_to is not None:
            return state in self.resolve_to
        if self.from_ is not None:
            return state in self.from_
        return state not in self.to


class FrequencyRule(RuleBase):
    """At least ``threshold`` selected facts within ``window`` (event time), per group."""

    type: Literal["frequency"]
    threshold: int = Field(ge=1)
    window: timedelta
    group_by: list[str] = Field(default_factory=lambda: ["watch"])

    _window = field_validator("window", mode="before")(parse_span)
    _list = field_validator("group_by", mode="before")(_fields_list)

    def field_references(self) -> dict[str, list[str]]:
        return {**super().field_references(), "group_by": self.group_by}


class CorroboratedRule(RuleBase):
    """The same fact (same ``key`` values) reported by ``min_outlets`` distinct outlets within
    ``window``: one outlet repeating itself is not corroboration."""

    type: Literal["corroborated"]
    min_outlets: int = Field(default=2, ge=2)
    window: timedelta = timedelta(days=1)
    key: list[str] = Field(default_factory=lambda: ["watch"])
    outlet_field: str = "outlet"

    _window = field_validator("window", mode="before")(parse_span)
    _list = field_validator("key", mode="before")(_fields_list)

    def field_references(self) -> dict[str, list[str]]:
        return {**super().field_references(), "key": self.key, "outlet_field": [self.outlet_field]}


RULE_MODELS: tuple[type[RuleBase], ...] = (
    MatchRule,
    NewValueRule,
    JumpRule,
    TransitionRule,
    FrequencyRule,
    CorroboratedRule,
)
Rule = Annotated[
    MatchRule | NewValueRule | JumpRule | TransitionRule | FrequencyRule | CorroboratedRule,
    Field(discriminator="type"),
]
RULE_TYPES: tuple[str, ...] = tuple(
    get_args(m.model_fields["type"].annotation)[0] for m in RULE_MODELS
)


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
    sources: dict[str, str] = Field(default_factory=dict)

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def only(self, rule_ids: set[str]) -> RuleSet:
        """The subset with these ids (for explaining or benchmarking one rule)."""
        rules = [r for r in self.rules if r.id in rule_ids]
        return make_ruleset(rules, {i: s for i, s in self.sources.items() if i in rule_ids})


def make_ruleset(rules: list[Any], sources: dict[str, str] | None = None) -> RuleSet:
    digest = hashlib.sha256("".join(r.digest() for r in rules).encode()).hexdigest()[:16]
    return RuleSet(rules=rules, digest=digest, sources=sources or {})


def load_rules(directory: Path) -> RuleSet:
    """Every ``*.yaml`` under ``directory``; raises RuleError listing every problem found."""
    return load_rule_paths(sorted(directory.glob("*.y*ml")), where=directory)


def load_rule_paths(paths: list[Path], where: Path | str = "rules") -> RuleSet:
    """The rules of several files as one set; ids must be unique across them."""
    problems: list[str] = []
    rules: list[Rule] = []
    sources: dict[str, str] = {}
    for path in paths:
        try:
            loaded = load_rule_file(path)
        except RuleError as exc:
            problems.extend(exc.problems)
            continue
        rules.extend(loaded)
        sources.update({r.id: str(path) for r in loaded})
    seen: dict[str, int] = {}
    for rule in rules:
        seen[rule.id] = seen.get(rule.id, 0) + 1
    problems.extend(
        f"{where}: rule id {i!r} is defined {n} times" for i, n in seen.items() if n > 1
    )
    if problems:
        raise RuleError(problems)
    return make_ruleset(rules, sources)


def load_rule_file(path: Path) -> list[Rule]:
    node, raw = read_yaml(path)
    if raw is None:
        raise RuleError([f"{path}:1:1: (top level): the file is empty"])
    single = isinstance(raw, dict) and "rules" not in raw
    try:
        rules = RuleFile.model_validate({"rules": [raw]} if single else raw).rules
    except RecursionError as exc:
        raise RuleError([f"{path}:1:1: (top level): nested too deeply"]) from exc
    except ValidationError as exc:
        strip = 2 if single else 0
        raise RuleError([describe(path, node, err, strip=strip) for err in exc.errors()]) from exc
    problems = [
        f"{path}:{line}:{col}: {field}: {message}"
        for i, rule in enumerate(rules)
        for field, message, loc, at_value in [
            *((f, m, loc, False) for f, m, loc in unknown_fields(rule)),  # the key itself
            *((f, m, loc, True) for f, m, loc in unknown_template_names(rule)),  # the template
        ]
        for line, col in [position(node, loc if single else ["rules", i, *loc], value=at_value)]
    ]
    if problems:
        raise RuleError(problems)
    return rules


def unknown_fields(rule: RuleBase) -> list[tuple[str, str, list[Any]]]:
    """Fact fields a rule names that its event type lacks: a typo in ``where`` would
    otherwise make a rule that silently never fires."""
    known = known_fields(rule.event)
    found = []
    for group, names in rule.field_references().items():
        raw = getattr(rule, group, None)
        for index, name in enumerate(names):
            if name in known:
                continue
            loc: list[Any] = [group, name] if isinstance(raw, dict) else [group]
            if isinstance(raw, list):
                loc.append(index)
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            field = ".".join(str(p) for p in loc)
            found.append((field, f"{rule.event} facts have no field {name!r}{hint}", loc))
    return found


TEMPLATE_KEYS = ("dedup_key", "inhibit_key", "title", "summary", "body", "body_html")
# What a template sees besides the fact's own fields (see Evaluator._tctx).
TEMPLATE_NAMES = {"fact", "rule", "data", "evidence", "status"}


def unknown_template_names(rule: RuleBase) -> list[tuple[str, str, list[Any]]]:
    """Names a template uses that its context never has: templates render with strict
    undefined, so ``{{ wacth }}`` would fail on the first alert; say so when the rule loads."""
    from jinja2 import meta

    from monitor.alerting.templates import template_env

    known = {name.split(".")[0] for name in known_fields(rule.event)} | TEMPLATE_NAMES
    found = []
    for key in TEMPLATE_KEYS:
        text = getattr(rule, key, None)
        if not text:
            continue
        env = template_env(html=key == "body_html")
        used = meta.find_undeclared_variables(env.parse(text)) - set(env.globals)
        for name in sorted(used - known):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            found.append((key, f"template uses {name!r}, which is not defined{hint}", [key]))
    return found


# libyaml's parser when PyYAML was built with it: the pure-Python one took a tenth of
# `monitor rules check`. Same safe constructors and resolver either way.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for positions) and the plain data of one YAML document, parsed once:
    what ``yaml.compose`` and ``yaml.safe_load`` give, without parsing the text twice. A file
    libyaml refuses is parsed again by the pure-Python parser, whose error says more (the
    character or alias at fault) at the same position."""
    try:
        return _parse_yaml(text, _FAST_LOADER)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
    return _parse_yaml(text, yaml.SafeLoader)


def _parse_yaml(text: str, loader_class: Any) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> tuple[yaml.Node | None, Any]:
    """The composed node tree (for positions) and the plain data of a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
        return parse_yaml(text)
    except OSError as exc:
        raise RuleError([f"{path}: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise RuleError([f"{path}: not UTF-8 text (byte {exc.start})"]) from exc
    except RecursionError as exc:
        raise RuleError([f"{path}: not valid YAML: nested too deeply"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise RuleError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc


def _keys_of(model: type[BaseModel]) -> list[str]:
    return sorted((f.alias or name) for name, f in model.model_fields.items())


_CONDITION_KEYS = _keys_of(Condition)
_RULE_KEYS = {t: _keys_of(m) for t, m in zip(RULE_TYPES, RULE_MODELS, strict=True)}
_ALL_RULE_KEYS = sorted({k for keys in _RULE_KEYS.values() for k in keys})


def describe(path: Path, node: yaml.Node | None, err: Any, strip: int = 0) -> str:
    """One pydantic error as ``file:line:col: field.path: message; did you mean ...?``."""
    raw_loc = list(err["loc"])[strip:]
    rule_type = next((p for p in raw_loc if p in _RULE_KEYS), None)
    loc = [p for p in raw_loc if not (p in _RULE_KEYS and p == rule_type)]
    loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    line, col = position(node, loc, value=err["type"] != "extra_forbidden")
    field = ".".join(str(p) for p in loc) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden" and loc:
        in_condition = len(loc) >= 2 and loc[-3:-2] and loc[-3] in ("where", "cancel_if")
        candidates = (
            _CONDITION_KEYS
            if in_condition
            else _RULE_KEYS.get(str(rule_type), _ALL_RULE_KEYS)
            if rule_type
            else _ALL_RULE_KEYS
        )
        close = difflib.get_close_matches(str(loc[-1]), candidates, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
    elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        got = str((err.get("ctx") or {}).get("tag", ""))
        close = difflib.get_close_matches(got, RULE_TYPES, n=1)
        message = f"unknown rule type {got!r}; one of {', '.join(RULE_TYPES)}" if got else message
        if close:
            message += f"; did you mean {close[0]!r}?"
        if field == "(top level)" or not field.endswith("type"):
            field = f"{field}.type" if loc else "type"
            line, col = position(node, [*loc, "type"], value=True)
    elif err["type"] == "literal_error":
        got = str(err.get("input"))
        expected = re.findall(r"'([^']+)'", (err.get("ctx") or {}).get("expected", ""))
        close = difflib.get_close_matches(got, expected, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return f"{path}:{line}:{col}: {field}: {message}"


def position(node: yaml.Node | None, loc: list[Any], *, value: bool = False) -> tuple[int, int]:
    """Walk the composed YAML tree along a pydantic error location to the nearest node: the
    key for an unknown key, the value when ``value`` (a bad value is pointed at itself)."""
    if node is None:
        return 1, 1
    best = node
    for i, part in enumerate(loc):
        child = _child(best, part, last=i == len(loc) - 1, value=value)
        if child is None:
            break
        best = child
    return best.start_mark.line + 1, best.start_mark.column + 1


def _child(node: yaml.Node, part: Any, *, last: bool, value: bool) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, item in node.value:
            if key.value == str(part):
                if last:
                    return item if value else key
                return item if isinstance(item, yaml.MappingNode | yaml.SequenceNode) else key
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
