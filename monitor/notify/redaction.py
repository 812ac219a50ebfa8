"""Secret redaction, apart from the channels: the log filter needs it in every command, and
the channels module imports Apprise, which alone costs a second at start-up."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.notify.channels import Channel

_SECRET_IN_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s?#&]*):(?P<pw>[^@/\s?#&]+)@"
)
SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:pass|password|pwd|token|secret|key|apikey|api_key|access_token|webhook)=)[^&\s]+"
)

# Secrets of the channels a worker is currently using; ``redact`` consults them, so that a
# log line emitted deep inside Apprise (in this thread) is cleaned by the log filter too.
_ACTIVE_SECRETS: ContextVar[frozenset[str]] = ContextVar(
    "monitor_active_secrets", default=frozenset()
)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove passwords and tokens from any text that may hold an Apprise URL or its parts."""
    known = set(secrets) if secrets is not None else set()
    known |= _ACTIVE_SECRETS.get()
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "****")
    text = _SECRET_IN_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:****@", text)
    return SECRET_PARAMS.sub(r"\1****", text)


@contextmanager
def secret_scope(channels: Iterable[Channel]) -> Iterator[None]:
    """While inside, ``redact`` (and so the log filter) also hides these channels' secrets."""
    merged = _ACTIVE_SECRETS.get().union(*(c.secrets for c in channels))
    token = _ACTIVE_SECRETS.set(merged)
    try:
        yield
    finally:
        _ACTIVE_SECRETS.reset(token)
