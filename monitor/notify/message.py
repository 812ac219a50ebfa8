"""What a channel receives: one alert, a group of alerts, a health report, or a test message.

Every message is rendered in three forms (plain text, Markdown for chat, HTML for email) from
the alert's own fields: the rule's title, summary and bodies, and each evidence quote with its
link. Feed text is untrusted: every string from an article (quote, outlet, title, data) is
escaped for the format it lands in, and every URL is percent-encoded so that no character of it
can end a link early; only http(s) URLs become links. Each alert section ends with the alert id
and the attempt number, so a receiver can de-duplicate and an operator can tell which attempt a
copy came from.
"""

from __future__ import annotations

import html
import re
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from monitor.events import AlertRaised, Evidence

GROUP_NAMESPACE = uuid.UUID("3f0b8c7e-29d4-4f6a-9a0e-5c1d7b2e8f41")
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
# Apprise's notify types (the colour or icon a chat shows, the "type" of a JSON webhook).
NOTIFY_TYPES = {"info": "info", "warning": "warning", "critical": "failure"}
PAYLOAD_VERSION = 1


class Message(BaseModel):
    """One message for one channel, in every format; ``key`` is stable across retries."""

    model_config = ConfigDict(frozen=True)

    key: str
    title: str
    text: str
    markdown: str
    html: str
    alert_ids: list[str]
    notify_type: str = "info"  # info, success, warning or failure
    # The alerts as data, for receivers that are programs (JSON webhooks): see ``payload_of``.
    payload: dict[str, Any] = {}

    def body(self, fmt: str) -> str:
        return {"markdown": self.markdown, "html": self.html}.get(fmt, self.text)

    def title_in(self, fmt: str) -> str:
        """The title escaped for ``fmt``: for targets that put it inside the body."""
        if fmt == "markdown":
            return _md(self.title)
        return html.escape(self.title) if fmt == "html" else self.title


class Section(BaseModel):
    """One alert's part of a message, with the attempt it is sent under."""

    alert: AlertRaised
    attempt: int


# Control characters and the invisible marks that reorder or hide text (bidi overrides,
# zero-width characters): a feed must not be able to make a line read differently than it is.
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|<>~&])")
# Renderers turn bare addresses into links (GFM "extended autolinks"); escaping the colon of
# "scheme://" and the dot of "www." keeps them text.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(:)(?=//)|(?<=\bwww)(\.)")
_LINK_SCHEMES = ("http", "https")
# What may stay as it is in each part of a URL; everything else is percent-encoded. Quotes,
# brackets, parentheses, angle brackets, backslashes, spaces and newlines never are.
_SAFE_PATH = "/-._~!$&+,;=:@%"
_SAFE_QUERY = _SAFE_PATH + "?"


def clean(text: object, *, one_line: bool = True) -> str:
    """Plain text safe to show: no control or invisible characters; one line unless asked."""
    value = _INVISIBLE.sub("", unicodedata.normalize("NFC", str(text)).replace("\t", " "))
    if one_line:
        return " ".join(value.split())
    return "\n".join(line.rstrip() for line in value.replace("\r\n", "\n").split("\n"))


def _md(text: object) -> str:
    """Escape Markdown so feed text cannot become a link, image, heading, list or HTML."""
    escaped = _MD_SPECIAL.sub(r"\\\1", clean(text))
    escaped = re.sub(r"^(\d+)\.", r"\1\\.", escaped)  # "1." would start a list
    return _AUTOLINK.sub(lambda m: "\\" + (m[1] or m[2]), escaped)


def safe_url(url: str) -> str:
    """``url`` percent-encoded: no character of it can close a Markdown link or an attribute."""
    url = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", clean(url).replace(" ", "%20"))
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = parts.netloc
        if host and not host.isascii():
            ascii_host = host.encode("idna").decode("ascii")
            netloc = re.sub(re.escape(host), ascii_host, netloc, count=1, flags=re.IGNORECASE)
    except (ValueError, UnicodeError):  # not a URL, or a host IDNA cannot encode
        return quote(url, safe=_SAFE_PATH)
    netloc = quote(netloc, safe="-._~!$&+,;=:@%[]")
    return urlunsplit(
        (
            quote(parts.scheme, safe="+-."),
            netloc,
            quote(parts.path, safe=_SAFE_PATH),
            quote(parts.query, safe=_SAFE_QUERY),
            quote(parts.fragment, safe=_SAFE_QUERY),
        )
    )


def linkable(url: str) -> bool:
    """Only web addresses become links; anything else (file:, javascript:...) stays text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in _LINK_SCHEMES and bool(parts.netloc)


def _md_link(label: str, url: str) -> str:
    if linkable(url):
        return f"[{_md(label)}](<{safe_url(url)}>)"
    return f"{_md(label)} ({_md(safe_url(url))})"


def _html_link(label: str, url: str) -> str:
    if linkable(url):
        return f'<a href="{html.escape(safe_url(url))}">{html.escape(clean(label))}</a>'
    return f"{html.escape(clean(label))} ({html.escape(safe_url(url))})"


def _when(ev: Evidence) -> str:
    return ev.published.date().isoformat() if isinstance(ev.published, datetime) else "undated"


def _footer(section: Section) -> str:
    a = section.alert
    return (
        f"alert {a.alert_id} · attempt {section.attempt} · rule {clean(a.rule)}"
        f" · severity {clean(a.severity)}"
    )


def _evidence_text(alert: AlertRaised) -> list[str]:
    lines = []
    for ev in alert.evidence:
        lines.append(f"> {clean(ev.quote)}")
        lines.append(f"  {clean(ev.outlet or 'source')}, {_when(ev)}: {safe_url(ev.url)}")
    return lines


def why(alert: AlertRaised) -> str:
    """The one line that says why the rule fired (recorded on the alert when it was raised)."""
    return clean(alert.explanation[0]) if alert.explanation else ""


def _text(section: Section) -> str:
    alert = section.alert
    lines = [clean(alert.summary), ""]
    if why(alert):
        lines += [f"Why: {why(alert)}", ""]
    body = clean(alert.body, one_line=False).strip()
    if body:
        lines += [body, ""]
    else:
        lines += [f"{clean(k)}: {clean(v)}" for k, v in alert.data.items()]
        lines.append("")
    if not body or not all(ev.url in body and ev.quote in body for ev in alert.evidence):
        lines += [*_evidence_text(alert), ""]
    lines.append(_footer(section))
    return "\n".join(lines)


def _markdown(section: Section) -> str:
    alert = section.alert
    lines = [_md(alert.summary), ""]
    if why(alert):
        lines += [f"_Why:_ {_md(why(alert))}", ""]
    lines += [f"- {_md(k)}: {_md(v)}" for k, v in alert.data.items()]
    if alert.data:
        lines.append("")
    for ev in alert.evidence:
        lines.append(f"> {_md(ev.quote)}")
        lines.append(f"> — {_md_link(ev.outlet or 'source', ev.url)}, {_when(ev)}")
        lines.append("")
    lines.append(f"`{_footer(section)}`")
    return "\n".join(lines)


def _html(section: Section) -> str:
    alert = section.alert

    def e(value: object) -> str:
        return html.escape(clean(value))

    parts = [f"<p>{e(alert.summary)}</p>"]
    if why(alert):
        parts.append(f"<p><i>Why:</i> {e(why(alert))}</p>")
    body = (alert.body_html or "").strip()  # rendered by the rule's autoescaped template
    if body:
        parts.append(body)
    elif alert.data:
        items = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in alert.data.items())
        parts.append(f"<ul>{items}</ul>")
    if not body or not all(html.escape(ev.url) in body for ev in alert.evidence):
        for ev in alert.evidence:
            parts.append(f"<blockquote>{e(ev.quote)}</blockquote>")
            parts.append(f"<p>{_html_link(ev.outlet or ev.url, ev.url)}, {e(_when(ev))}</p>")
    parts.append(f"<p><small>{e(_footer(section))}</small></p>")
    return "\n".join(parts)


def notify_type(alerts: Sequence[AlertRaised]) -> str:
    """Resolved notices are "success"; otherwise the highest severity's type."""
    if alerts and all(a.status == "resolved" for a in alerts):
        return "success"
    top = max(alerts, key=lambda a: SEVERITY_ORDER.get(a.severity, 1))
    return NOTIFY_TYPES.get(top.severity, "warning")


def alert_payload(section: Section, explain_url: str | None = None) -> dict[str, Any]:
    """One alert as data: the fields a program needs, feed text as plain JSON strings."""
    a = section.alert
    link = explain_url.replace("{id}", a.alert_id) if explain_url else None
    return {
        "id": a.alert_id,
        "rule": a.rule,
        "severity": a.severity,
        "status": a.status,
        "watch": a.watch,
        "title": a.title,
        "summary": a.summary,
        "why": why(a) or None,
        "data": a.data,
        "labels": a.labels,
        "evidence": [
            {
                "quote": ev.quote,
                "url": ev.url,
                "outlet": ev.outlet,
                "published": ev.published.isoformat() if ev.published else None,
                "event_id": ev.event_id,
            }
            for ev in a.evidence
        ],
        "explain": {"command": f"monitor alerts explain {a.alert_id}", "url": link},
        "attempt": section.attempt,
    }


def payload_of(
    sections: Sequence[Section], key: str, explain_url: str | None = None
) -> dict[str, Any]:
    """The structured part of a webhook body. One alert: its fields at the top level; always
    ``alerts``, the list of every alert in the message (a grouped channel sends several)."""
    alerts = [alert_payload(s, explain_url) for s in sections]
    # Apprise's own fields (version, title, message, type, attachments) stay Apprise's: the
    # top-level title is the message's, "[SEVERITY] title"; each alert's own is in "alerts".
    top = {k: v for k, v in alerts[0].items() if k != "title"} if len(alerts) == 1 else {}
    if len(alerts) > 1:
        top_alert = max(sections, key=lambda s: SEVERITY_ORDER.get(s.alert.severity, 1)).alert
        top = {"id": key, "severity": top_alert.severity}
    return {"monitor": PAYLOAD_VERSION, **top, "alerts": alerts}


def group_key(channel: str, alert_ids: Sequence[str]) -> str:
    """The same alerts grouped for the same channel always make the same message key."""
    if len(alert_ids) == 1:
        return alert_ids[0]
    return str(uuid.uuid5(GROUP_NAMESPACE, f"{channel}|{','.join(sorted(alert_ids))}"))


def render_group(
    sections: Sequence[Section], channel: str, explain_url: str | None = None
) -> Message:
    """One message listing each alert (each with its id and evidence); one alert: no list.

    ``explain_url`` (``[delivery] explain_url``, ``{id}`` replaced) links each alert to a page
    that explains it, in the structured payload."""
    alerts = [s.alert for s in sections]
    top = max(alerts, key=lambda a: SEVERITY_ORDER.get(a.severity, 1))
    ids = [a.alert_id for a in alerts]
    if len(sections) == 1:
        title = f"[{clean(top.severity).upper()}] {clean(top.title)}"
        text, markdown, body_html = _text(sections[0]), _markdown(sections[0]), _html(sections[0])
    else:
        title = (
            f"[{clean(top.severity).upper()}] {len(alerts)} alerts: {clean(alerts[0].title)}"
            " (and more)"
        )
        rule = "\n\n" + "-" * 60 + "\n\n"
        text = f"{len(alerts)} alerts\n\n" + rule.join(
            f"{i}. [{clean(s.alert.severity).upper()}] {clean(s.alert.title)}\n\n{_text(s)}"
            for i, s in enumerate(sections, start=1)
        )
        markdown = f"**{len(alerts)} alerts**\n\n" + "\n\n---\n\n".join(
            f"**{i}\\. \\[{_md(s.alert.severity.upper())}\\] {_md(s.alert.title)}**"
            f"\n\n{_markdown(s)}"
            for i, s in enumerate(sections, start=1)
        )
        body_html = f"<p><b>{len(alerts)} alerts</b></p>\n" + "\n<hr>\n".join(
            f"<h3>{i}. [{html.escape(clean(s.alert.severity).upper())}]"
            f" {html.escape(clean(s.alert.title))}</h3>"
            f"\n{_html(s)}"
            for i, s in enumerate(sections, start=1)
        )
    key = group_key(channel, ids)
    return Message(
        key=key,
        title=title,
        text=text,
        markdown=markdown,
        html=body_html,
        alert_ids=ids,
        notify_type=notify_type(alerts),
        payload=payload_of(sections, key, explain_url),
    )


def render_report(
    report_id: str,
    alert: AlertRaised | None,
    alert_id: str,
    channel: str,
    attempts: int,
    last_error: str | None,
    queued_at: datetime,
) -> Message:
    """The health channel's notice that one delivery was given up, and how to re-queue it."""
    what = clean(alert.title) if alert else f"alert {alert_id}"
    title = f"[monitor] delivery given up: {channel}: {what}"
    facts = [
        ("alert", alert_id),
        ("channel", channel),
        ("attempts", str(attempts)),
        ("queued at", queued_at.isoformat(timespec="seconds")),
        ("last error", clean(last_error or "-")),
    ]
    hint = f"re-queue with: monitor alerts retry {alert_id}"
    text = "\n".join([f"{k}: {v}" for k, v in facts] + ["", hint, "", f"report {report_id}"])
    markdown = "\n".join(
        [f"- **{k}**: {_md(v)}" for k, v in facts] + ["", f"`{hint}`", "", f"`report {report_id}`"]
    )
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    body_html = (
        f"<table>{rows}</table><p><code>{html.escape(hint)}</code></p>"
        f"<p><small>report {report_id}</small></p>"
    )
    return Message(
        key=report_id,
        title=title,
        text=text,
        markdown=markdown,
        html=body_html,
        alert_ids=[alert_id],
        notify_type="failure",
    )


def render_test(channel: str) -> Message:
    """``monitor notify test``: proves the path works without raising an alert."""
    key = str(uuid.uuid4())
    title = f"[monitor] test message for channel {channel}"
    text = f"This is a test message from monitor to channel {channel!r}.\n\ntest {key}"
    return Message(
        key=key,
        title=title,
        text=text,
        markdown="\n\n".join(_md(part) for part in text.split("\n\n")),
        html=f"<p>{html.escape(text)}</p>".replace("\n\n", "</p><p>"),
        alert_ids=[],
    )
