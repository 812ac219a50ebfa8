"""Which rules a fact can concern, found without asking every rule.

A rule names the kind of fact it reads (``event``), often the watches it is scoped to, and
often equality filters on categorical fields (``status: collapsed``, ``kind: {in: [arms]}``).
These are static selectors: whether a fact passes them depends on a few of its field values
only. The index groups rules by fact type and, per combination of those values, remembers
the rules whose selectors pass, in evaluation order; so the work per fact grows with the
rules that could match it, not with the size of the rule set.

Values are reduced to what the rules name (a watch or status no rule names is ``OTHER``), so
the combinations are bounded by the rule set, whatever the log holds. A rule with a
``cancel_if`` filter must see facts its ``where`` rejects (they may cancel its holds): only
its watches and event type select for it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.alerting.pending import Compiled
from monitor.alerting.rules import Condition
from monitor.events import FactBase, FactReported

# Condition tests that say "the value is one of these": a value no rule names fails them.
_SELECTING = frozenset({"equals", "in_"})
OTHER = object()  # a value no rule's selector names
_CACHE_LIMIT = 4096  # combinations remembered per fact type (bounded anyway; a safety net)


def _selectors(c: Compiled) -> dict[str, Condition]:
    """The rule's ``where`` conditions the index may decide: top-level fields tested only
    for equality or membership, on a rule without ``cancel_if``."""
    if c.rule.cancel_if:
        return {}
    return {
        name: cond
        for name, cond in c.rule.where.items()
        if "." not in name and cond.model_fields_set and cond.model_fields_set <= _SELECTING
    }


def _named(cond: Condition) -> set[Hashable]:
    values: set[Hashable] = set()
    if "equals" in cond.model_fields_set:
        values.add(cond.equals)
    if "in_" in cond.model_fields_set:
        values.update(cond.in_ or ())
    return values


def _value(data: FactReported, fact: FactBase, name: str) -> Any:
    """A top-level field as rules see it (``fact_context``), read off the models without
    building the whole context: selectors name scalars, which the models hold as such."""
    if name == "watch":
        return data.watch
    if name == "outlet":
        return data.article.outlet
    if name == "article":
        return OTHER  # the article as a whole is a mapping: no selector names one
    return getattr(fact, name, None)


def _known(value: Any, named: set[Any]) -> Any:
    """The value when some rule names it, else ``OTHER``."""
    try:
        return value if value in named else OTHER
    except TypeError:  # unhashable (a list): no selector names one
        return OTHER


@dataclass
class _TypeIndex:
    """The rules on one fact type, and the lookups that select among them."""

    rules: list[Compiled]
    fields: tuple[str, ...]  # selector fields, in a fixed order
    named: dict[str, set[Hashable]]  # per field: the values some rule names
    watches: set[Any]  # watches some rule is scoped to
    selectors: list[dict[str, Condition]]
    cache: dict[tuple[Any, ...], tuple[Compiled, ...]] = field(default_factory=dict)
    # The same, by the fact's own values (before they are reduced to what rules name): most
    # facts repeat a combination seen before, and skip the reduction.
    by_values: dict[tuple[Any, ...], tuple[Compiled, ...]] = field(default_factory=dict)

    def key(self, data: FactReported) -> tuple[Any, ...]:
        named, fact = self.named, data.fact
        return (
            _known(data.watch, self.watches),
            *(_known(_value(data, fact, name), named[name]) for name in self.fields),
        )

    def lookup(self, data: FactReported) -> tuple[Compiled, ...]:
        fact = data.fact
        values = (data.watch, *[_value(data, fact, name) for name in self.fields])
        try:
            found = self.by_values.get(values)
        except TypeError:  # an unhashable value (a list): no selector names one
            return self.select(self.key(data))
        if found is None:
            if len(self.by_values) >= _CACHE_LIMIT:
                self.by_values.clear()
            found = self.by_values[values] = self.select(self.key(data))
        return found

    def select(self, key: tuple[Any, ...]) -> tuple[Compiled, ...]:
        found = self.cache.get(key)
        if found is None:
            if len(self.cache) >= _CACHE_LIMIT:
                self.cache.clear()
            found = self.cache[key] = tuple(
                c
                for c, sel in zip(self.rules, self.selectors, strict=True)
                if self._passes(c, sel, key)
            )
        return found

    def _passes(self, c: Compiled, selectors: dict[str, Condition], key: tuple[Any, ...]) -> bool:
        watch = key[0]
        if c.rule.watches is not None and (watch is OTHER or watch not in c.rule.watches):
            return False
        for name, cond in selectors.items():
            value = key[1 + self.fields.index(name)]
            if value is OTHER or not cond.test(value):
                return False
        return True


class RuleIndex:
    """Compiled rules by fact type and static selectors, in evaluation order."""

    def __init__(self, compiled: Sequence[Compiled]) -> None:
        by_type: dict[str, list[Compiled]] = {}
        for c in compiled:
            by_type.setdefault(c.rule.event, []).append(c)
        self.by_type: dict[str, tuple[Compiled, ...]] = {t: tuple(r) for t, r in by_type.items()}
        self._types: dict[str, _TypeIndex] = {}
        for fact_type, rules in by_type.items():
            selectors = [_selectors(c) for c in rules]
            for c, sel in zip(rules, selectors, strict=True):
                c.unselected = [check for check in c.where if check[0] not in sel]
            named: dict[str, set[Hashable]] = {}
            for sel in selectors:
                for name, cond in sel.items():
                    named.setdefault(name, set()).update(_named(cond))
            watches = {w for c in rules for w in c.rule.watches or ()}
            self._types[fact_type] = _TypeIndex(
                rules, tuple(sorted(named)), named, watches, selectors
            )

    def candidates(self, data: FactReported) -> tuple[Compiled, ...]:
        """The rules on this fact's type whose static selectors it passes; the others would
        reject it before looking at anything else."""
        index = self._types.get(data.fact.type)
        return () if index is None else index.lookup(data)
