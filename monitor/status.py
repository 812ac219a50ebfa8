"""What `monitor status` says, and the daemon's /healthz and the dashboard with it: the log head,
lag per consumer, the outbox by status and every feed's health, read from the shared database;
and the small client that asks a running daemon.

The reads are fixed SQL through SQLAlchemy Core (``EventStore.read_connection``), not the ORM:
`monitor status` is a command an operator types, and importing SQLModel and the table classes
would cost it more than everything else it does. Column names follow ``monitor.store.tables``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.store.log import read_time

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from monitor.config import FeedConfig
    from monitor.store.log import EventStore

HEALTH = (
    "SELECT feed, url, last_success, last_error, consecutive_failures, polls, last_items "
    "FROM proj_feed_health"
)
LEASES = (
    "SELECT feed, owner, next_due, last_polled_at, last_success_at, last_new_at, last_items, "
    "consecutive_failures, failing_since, last_error, last_error_kind, polled_by, health_alert "
    "FROM feed_leases"
)


def checkpoints(connection: Connection) -> dict[str, int]:
    """Each consumer's position in the log (projections, rule evaluation, delivery)."""
    rows = connection.exec_driver_sql("SELECT name, seq FROM checkpoints")
    return {name: int(seq) for name, seq in rows}


def outbox_counts(connection: Connection) -> dict[str, int]:
    """Outbox rows by status (pending, sent, failed, ...)."""
    rows = connection.exec_driver_sql("SELECT status, COUNT(*) FROM outbox GROUP BY status")
    return {status: int(n) for status, n in rows}


def _iso(value: str | datetime | None) -> str | None:
    when = read_time(value)
    return when.isoformat() if when else None


def status_snapshot(store: EventStore, feeds: Sequence[FeedConfig] = ()) -> dict[str, Any]:
    """Log head, lag per consumer, outbox by status, and every feed's health, as plain data,
    all read in one transaction."""
    with store.read_connection() as connection:
        head = store.head(connection)
        behind = checkpoints(connection)
        outbox = outbox_counts(connection)
        health = {h.feed: h for h in connection.exec_driver_sql(HEALTH)}
        leases = {lease.feed: lease for lease in connection.exec_driver_sql(LEASES)}
    names = [f.name for f in feeds]
    names += sorted((set(health) | set(leases)) - set(names))
    rows = []
    for name in names:
        h, lease = health.get(name), leases.get(name)
        rows.append(
            {
                "feed": name,
                "url": h.url if h else next((f.url for f in feeds if f.name == name), None),
                "last_poll": _iso(lease.last_polled_at) if lease else None,
                "last_success": _iso(lease.last_success_at if lease else None)
                or _iso(h.last_success if h else None),
                "last_new": _iso(lease.last_new_at) if lease else None,
                "next_due": _iso(lease.next_due) if lease else None,
                "polled_by": lease.polled_by if lease else None,
                "leased_by": lease.owner if lease and lease.owner else None,
                "consecutive_failures": lease.consecutive_failures
                if lease
                else (h.consecutive_failures if h else 0),
                "failing_since": _iso(lease.failing_since) if lease else None,
                "last_error": (lease.last_error if lease else None)
                or (h.last_error if h else None),
                "last_error_kind": lease.last_error_kind if lease else None,
                "last_items": lease.last_items if lease else (h.last_items if h else 0),
                "changes": h.polls if h else 0,
                "open_health_alert": lease.health_alert if lease else None,
            }
        )
    polls = [r["last_poll"] for r in rows if r["last_poll"]]
    return {
        "head": head,
        "lag": {name: head - seq for name, seq in sorted(behind.items())},
        "outbox": outbox,
        "outbox_pending": int(outbox.get("pending", 0)),
        "last_poll": max(polls) if polls else None,
        "feeds": rows,
    }


def ask_daemon(listen: str, method: str, path: str, timeout: float = 3.0) -> tuple[int, Any] | None:
    """Call a running daemon's endpoint; None when nothing answers there."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    # The standard library's client: `monitor status` must not pay for importing httpx.
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, body
