"""Channels: named Apprise targets, and the one custom Apprise scheme we add, ``console://``.

Each channel holds exactly one Apprise URL, so that a failing target is retried on its own and
never causes a resend to the others. URLs carry secrets: only ``redact`` output may be logged.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import apprise
from apprise.decorators import notify
from pydantic import BaseModel, ConfigDict

from monitor.config import ChannelConfig


@notify(on="console", name="Console (standard error)")
def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """Print an alert to stderr, beside the logs, so stdout stays machine-readable."""
    print(f"\n=== {title}\n{body}\n", file=sys.stderr, flush=True)
    return True


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    tags: list[str]
    format: str = "text"

    def safe_url(self) -> str:
        return redact(self.url)


_SECRET_IN_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_SECRET_PARAMS = re.compile(r"(?i)([?&](?:pass|password|token|secret|key|apikey|access_token)=)[^&\s]+")


def redact(text: str) -> str:
    """Remove passwords and tokens from any text that may hold an Apprise URL."""
    text = _SECRET_IN_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:****@", text)
    return _SECRET_PARAMS.sub(r"\1****", text)


def build_channels(configs: list[ChannelConfig], extra_urls: list[str] = ()) -> tuple[list[Channel], list[str]]:
    """Channels whose URL resolves and that Apprise understands; plus one warning per skipped one."""
    channels: list[Channel] = []
    warnings: list[str] = []
    for cfg in configs:
        url = cfg.resolve_url()
        if not url:
            source = cfg.url_env and f"${cfg.url_env}" or str(cfg.url_file)
            warnings.append(f"channel {cfg.name!r} skipped: {source} is not set")
            continue
        channels.append(Channel(name=cfg.name, url=url, tags=cfg.tags, format=cfg.format))
    for i, url in enumerate(extra_urls, start=1):
        channels.append(Channel(name=f"notify-{i}", url=url, tags=["*"]))
    usable = []
    for channel in channels:
        if apprise.Apprise.instantiate(channel.url) is None:
            warnings.append(f"channel {channel.name!r} skipped: Apprise does not understand {channel.safe_url()}")
        else:
            usable.append(channel)
    return usable, warnings


def send(channel: Channel, title: str, body: str) -> None:
    """Send through Apprise; raise ``DeliveryError`` with a redacted reason when it fails."""
    target = apprise.Apprise()
    if not target.add(channel.url):
        raise DeliveryError(f"Apprise does not understand {channel.safe_url()}")
    body_format = {"html": apprise.NotifyFormat.HTML, "markdown": apprise.NotifyFormat.MARKDOWN}.get(
        channel.format, apprise.NotifyFormat.TEXT
    )
    with apprise.LogCapture(level=apprise.logging.WARNING) as log:
        ok = target.notify(body=body, title=title, body_format=body_format)
        captured = log.getvalue()
    if not ok:
        detail = " ".join(captured.split())[-300:] or "target refused the message"
        raise DeliveryError(redact(detail))


class DeliveryError(RuntimeError):
    """One target did not accept one message; the text is safe to log."""
