"""Channels: named Apprise targets, the ``console://`` scheme we add, and secret redaction.

Each channel holds exactly one Apprise URL, so that a failing target is retried on its own and
never causes a resend to the others. URLs carry secrets (passwords, tokens, webhook keys in the
path): only ``redact`` output may be logged, stored or printed. Which parts of a URL are secret
is decided by the Apprise plugin itself: whatever its privacy rendering of the URL hides.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from apprise.decorators import notify
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON
from apprise.plugins.custom_xml import NotifyXML
from pydantic import BaseModel, ConfigDict, Field

from monitor.config import ChannelConfig, RateLimit
from monitor.notify.message import Message
from monitor.notify.redaction import SECRET_PARAMS, redact, secret_scope

Format = Literal["text", "markdown", "html"]


@notify(on="console", name="Console (standard error)")
def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """Print an alert to stderr, beside the logs, so stdout stays machine-readable."""
    print(f"\n=== {title}\n{body}\n", file=sys.stderr, flush=True)
    return True


class Channel(BaseModel):
    """A resolved channel: the config's settings with the URL read from its secret source."""

    model_config = ConfigDict(frozen=True, ignored_types=(cached_property,))

    name: str
    url: str = Field(repr=False)  # holds secrets: never in a repr, a log line or an error
    tags: list[str]
    format: Format = "text"
    rate_limit: RateLimit | None = None
    group_wait: timedelta = timedelta(0)
    group_interval: timedelta = timedelta(0)
    health: bool = False

    @property
    def grouped(self) -> bool:
        return self.group_wait > timedelta(0) or self.group_interval > timedelta(0)

    @cached_property
    def secrets(self) -> frozenset[str]:
        return url_secrets(self.url)

    def safe_url(self) -> str:
        return redact(self.url, self.secrets)


# --- which parts of a URL are secret (the redacting: monitor/notify/redaction.py) ----------

_SPLIT = re.compile(r"[/,;:+@\s]+")
_SPLIT_ALL = re.compile(r"[/,;:+@\s?&=#]+")
# Query keys whose values Apprise's privacy URL may drop although they are not secret.
_PLAIN_KEYS = frozenset(
    {"mode", "format", "overflow", "smtp", "from", "to", "cc", "bcc", "name", "reply"}
    | {"priority", "method", "image", "verify", "cto", "rto", "tz", "lang", "user"}
)
_MIN_SECRET = 4  # shorter fragments are too common in ordinary text to replace


def url_secrets(url: str) -> frozenset[str]:
    """Every fragment of ``url`` that Apprise's privacy rendering hides (password, tokens)."""
    parts = urlsplit(url)
    found: set[str] = set()
    candidates: set[str] = set()
    try:
        if parts.password:
            found.update({parts.password, unquote(parts.password)})
    except ValueError:
        pass
    candidates.update(_fragments(parts.netloc))
    candidates.update(_fragments(parts.path))
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        if key.lower().lstrip("+-:") not in _PLAIN_KEYS:
            candidates.update(_fragments(value))
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    public = plugin.url(privacy=True) if plugin is not None else ""
    visible = set(_fragments(public, _SPLIT_ALL))
    if plugin is None:  # no plugin to ask: only what is conventionally secret
        candidates = {v for k, v in parse_qsl(parts.query) if SECRET_PARAMS.search(f"?{k}=x")}
    found |= {c for c in candidates if c not in visible and len(c) >= _MIN_SECRET}
    return frozenset(found - {""})


def _fragments(text: str, split: re.Pattern[str] | None = None) -> Iterator[str]:
    for raw in (split or _SPLIT).split(text):
        for piece in {raw, unquote(raw)}:
            if piece:
                yield piece


# --- building and sending ------------------------------------------------------------------


def build_channels(
    configs: Sequence[ChannelConfig], extra_urls: Sequence[str] = ()
) -> tuple[list[Channel], list[str]]:
    """Channels whose URL resolves and that Apprise understands; plus one warning per skipped one.

    ``extra_urls`` (``--notify``) become channels ``notify-1``, ``notify-2``... that take
    every alert.
    """
    channels: list[Channel] = []
    warnings: list[str] = []
    for cfg in configs:
        url = cfg.resolve_url()
        if not url:
            source = (cfg.url_env and f"${cfg.url_env}") or str(cfg.url_file)
            warnings.append(f"channel {cfg.name!r} skipped: {source} is not set")
            continue
        channels.append(
            Channel(
                name=cfg.name,
                url=url,
                tags=cfg.tags,
                format=cfg.format,
                rate_limit=cfg.rate_limit,
                group_wait=cfg.group_wait,
                group_interval=cfg.group_interval,
                health=cfg.health,
            )
        )
    for i, url in enumerate(extra_urls, start=1):
        channels.append(Channel(name=f"notify-{i}", url=url, tags=["*"]))
    usable = []
    for channel in channels:
        if apprise.Apprise.instantiate(channel.url, suppress_exceptions=True) is None:
            problem = f"Apprise does not understand {channel.safe_url()}"
            warnings.append(f"channel {channel.name!r} skipped: {problem}")
        else:
            usable.append(channel)
    return usable, warnings


_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}


def send(channel: Channel, message: Message) -> int:
    """Send one message to one channel; returns the latency in ms.

    Raises ``DeliveryError`` with a redacted reason when the target does not accept it.
    Email (``mailto://``, ``mailtos://``) goes through ``AlertEmail`` for a text and an HTML
    part and a Message-ID derived from the alert id; every other scheme through its plugin.
    """
    from monitor.notify.email import email_plugin

    started = time.monotonic()
    with secret_scope([channel]):
        plugin: apprise.NotifyBase | None = email_plugin(channel.url, message)
        if plugin is None:
            plugin = apprise.Apprise.instantiate(channel.url, suppress_exceptions=True)
        if plugin is None:
            raise DeliveryError(f"Apprise does not understand {channel.safe_url()}")
        body = message.body(channel.format)
        # A target without a title field gets it as the body's first line, in the body's format.
        title = message.title_in(channel.format) if plugin.title_maxlen <= 0 else message.title
        if message.payload and isinstance(plugin, NotifyJSON):
            # Generic JSON webhooks also get the alerts as data; the URL's own ":key=value"
            # payload settings still win.
            plugin.payload_extras = {**message.payload, **plugin.payload_extras}
        elif message.payload and isinstance(plugin, NotifyForm | NotifyXML):
            # Form fields and XML elements hold text: scalars as they are, the rest as JSON.
            flat = flat_payload(message.payload)
            plugin.payload_extras = {**flat, **plugin.payload_extras}
        with apprise.LogCapture(level=logging.WARNING) as log:
            try:
                ok = plugin.notify(
                    body=body,
                    title=title,
                    body_format=_FORMATS[channel.format],
                    notify_type=apprise.NotifyType(message.notify_type),
                )
            except Exception as exc:  # a broken plugin must not take the worker down
                raise DeliveryError(
                    redact(f"{type(exc).__name__}: {exc}", channel.secrets)
                ) from None
            captured = log.getvalue()
    if not ok:
        lines = [" ".join(line.split(" - ", 2)[-1:]) for line in captured.splitlines() if line]
        detail = " | ".join(dict.fromkeys(lines))[-400:] or "target refused the message"
        raise DeliveryError(redact(detail, channel.secrets))
    return int((time.monotonic() - started) * 1000)


def flat_payload(payload: dict[str, Any]) -> dict[str, str]:
    """The structured payload as text fields, for receivers that take no nested data."""
    flat: dict[str, str] = {}
    for key, value in payload.items():
        if value is None:
            continue
        if isinstance(value, str):
            flat[key] = value
        elif isinstance(value, bool | int | float):
            flat[key] = json.dumps(value)
        else:
            flat[key] = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return flat


class DeliveryError(RuntimeError):
    """One target did not accept one message; the text is safe to log."""
