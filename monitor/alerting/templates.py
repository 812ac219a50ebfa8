"""Alert text from templates: rule authors write Jinja2, feed text is only ever a variable.

Templates come from rule files (trusted by the operator) and run in Jinja2's sandbox, so even
a careless template cannot reach Python internals; quotes from articles are passed as values,
never compiled. HTML output is autoescaped.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TITLES = {
    "match": "{{ rule.id }}: {{ fact.type }} in {{ watch }}",
    "new_value": "{{ watch }}: new {{ rule.value }} {{ data.value }}",
    "jump": "{{ watch }}: {{ data.series }} rose from {{ data.previous }} to {{ data.current }}",
}

DEFAULT_SUMMARY = '{{ quote }} ({{ outlet or url }})'


@cache
def _env(html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=html, undefined=StrictUndefined, trim_blocks=True)


def render(template: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Render a trusted template against untrusted values; errors name the template."""
    try:
        return _env(html).from_string(template).render(**context).strip()
    except TemplateError as exc:
        raise ValueError(f"template {template!r}: {exc}") from exc
