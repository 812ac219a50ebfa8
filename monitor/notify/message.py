"""What a channel receives: one alert, a group of alerts, a health report, or a test message.

Every message is rendered in three forms (plain text, Markdown for chat, HTML for email) from
the alert's own fields: the rule's title, summary and bodies, and each evidence quote with its
link. Feed text is untrusted: it is escaped for HTML and Markdown, never interpreted. Each
alert section ends with the alert id and the attempt number, so a receiver can de-duplicate
and an operator can tell which attempt a copy came from.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from monitor.events import AlertRaised, Evidence

GROUP_NAMESPACE = uuid.UUID("3f0b8c7e-29d4-4f6a-9a0e-5c1d7b2e8f41")
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


class Message(BaseModel):
    """One message for one channel, in every format; ``key`` is stable across retries."""

    model_config = ConfigDict(frozen=True)

    key: str
    title: str
    text: str
    markdown: str
    html: str
    alert_ids: list[str]

    def body(self, fmt: str) -> str:
        return {"markdown": self.markdown, "html": self.html}.get(fmt, self.text)


class Section(BaseModel):
    """One alert's part of a message, with the attempt it is sent under."""

    alert: AlertRaised
    attempt: int


def _md(text: str) -> str:
    """Escape Markdown so a quote from a feed cannot become a link, image or heading."""
    return re.sub(r"([\\`*_{}\[\]()#+\-!|<>~])", r"\\\1", text)


def _when(ev: Evidence) -> str:
    return ev.published.date().isoformat() if isinstance(ev.published, datetime) else "undated"


def _footer(section: Section) -> str:
    a = section.alert
    return f"alert {a.alert_id} · attempt {section.attempt} · rule {a.rule} · severity {a.severity}"


def _evidence_text(alert: AlertRaised) -> list[str]:
    lines = []
    for ev in alert.evidence:
        lines.append(f"> {ev.quote}")
        lines.append(f"  {ev.outlet or 'source'}, {_when(ev)}: {ev.url}")
    return lines


def _text(section: Section) -> str:
    alert = section.alert
    lines = [alert.summary, ""]
    body = alert.body.strip()
    if body:
        lines += [body, ""]
    else:
        lines += [f"{k}: {v}" for k, v in alert.data.items()]
        lines.append("")
    if not body or not all(ev.url in body and ev.quote in body for ev in alert.evidence):
        lines += [*_evidence_text(alert), ""]
    lines.append(_footer(section))
    return "\n".join(lines)


def _markdown(section: Section) -> str:
    alert = section.alert
    lines = [_md(alert.summary), ""]
    lines += [f"- {_md(str(k))}: {_md(str(v))}" for k, v in alert.data.items()]
    if alert.data:
        lines.append("")
    for ev in alert.evidence:
        lines.append(f"> {_md(ev.quote)}")
        lines.append(f"> — [{_md(ev.outlet or 'source')}](<{ev.url}>), {_when(ev)}")
        lines.append("")
    lines.append(f"`{_footer(section)}`")
    return "\n".join(lines)


def _html(section: Section) -> str:
    alert = section.alert
    e = html.escape
    parts = [f"<p>{e(alert.summary)}</p>"]
    body = (alert.body_html or "").strip()
    if body:
        parts.append(body)
    elif alert.data:
        items = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in alert.data.items())
        parts.append(f"<ul>{items}</ul>")
    if not body or not all(e(ev.url) in body for ev in alert.evidence):
        for ev in alert.evidence:
            parts.append(f"<blockquote>{e(ev.quote)}</blockquote>")
            parts.append(
                f'<p><a href="{e(ev.url)}">{e(ev.outlet or ev.url)}</a>, {e(_when(ev))}</p>'
            )
    parts.append(f"<p><small>{e(_footer(section))}</small></p>")
    return "\n".join(parts)


def group_key(channel: str, alert_ids: Sequence[str]) -> str:
    """The same alerts grouped for the same channel always make the same message key."""
    if len(alert_ids) == 1:
        return alert_ids[0]
    return str(uuid.uuid5(GROUP_NAMESPACE, f"{channel}|{','.join(sorted(alert_ids))}"))


def render_group(sections: Sequence[Section], channel: str) -> Message:
    """One message listing each alert (each with its id and evidence); one alert: no list."""
    alerts = [s.alert for s in sections]
    top = max(alerts, key=lambda a: SEVERITY_ORDER.get(a.severity, 1))
    ids = [a.alert_id for a in alerts]
    if len(sections) == 1:
        title = f"[{top.severity.upper()}] {top.title}"
        text, markdown, body_html = _text(sections[0]), _markdown(sections[0]), _html(sections[0])
    else:
        title = f"[{top.severity.upper()}] {len(alerts)} alerts: {alerts[0].title} (and more)"
        rule = "\n\n" + "-" * 60 + "\n\n"
        text = f"{len(alerts)} alerts\n\n" + rule.join(
            f"{i}. [{s.alert.severity.upper()}] {s.alert.title}\n\n{_text(s)}"
            for i, s in enumerate(sections, start=1)
        )
        markdown = f"**{len(alerts)} alerts**\n\n" + "\n\n---\n\n".join(
            f"**{i}. [{s.alert.severity.upper()}] {_md(s.alert.title)}**\n\n{_markdown(s)}"
            for i, s in enumerate(sections, start=1)
        )
        body_html = f"<p><b>{len(alerts)} alerts</b></p>\n" + "\n<hr>\n".join(
            f"<h3>{i}. [{html.escape(s.alert.severity.upper())}] {html.escape(s.alert.title)}</h3>"
            f"\n{_html(s)}"
            for i, s in enumerate(sections, start=1)
        )
    return Message(
        key=group_key(channel, ids),
        title=title,
        text=text,
        markdown=markdown,
        html=body_html,
        alert_ids=ids,
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
    what = alert.title if alert else f"alert {alert_id}"
    title = f"[monitor] delivery given up: {channel}: {what}"
    facts = [
        ("alert", alert_id),
        ("channel", channel),
        ("attempts", str(attempts)),
        ("queued at", queued_at.isoformat(timespec="seconds")),
        ("last error", last_error or "-"),
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
        markdown=_md(text),
        html=f"<p>{html.escape(text)}</p>".replace("\n\n", "</p><p>"),
        alert_ids=[],
    )
