"""Plain templates (text and simple expressions) render without Jinja's machinery: the text
must be exactly Jinja's, and so must the failures, for every template and every value."""

from __future__ import annotations

import random
from typing import Any

import pytest

from monitor.alerting.pending import default_key
from monitor.alerting.rules import RuleFile
from monitor.alerting.templates import (
    DEFAULT_SUMMARY,
    DEFAULT_TITLES,
    RESOLVED_TITLE,
    compile_template,
    plain_template,
    render,
)

# Expressions a rule author writes, and some that only Jinja may answer.
EXPRESSIONS = [
    "watch",
    "actor",
    "count",
    "place",
    "missing_name",
    "range",
    "self",
    "data.current",
    "data.brokers",
    "data.items",
    "data.nothing",
    "data['current']",
    "data['items']",
    "rule.description or rule.id",
    "place or '-'",
    "count and actor",
    "not place",
    "span[0]",
    "span.1",
    "span[5]",
    "span[-1]",
    "article.url",
    "quote",
    "data.brokers | sort | join(',') or 'unbrokered'",
    "data.brokers | join(', ')",
    "data.brokers | length",
    "data.brokers | map('name') | join(', ')",
    "actor | name",
    "actor | lower",
    "count | default(0)",
    "' in ' ~ place if place else ''",
    "'x' ~ count ~ actor",
    "count + 1",
    "data.current | round(1)",
    "1",
    "'text'",
    "none",
    "true",
]
TEXTS = ["", ":", " ", "-", " rose to ", "\n"]


def templates(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    out = [f"{{{{ {e} }}}}" for e in EXPRESSIONS]
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 4)):
            parts.append(rng.choice(TEXTS))
            parts.append(f"{{{{ {rng.choice(EXPRESSIONS)} }}}}")
        out.append("".join(parts) + rng.choice(TEXTS))
    return out


def contexts() -> list[dict[str, Any]]:
    base: dict[str, Any] = {
        "watch": "nagorno-karabakh",
        "actor": "TUR",
        "count": 36,
        "place": "Stepanakert",
        "span": [4, 19],
        "quote": "Officials said {{ watch }} was hit; {% for x in range(9) %}x{% endfor %}",
        "article": {"url": "https://news.test/1", "outlet": None},
        "rule": {"id": "casualty-jump", "description": ""},
        "data": {"current": 963.25, "brokers": ["RUS", "FRA"], "items": "a field named items"},
        "status": "firing",
    }
    other = {
        **base,
        "actor": None,
        "count": 0,
        "place": None,
        "span": [],
        "data": {"current": "high", "brokers": [], "nothing": None},
        "rule": {"id": "r", "description": "Truce collapsed"},
    }
    odd = {**base, "data": ["not", "a", "dict"], "article": "text", "span": (1, 2)}
    mixed = {**base, "data": {"brokers": ["RUS", 3], "current": None}}
    return [base, other, odd, mixed, {"watch": "w"}]


def jinja(template: str, ctx: dict[str, Any]) -> str:
    """What Jinja itself renders (or a marker for its failure)."""
    try:
        return compile_template(template).render(**ctx).strip()
    except Exception:
        return "<error>"


def ours(template: str, ctx: dict[str, Any]) -> str:
    try:
        return render(template, ctx)
    except ValueError:
        return "<error>"


@pytest.mark.parametrize("template", templates(seed=14, n=300))
def test_a_plain_template_renders_what_jinja_renders(template: str) -> None:
    for ctx in contexts():
        assert ours(template, ctx) == jinja(template, ctx), (template, ctx)


def test_common_templates_take_the_plain_path() -> None:
    rules = RuleFile.model_validate(
        {
            "rules": [
                {"id": "a", "type": "match", "event": "downing"},
                {"id": "b", "type": "new_value", "event": "third_party", "value": "actor"},
                {"id": "c", "type": "jump", "event": "casualties", "min_increase": 5},
                {"id": "d", "type": "transition", "event": "ceasefire", "to": ["collapsed"]},
                {"id": "e", "type": "frequency", "event": "downing", "threshold": 2, "window": 60},
                {"id": "f", "type": "corroborated", "event": "ceasefire"},
            ]
        }
    ).rules
    plain = [*(default_key(r) for r in rules), *DEFAULT_TITLES.values(), RESOLVED_TITLE]
    plain += [DEFAULT_SUMMARY, "{{ watch }}:{{ data.brokers | sort | join(',') or 'none' }}"]
    for template in plain:
        assert plain_template(template) is not None, template
    for template in (
        "{% for e in evidence %}{{ e.quote }}{% endfor %}",  # a loop: Jinja's
        "{{ data.items }}",  # the dict method, in Jinja
        "{{ brokers | map('name') | join(',') }}",  # a filter that takes the context
        "{{ count + 1 }}",
    ):
        assert plain_template(template) is None, template


def test_feed_text_that_looks_like_a_template_stays_text() -> None:
    ctx = contexts()[0]
    assert render("{{ quote }}", ctx) == ctx["quote"]
    assert render("{{ watch }}: {{ quote }}", ctx) == f"nagorno-karabakh: {ctx['quote']}"
