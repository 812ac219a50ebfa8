"""Delivery through Apprise to real receivers on 127.0.0.1: SMTP (aiosmtpd) and an HTTP webhook."""

from __future__ import annotations

import json
import random
import socket
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from monitor.events import AlertRaised, Evidence
from monitor.notify.channels import Channel, build_channels, redact
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow
from tests.httpserver import Reply, TestServer


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_alert(n: int = 1) -> AlertRaised:
    return AlertRaised(
        alert_id=f"00000000-0000-4000-8000-00000000000{n}",
        rule="ceasefire-collapse",
        rule_hash="abc",
        severity="critical",
        watch="w",
        title="w: ceasefire brokered by RUS collapsed",
        summary="The truce collapsed within hours.",
        dedup_key="ceasefire-collapse:w:RUS",
        data={"status": "collapsed", "broker": "RUS"},
        evidence=[
            Evidence(
                event_id="e1",
                quote="The truce collapsed within hours.",
                url="http://news.example/1",
                outlet="Outlet A",
                published=datetime(2021, 3, 1, tzinfo=UTC),
            )
        ],
        channels=["mail"],
    )


def queue(store: EventStore, alert: AlertRaised, channels: list[str]) -> None:
    with store.transaction() as session:
        store.append([NewEvent(stream=f"alert:{alert.alert_id}", data=alert, idempotency_key=alert.alert_id)], session=session)
        now = datetime.now(UTC)
        for c in channels:
            session.add(OutboxRow(alert_id=alert.alert_id, channel=c, next_attempt_at=now, created_at=now))


def rows(store: EventStore) -> list[OutboxRow]:
    with store.session() as session:
        return list(session.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars())


FAST = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(hours=1))


def test_email_arrives_with_subject_body_and_evidence(tmp_path: Path) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        store = EventStore(f"sqlite:///{tmp_path / 'db'}")
        url = f"mailto://127.0.0.1:{port}?from=monitor@example.org&to=desk@example.org&smtp=127.0.0.1&mode=insecure"
        channel = Channel(name="mail", url=url, tags=["all"])
        alert = make_alert()
        queue(store, alert, ["mail"])
        assert Deliverer(store, [channel], FAST).run_once() == 1
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert "ceasefire brokered by RUS collapsed" in msg["Subject"]
    body = msg.get_payload(decode=True).decode() if not msg.is_multipart() else msg.get_payload(0).get_payload(decode=True).decode()
    assert "The truce collapsed within hours." in body
    assert "http://news.example/1" in body
    assert alert.alert_id in body
    assert rows(store)[0].status == "delivered"


def test_dead_smtp_server_then_alive_delivers_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    url = f"mailto://127.0.0.1:{port}?from=monitor@example.org&to=desk@example.org&smtp=127.0.0.1&mode=insecure"
    deliverer = Deliverer(store, [Channel(name="mail", url=url, tags=["all"])], FAST, random.Random(1))
    queue(store, make_alert(), ["mail"])
    assert deliverer.run_once() == 1  # nobody listening
    assert rows(store)[0].status == "pending" and rows(store)[0].attempts == 1
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        deliverer.run_once()
        deliverer.run_once()  # nothing left to do
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    outcomes = [e.data.outcome for e in store.read(types=["DeliveryAttempted"])]
    assert outcomes == ["failed", "delivered"]


def test_webhook_500_then_200_is_delivered_once_and_other_targets_are_not_resent(tmp_path: Path) -> None:
    calls = {"flaky": 0}

    def flaky(_req):
        calls["flaky"] += 1
        return Reply(500 if calls["flaky"] == 1 else 200, b"{}")

    with TestServer() as server:
        server.route("/flaky", flaky)
        server.route("/steady", Reply(200, b"{}"))
        host = server.base.removeprefix("http://")
        channels = [Channel(name="flaky", url=f"json://{host}/flaky", tags=["all"]),
                    Channel(name="steady", url=f"json://{host}/steady", tags=["all"])]
        store = EventStore(f"sqlite:///{tmp_path / 'db'}")
        queue(store, make_alert(), ["flaky", "steady"])
        deliverer = Deliverer(store, channels, FAST)
        deliverer.run_once()
        deliverer.run_once()
        deliverer.run_once()
        posts = [r for r in server.requests if r.method == "POST"]
    assert [p.path for p in posts] == ["/flaky", "/steady", "/flaky"]
    payload = json.loads(posts[-1].body)
    assert "ceasefire brokered by RUS collapsed" in payload["title"]
    assert "The truce collapsed within hours." in payload["message"]
    assert {r.channel: r.status for r in rows(store)} == {"flaky": "delivered", "steady": "delivered"}


def test_given_up_after_max_age(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    port = free_port()
    channel = Channel(name="hook", url=f"json://127.0.0.1:{port}/x", tags=["all"])
    queue(store, make_alert(), ["hook"])
    Deliverer(store, [channel], RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(0))).run_once()
    assert rows(store)[0].status == "given_up"


def test_secrets_never_reach_events_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Pa55"
    port = free_port()
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    url = f"mailtos://user:{secret}@127.0.0.1:{port}?to=desk@example.org&smtp=127.0.0.1"
    queue(store, make_alert(), ["mail"])
    caplog.set_level("DEBUG")
    Deliverer(store, [Channel(name="mail", url=url, tags=["all"])], FAST).run_once()
    dumped = json.dumps([e.to_json() for e in store.read()]) + caplog.text + str([r.last_error for r in rows(store)])
    assert secret not in dumped
    assert secret not in redact(url)


def test_channels_from_env_and_unknown_schemes(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.config import ChannelConfig

    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1:9/x")
    configs = [
        ChannelConfig(name="env", url_env="HOOK_URL"),
        ChannelConfig(name="unset", url_env="NOT_SET_ANYWHERE"),
        ChannelConfig(name="bogus", url="nosuchscheme://x"),
    ]
    channels, warnings = build_channels(configs, ["console://"])
    assert [c.name for c in channels] == ["env", "notify-1"]
    assert channels[1].tags == ["*"]
    assert any("NOT_SET_ANYWHERE" in w for w in warnings) and any("bogus" in w for w in warnings)
