"""Alert text from templates: rule authors write Jinja2, feed text is only ever a variable.

Templates come from rule files (trusted by the operator) and run in Jinja2's sandbox, so even
a careless template cannot reach Python internals; quotes from articles are passed as values,
never compiled. HTML bodies are autoescaped. Every rule type has default templates, so a rule
file needs none.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
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


@lru_cache(maxsize=4096)
def _compiled(template: str, html: bool) -> tuple[Template, dict[str, Any]]:
    """The template and its globals as a plain dict, made once: ``Template.render`` merges
    the globals (a ``ChainMap``) into every render's context, most of a short render's cost."""
    compiled = compile_template(template, html=html)
    return compiled, dict(compiled.globals)


def _render_jinja(template: str, context: dict[str, Any], html: bool) -> str:
    """``Template.render(**context)``, with the globals merged from a dict made once: the
    same context (globals, then the values over them), the same code, the same errors."""
    compiled, names = _compiled(template, html)
    env = compiled.environment
    ctx = env.context_class(env, {**names, **context}, compiled.name, compiled.blocks, names)
    try:
        return env.concat(compiled.root_render_func(ctx))
    except Exception:
        env.handle_exception()


@lru_cache(maxsize=4096)
def reads(template: str, *, html: bool = False) -> frozenset[str]:
    """The names a template looks up in its context (Jinja's own analysis of the code it
    compiles to): a context may leave out what no template reads."""
    try:
        return frozenset(meta.find_undeclared_variables(template_env(html).parse(template)))
    except TemplateError:
        return frozenset()


def render(template: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Render a trusted template against untrusted values; errors name the template.

    A template that parses can still fail on the values it meets (``1000 / (count - 100)``
    with a count of 100, a ``range`` past the sandbox's limit): every such error comes back
    as ``ValueError`` too, so callers fall back to a default text instead of losing the alert.

    A plain text template (``plain_template``) is rendered without Jinja's machinery, with
    the same result; whenever it meets a value it cannot decide on, Jinja renders.
    """
    plain = None if html else plain_template(template)
    if plain is not None:
        try:
            return plain(context).strip()
        except _Undecided:
            pass
    try:
        return _render_jinja(template, context, html).strip()
    except TemplateError as exc:
        raise ValueError(f"template {template!r}: {exc}") from exc
    except Exception as exc:  # arithmetic, overflow, type errors raised while rendering
        raise ValueError(f"template {template!r}: {type(exc).__name__}: {exc}") from exc


# --- plain templates: the same text without Jinja's per-render machinery ---------------------
#
# Most templates are text and field references (``{{ watch }}:{{ data.current }}``, perhaps an
# ``or``, a ``~`` or a filter), rendered for every alert candidate: a dedup key, a title. For
# those, ``plain_template`` turns the parsed tree into a few closures that do what Jinja's
# compiled code does for the same nodes: names from the context, ``a.b`` and ``a[0]`` on the
# dicts and lists the context holds (never an attribute of a Python object), the environment's
# own filters, ``str`` of each output. Whatever is less certain (a name the context lacks, a
# key a dict lacks, a dict method's name, any other type or node) raises ``_Undecided`` and
# the template goes to Jinja, which renders it, or fails, exactly as before. Values are only
# ever data here too: nothing from a feed is parsed or compiled.

Value = Callable[[dict[str, Any]], Any]
_DICT_NAMES = frozenset(dir(dict))  # ``{{ data.items }}`` is the method in Jinja: not ours
_SPECIAL_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs", "super"})


class _Undecided(Exception):
    """The plain path cannot tell what Jinja would do with these values: Jinja renders."""


class _NotPlain(Exception):
    """The template uses something the plain path does not do."""


@lru_cache(maxsize=4096)
def plain_template(template: str) -> Callable[[dict[str, Any]], str] | None:
    """A renderer for a text template made of text and simple expressions; None for any
    other (it then always renders through Jinja)."""
    env = template_env(False)
    try:
        tree = env.parse(template)
        if not all(isinstance(node, nodes.Output) for node in tree.body):
            return None
        parts: list[str | Value] = []
        for output in tree.body:
            assert isinstance(output, nodes.Output)
            for node in output.nodes:
                if isinstance(node, nodes.TemplateData):
                    parts.append(node.data)
                elif isinstance(node, nodes.Const):
                    parts.append(str(node.value))
                else:
                    parts.append(_expression(env, node))
    except (TemplateError, _NotPlain):
        return None

    def render_plain(context: dict[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else str(p(context)) for p in parts)

    return render_plain


def _expression(env: SandboxedEnvironment, node: nodes.Node) -> Value:
    """One expression node as a closure over the context, as Jinja's code generator would
    compile it (``str`` and ``or`` of Python values, filters called with their pass
    argument)."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str | int | float | bool):
        const = node.value
        return lambda _ctx: const
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in _SPECIAL_NAMES:
        name = node.name

        def lookup(ctx: dict[str, Any]) -> Any:
            if name in ctx:
                return ctx[name]
            raise _Undecided  # a global or undefined

        return lookup
    if isinstance(node, nodes.Getattr) and node.attr not in _DICT_NAMES:
        return _item(_expression(env, node.node), node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        key = node.arg.value
        if isinstance(key, str) and key not in _DICT_NAMES:
            return _item(_expression(env, node.node), key)
        if isinstance(key, int) and not isinstance(key, bool):
            return _index(_expression(env, node.node), key)
        raise _NotPlain
    if isinstance(node, nodes.Or):
        left, right = _expression(env, node.left), _expression(env, node.right)
        return lambda ctx: left(ctx) or right(ctx)
    if isinstance(node, nodes.And):
        left, right = _expression(env, node.left), _expression(env, node.right)
        return lambda ctx: left(ctx) and right(ctx)
    if isinstance(node, nodes.Not):
        inner = _expression(env, node.node)
        return lambda ctx: not inner(ctx)
    if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
        test, yes, no = (_expression(env, n) for n in (node.test, node.expr1, node.expr2))
        return lambda ctx: yes(ctx) if test(ctx) else no(ctx)
    if isinstance(node, nodes.Concat):
        items = [_expression(env, n) for n in node.nodes]
        return lambda ctx: "".join([str(item(ctx)) for item in items])
    if isinstance(node, nodes.Filter) and node.node is not None:
        return _filter(env, node)
    raise _NotPlain


def _item(of: Value, key: str) -> Value:
    """``a.b`` or ``a['b']`` on a dict that has the key: what the sandbox returns too."""

    def item(ctx: dict[str, Any]) -> Any:
        obj = of(ctx)
        if type(obj) is dict and key in obj:
            return obj[key]
        raise _Undecided

    return item


def _index(of: Value, index: int) -> Value:
    """``a[0]`` on a list or tuple long enough."""

    def item(ctx: dict[str, Any]) -> Any:
        obj = of(ctx)
        if type(obj) in (list, tuple) and -len(obj) <= index < len(obj):
            return obj[index]
        raise _Undecided

    return item


def _filter(env: SandboxedEnvironment, node: nodes.Filter) -> Value:
    """A filter of the environment with constant arguments, called as Jinja's compiled code
    calls it: with the environment or the evaluation context first when it asks for one."""
    func = env.filters.get(node.name)
    if func is None or node.dyn_args is not None or node.dyn_kwargs is not None:
        raise _NotPlain
    args = [a.value for a in node.args if isinstance(a, nodes.Const)]
    kwargs = {str(k.key): k.value.value for k in node.kwargs if isinstance(k.value, nodes.Const)}
    if len(args) != len(node.args) or len(kwargs) != len(node.kwargs) or node.node is None:
        raise _NotPlain
    pass_arg = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    if pass_arg == "environment":
        first: tuple[Any, ...] = (env,)
    elif pass_arg == "eval_context":
        first = (nodes.EvalContext(env),)
    elif pass_arg is None:
        first = ()
    else:  # the template context: not ours to build
        raise _NotPlain
    inner = _expression(env, node.node)

    def call(ctx: dict[str, Any]) -> Any:
        value = inner(ctx)
        try:
            return func(*first, value, *args, **kwargs)
        except Exception as exc:  # Jinja raises it, and says it the way render() reports
            raise _Undecided from exc

    return call
