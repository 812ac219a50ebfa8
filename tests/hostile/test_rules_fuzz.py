"""Fuzzing the rule loader: whatever text or YAML structure a rule file holds, loading it
either gives rules or raises ``RuleError`` (file:line:column messages), never another
exception: a typo in one file must not crash ``rules check`` or a reload with a traceback."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.alerting.rules import RuleError, load_rule_file, load_rules
from tests.conftest import RULES

# Fuzzing runs long by design: with the crash loops in `make test-slow` (and in CI).
pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values a rule file really uses, so that generated files get past the first check
# and into the validators of conditions, templates, durations and rule types.
KEYS = [
    "id", "type", "event", "where", "severity", "watches", "dedup_key", "cooldown", "for",
    "confirm_outlets", "cancel_if", "cancel_same", "inhibit_key", "inhibit_for", "channels",
    "labels", "title", "summary", "body", "body_html", "value", "per", "series",
    "min_increase", "min_percent", "field", "key", "from", "to", "resolve", "resolve_to",
    "threshold", "window", "group_by", "min_outlets", "outlet_field", "per_report", "collect",
    "rules", "count", "status", "broker", "regex", "in", "not_in", "gt", "exists", "contains",
]  # fmt: skip
WORDS = [
    "match", "jump", "new_value", "transition", "frequency", "corroborated", "casualties",
    "ceasefire", "third_party", "downing", "diplomacy", "critical", "warning", "7d", "1h30m",
    "-3d", "0s", "{{ watch }}", "{{ data.current / 0 }}", "{% for %}", "{{", "[a-", ".*",
    "count", "side", "article.url", "watch", "", "~x", "id with spaces", "x" * 300,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=20),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=8),
    ),
    max_leaves=40,
)
small = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=6,
)
rule_like = st.fixed_dictionaries(
    {"id": st.sampled_from(["r", "x-1", "Bad Id", ""]), "type": st.sampled_from(WORDS[:7])},
    optional={k: small for k in KEYS if k not in ("id", "type")},
)


@contextmanager
def rule_file(text: str | bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rules-fuzz-") as tmp:
        path = Path(tmp) / "fuzz.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        yield path


def loads_or_says_why(text: str | bytes) -> None:
    with rule_file(text) as path:
        for load in (load_rule_file, lambda p: load_rules(p.parent).rules):
            try:
                load(path)
            except RuleError as exc:
                assert str(path) in str(exc) or "defined" in str(exc)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@FUZZ
@given(st.text(max_size=400))
def test_any_text_loads_or_raises_a_rule_error(text: str) -> None:
    loads_or_says_why(text)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_load_or_raise_a_rule_error(data: bytes) -> None:
    loads_or_says_why(data)


@FUZZ
@given(structures)
def test_any_yaml_structure_loads_or_raises_a_rule_error(data: Any) -> None:
    loads_or_says_why(dump(data))


@FUZZ
@given(st.one_of(rule_like, st.fixed_dictionaries({"rules": st.lists(rule_like, max_size=3)})))
def test_rule_shaped_files_load_or_raise_a_rule_error(data: dict[str, Any]) -> None:
    loads_or_says_why(dump(data))


@FUZZ
@given(st.data())
def test_shipped_rules_with_one_value_changed_load_or_raise_a_rule_error(
    data: st.DataObject,
) -> None:
    path = data.draw(st.sampled_from(sorted((RULES / "alerts").glob("*.yaml"))))
    rule = yaml.safe_load(path.read_text())
    key = data.draw(st.sampled_from(sorted(rule)))
    rule[key] = data.draw(structures)
    loads_or_says_why(dump(rule))


def test_yaml_tricks_are_refused_with_a_rule_error() -> None:
    """Python object tags, alias bombs, deep nesting and duplicate anchors."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    texts = [
        "!!python/object/apply:os.system ['true']\n",
        "id: x\ntype: match\nevent: !!python/name:os.system ''\n",
        bomb + "id: x\ntype: match\nevent: ceasefire\nlabels: *i\n",
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "id: x\ntype: match\nevent: ceasefire\nwhere: {count: {gt: 1e999}}\n",
        "id: x\ntype: match\nevent: ceasefire\ncooldown: 99999999999999999999d\n",
    ]
    for text in texts:
        loads_or_says_why(text)


def test_what_the_fuzzer_found_is_a_clear_error() -> None:
    """Inputs that once escaped as UnicodeDecodeError, TypeError, OverflowError or
    RecursionError: each is now one line naming the file."""
    found: list[str | bytes] = [
        b"\x80",
        "id: x\ntype: match\nevent: ceasefire\ncooldown: null\n",
        "id: x\ntype: match\nevent: ceasefire\ncooldown: 1e400\n",
        "id: x\ntype: match\nevent: ceasefire\nfor: [1d]\n",
        "[" * 5000 + "]" * 5000,
    ]
    for text in found:
        with rule_file(text) as path:
            try:
                load_rule_file(path)
            except RuleError as exc:
                assert str(exc).startswith(str(path))
            else:
                raise AssertionError(f"{text[:40]!r} was accepted")
