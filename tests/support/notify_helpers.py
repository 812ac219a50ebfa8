"""Shared parts of the delivery tests: real receivers (aiosmtpd, an HTTP server on 127.0.0.1),
alerts queued as the evaluator queues them, a clock moved by hand."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from monitor.events import AlertRaised, DeliveryAttempted, Evidence
from monitor.notify.outbox import RetryPolicy, enqueue
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow
from tests.support.httpserver import Request, TestServer

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FOOTER = re.compile(r"alert ([0-9a-f-]{36}) · attempt (\d+)")


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_alert(n: int = 1, **changes: object) -> AlertRaised:
    alert = AlertRaised(
        alert_id=f"00000000-0000-4000-8000-{n:012d}",
        rule="ceasefire-collapse",
        rule_hash="abc",
        severity="critical",
        watch="w",
        title=f"w: ceasefire brokered by RUS collapsed ({n})",
        summary="The truce collapsed within hours.",
        dedup_key=f"ceasefire-collapse:w:RUS:{n}",
        data={"status": "collapsed", "broker": "RUS"},
        evidence=[
            Evidence(
                event_id=f"e{n}",
                quote=f"The truce collapsed within hours, officials said ({n}).",
                url=f"http://news.example/{n}?a=1&b=2",
                outlet="Outlet A",
                published=datetime(2021, 3, 1, tzinfo=UTC),
            )
        ],
        channels=["mail"],
    )
    return alert.model_copy(update=changes)


def queue(
    store: EventStore, alert: AlertRaised, channels: list[str], at: datetime | None = None
) -> None:
    """What the evaluator does: the alert and its outbox rows in one transaction."""
    when = at or datetime.now(UTC)
    with store.transaction() as session:
        store.append(
            [
                NewEvent(
                    stream=f"alert:{alert.alert_id}", data=alert, idempotency_key=alert.alert_id
                )
            ],
            session=session,
        )
        enqueue(session, alert.alert_id, channels, when)


def rows(store: EventStore) -> list[OutboxRow]:
    with store.session() as session:
        return list(session.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars())


def attempts_of(store: EventStore) -> list[DeliveryAttempted]:
    return [e.data for e in store.read(types=["DeliveryAttempted"])]  # type: ignore[misc]


class Clock:
    """A clock the test moves by hand, for group windows, rate limits and leases."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def mail_url(port: int) -> str:
    return (
        f"mailto://127.0.0.1:{port}?from=monitor@example.org&to=desk@example.org"
        "&smtp=127.0.0.1&mode=insecure"
    )


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def quick_server(root: Path | None = None) -> TestServer:
    """A TestServer that stops in milliseconds (its loop polls for shutdown every 20 ms)."""
    server = TestServer(root)
    server.thread = threading.Thread(
        target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    return server


@pytest.fixture
def web() -> Iterator[TestServer]:
    with quick_server() as server:
        yield server


def host_of(server: TestServer) -> str:
    return server.base.removeprefix("http://")


def posts(server: TestServer, path: str | None = None) -> list[Request]:
    return [r for r in server.requests if r.method == "POST" and (path is None or r.path == path)]


FAST = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(hours=1))
