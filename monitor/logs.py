"""Logging to stderr, plain or JSON lines (journald friendly), with secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from monitor.notify.redaction import redact


class RedactingFilter(logging.Filter):
    """Last line of defence: no Apprise password or token reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


# Libraries whose chatter stays at warning unless we are debugging.
QUIETENED = ("apscheduler", "httpx", "trafilatura", "htmldate", "apprise", "alembic")


def setup_logging(level: str = "INFO", fmt: str = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIETENED:
        logging.getLogger(name).setLevel(
            logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
        )
