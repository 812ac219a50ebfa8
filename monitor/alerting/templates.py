"""Alert text from templates: rule authors write Jinja2, feed text is only ever a variable.

Templates come from rule files (trusted by the operator) and run in Jinja2's sandbox, so even
a careless template cannot reach Python internals; quotes from articles are passed as values,
never compiled. HTML bodies are autoescaped. Every rule type has default templates, so a rule
file needs none.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TITLES = {
    "match": "{{ watch }}: {{ rule.description or rule.id }}",
    "new_value": "{{ watch }}: new {{ rule.value }} {{ data.value }}",
    "jump": "{{ watch }}: {{ data.series }} rose from {{ data.previous }} to {{ data.current }}",
    "transition": (
        "{{ watch }}: {{ rule.field }} {{ data.previous or 'unknown' }} -> {{ data.current }}"
    ),
    "frequency": "{{ watch }}: {{ data.count }} {{ rule.event }} reports within {{ data.window }}",
    "corroborated": "{{ watch }}: {{ rule.event }} reported by {{ data.outlets | length }} outlets",
}
RESOLVED_TITLE = "RESOLVED {{ watch }}: {{ rule.field }} back to {{ data.current }}"

DEFAULT_SUMMARY = "{{ quote }} ({{ outlet or article.url }})"

# A plain-text body: evidence quotes, links, and the figures when the rule has them.
DEFAULT_BODY = """\
{% if data.previous is defined and data.current is defined %}
{{ data.previous }} -> {{ data.current }}
{%- if data.increase is defined %} (+{{ data.increase }}
{%- if data.percent is not none %}, {{ data.percent }}%{% endif %}){% endif %}

{% endif %}
{% for e in evidence %}
> {{ e.quote }}
  {{ e.outlet or '' }} {{ e.url }}{% if e.published %} ({{ e.published }}){% endif %}

{% endfor %}
rule {{ rule.id }} ({{ rule.type }}, {{ rule.severity }})"""

DEFAULT_BODY_HTML = """\
{% if data.previous is defined and data.current is defined %}
<p><b>{{ data.previous }}</b> &rarr; <b>{{ data.current }}</b></p>
{% endif %}
{% for e in evidence %}
<blockquote>{{ e.quote }}</blockquote>
<p><a href="{{ e.url }}">{{ e.outlet or e.url }}</a>
{%- if e.published %} {{ e.published }}{% endif %}</p>
{% endfor %}
<p><small>rule {{ rule.id }} ({{ rule.type }}, {{ rule.severity }})</small></p>"""


def actor_name(code: object) -> str:
    """The ``name`` filter: ``{{ actor | name }}`` -> "Saudi Arabia" for SAU; a code the
    gazetteer does not know (a watch's own party) and empty values stay as they are."""
    from monitor.extract.gazetteer import display_name

    if not isinstance(code, str) or not code:
        return "" if code is None else str(code)
    return display_name(code) or code


@cache
def template_env(html: bool) -> SandboxedEnvironment:
    """The sandboxed environment templates render in (``html``: autoescaped)."""
    env = SandboxedEnvironment(autoescape=html, undefined=StrictUndefined, trim_blocks=True)
    env.filters["name"] = actor_name
    return env


@lru_cache(maxsize=4096)
def compile_template(template: str, *, html: bool = False) -> Template:
    """Parse once: the same few templates render for every alert."""
    return template_env(html).from_string(template)


def render(template: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Render a trusted template against untrusted values; errors name the template.

    A template that parses can still fail on the values it meets (``1000 / (count - 100)``
    with a count of 100, a ``range`` past the sandbox's limit): every such error comes back
    as ``ValueError`` too, so callers fall back to a default text instead of losing the alert.
    """
    try:
        return compile_template(template, html=html).render(**context).strip()
    except TemplateError as exc:
        raise ValueError(f"template {template!r}: {exc}") from exc
    except Exception as exc:  # arithmetic, overflow, type errors raised while rendering
        raise ValueError(f"template {template!r}: {type(exc).__name__}: {exc}") from exc
