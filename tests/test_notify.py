"""Delivery through Apprise to real receivers on 127.0.0.1: SMTP (aiosmtpd), a JSON webhook and a
Mattermost incoming webhook; the outbox's claims, fencing, retries, grouping and rate limits on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from monitor.config import ChannelConfig
from monitor.events import AlertRaised, DeliveryAttempted, DeliveryRequeued, Evidence
from monitor.logs import RedactingFilter
from monitor.notify.admin import RequeueError, delivery_states, requeue, send_test_messages
from monitor.notify.channels import Channel, build_channels
from monitor.notify.outbox import Deliverer, RetryPolicy, enqueue, worker_identity
from monitor.store.log import EventStore, NewEvent
from monitor.store.tables import OutboxRow
from tests.httpserver import Reply, Request, TestServer

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


# --- email ----------------------------------------------------------------------------------


def test_email_has_subject_text_and_html_parts_evidence_and_a_stable_message_id(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    plain = make_alert(1)
    templated = make_alert(
        2,
        body="Rule body: the truce collapsed.\n> The truce collapsed within hours, officials "
        "said (2).\n  Outlet A http://news.example/2?a=1&b=2",
        body_html="<p>Rule body</p><blockquote>The truce &lt;collapsed&gt;</blockquote>"
        '<a href="http://news.example/2?a=1&amp;b=2">Outlet A</a>',
    )
    queue(store, plain, ["mail"])
    queue(store, templated, ["mail"])
    channel = Channel(name="mail", url=mail_url(port), tags=["all"])
    assert Deliverer(store, [channel], FAST).run_once() == 2
    assert len(inbox.messages) == 2
    by_id = {m["X-Monitor-Alert-Id"]: m for m in inbox.messages}

    msg = by_id[plain.alert_id]
    assert msg["Subject"] == f"[CRITICAL] {plain.title}"
    assert msg["Message-ID"] == f"<{plain.alert_id}@example.org>"
    assert msg["To"] == "desk@example.org" and msg["From"] == "monitor@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert "The truce collapsed within hours, officials said (1)." in part
        assert plain.alert_id in part
    assert "http://news.example/1?a=1&b=2" in text
    assert 'href="http://news.example/1?a=1&amp;b=2"' in html
    assert "Outlet A, 2021-03-01" in text

    msg = by_id[templated.alert_id]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Rule body: the truce collapsed." in text  # the rule's own text body
    assert "<p>Rule body</p><blockquote>The truce &lt;collapsed&gt;</blockquote>" in html
    assert templated.alert_id in text and templated.alert_id in html
    assert [r.status for r in rows(store)] == ["delivered", "delivered"]


def test_email_server_down_when_raised_arrives_once_after_restart(tmp_path: Path) -> None:
    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    controller.stop()  # the server was up, and is now down when the alert is raised
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    policy = RetryPolicy(base=timedelta(milliseconds=10), cap=timedelta(milliseconds=10))
    deliverer = Deliverer(store, [Channel(name="mail", url=mail_url(port), tags=["all"])], policy)
    alert = make_alert()
    queue(store, alert, ["mail"])
    assert deliverer.run_once() == 1
    assert rows(store)[0].status == "pending" and rows(store)[0].attempts == 1
    assert "Connection refused" in (rows(store)[0].last_error or "")
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        time.sleep(0.02)
        deliverer.run_once()
        deliverer.run_once()  # nothing left to do
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["Message-ID"] == f"<{alert.alert_id}@example.org>"
    assert [a.outcome for a in attempts_of(store)] == ["failed", "delivered"]
    assert [a.attempt for a in attempts_of(store)] == [1, 2]


# --- chat and webhooks ----------------------------------------------------------------------


def test_webhook_500_then_200_delivered_once_and_other_targets_not_resent(
    db_url: str, web: TestServer
) -> None:
    calls = Counter[str]()

    def flaky(_req: Request) -> Reply:
        calls["flaky"] += 1
        return Reply(500 if calls["flaky"] == 1 else 200, b"{}")

    web.route("/flaky", flaky)
    web.route("/steady", Reply(200, b"{}"))
    channels = [
        Channel(name="flaky", url=f"json://{host_of(web)}/flaky", tags=["all"]),
        Channel(name="steady", url=f"json://{host_of(web)}/steady", tags=["all"]),
    ]
    store = EventStore(db_url)
    alert = make_alert()
    queue(store, alert, ["flaky", "steady"])
    deliverer = Deliverer(store, channels, FAST)
    assert deliverer.run_once() == 2
    assert deliverer.run_once() == 1
    assert deliverer.run_once() == 0
    assert [p.path for p in posts(web)] == ["/flaky", "/steady", "/flaky"]
    payload = json.loads(posts(web)[-1].body)
    assert payload["title"] == f"[CRITICAL] {alert.title}"
    assert alert.evidence[0].quote in payload["message"]
    assert alert.evidence[0].url in payload["message"]
    assert f"alert {alert.alert_id} · attempt 2" in payload["message"]
    assert {r.channel: r.status for r in rows(store)} == {
        "flaky": "delivered",
        "steady": "delivered",
    }
    events = {(a.channel, a.attempt): a for a in attempts_of(store)}
    assert events["flaky", 1].outcome == "failed" and "500" in (events["flaky", 1].error or "")
    assert events["flaky", 2].outcome == "delivered" and events["steady", 1].outcome == "delivered"
    assert all(a.latency_ms is not None for a in events.values() if a.outcome == "delivered")
    assert events["flaky", 2].target == f"json://{host_of(web)}/flaky"
    store.close()


def test_mattermost_incoming_webhook_gets_markdown_with_evidence(web: TestServer, tmp_path: Path):
    web.route("/hooks/abcdefTOKEN123", Reply(200, b"ok"))
    channel = Channel(
        name="chat", url=f"mmost://{host_of(web)}/abcdefTOKEN123", tags=["all"], format="markdown"
    )
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    alert = make_alert(3, summary="Claims of *bold* [links](http://evil.example) are escaped")
    queue(store, alert, ["chat"])
    assert Deliverer(store, [channel], FAST).run_once() == 1
    (req,) = posts(web, "/hooks/abcdefTOKEN123")
    payload = json.loads(req.body)
    text = payload["text"]
    assert alert.title in text
    assert "The truce collapsed within hours, officials said \\(3\\)." in text
    assert "[Outlet A](<http://news.example/3?a=1&b=2>)" in text
    assert "\\[links\\]\\(http://evil.example\\)" in text  # feed text cannot become a link
    assert f"alert {alert.alert_id} · attempt 1" in text
    assert rows(store)[0].status == "delivered"


# --- retries, backoff, giving up, health reports, manual retry ------------------------------


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=2))
    rng = random.Random(7)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80), (6, 120), (9, 120)]:
        delays = {policy.delay(attempt, rng).total_seconds() for _ in range(50)}
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert len(delays) > 40  # jittered, not a fixed schedule


def test_failed_delivery_waits_for_its_backoff(tmp_path: Path) -> None:
    clock = Clock()
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    channel = Channel(name="hook", url=f"json://127.0.0.1:{free_port()}/x", tags=["all"])
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(seconds=10))
    deliverer = Deliverer(store, [channel], policy, clock=clock)
    queue(store, make_alert(), ["hook"], at=T0)
    assert deliverer.run_once() == 1
    due = rows(store)[0].next_attempt_at.replace(tzinfo=UTC)
    assert T0 + timedelta(seconds=5) <= due <= T0 + timedelta(seconds=10)
    clock.advance(4.9)
    assert deliverer.run_once() == 0
    clock.now = due
    assert deliverer.run_once() == 1


def test_given_up_is_listed_reported_once_to_health_and_can_be_requeued(
    db_url: str, web: TestServer
) -> None:
    web.route("/health", Reply(200, b"{}"))
    state = {"down": True}
    web.route("/hook", lambda _r: Reply(503 if state["down"] else 200, b"{}"))
    clock = Clock()
    hook = Channel(name="hook", url=f"json://{host_of(web)}/hook", tags=["all"])
    health = Channel(name="ops", url=f"json://{host_of(web)}/health", tags=[], health=True)
    policy = RetryPolicy(
        base=timedelta(seconds=1), cap=timedelta(seconds=1), max_age=timedelta(seconds=60)
    )
    store = EventStore(db_url)
    deliverer = Deliverer(store, [hook, health], policy, clock=clock)
    alert = make_alert()
    queue(store, alert, ["hook"], at=T0)
    assert deliverer.run_once() == 1  # failed, still young
    clock.advance(61)
    assert deliverer.run_once() == 2  # given up; the report goes out in the same run
    assert deliverer.run_once() == 0
    reports = posts(web, "/health")
    assert len(reports) == 1
    report = json.loads(reports[0].body)
    assert "delivery given up: hook" in report["title"] and alert.title in report["title"]
    assert alert.alert_id in report["message"] and "503" in report["message"]
    assert f"monitor alerts retry {alert.alert_id}" in report["message"]

    (state_,) = delivery_states(store)[alert.alert_id]
    assert state_.status == "given_up" and state_.attempts == 2
    assert state_.describe().startswith("hook:GIVEN UP after 2 attempts: ")
    outcomes = [(a.channel, a.outcome, a.reports_on) for a in attempts_of(store)]
    assert outcomes == [
        ("hook", "failed", None),
        ("hook", "given_up", None),
        ("ops", "delivered", "hook"),
    ]

    with pytest.raises(RequeueError, match="no deliveries"):
        requeue(store, "ffffffff")
    state["down"] = False
    requeued = requeue(store, alert.alert_id[:8], now=clock.now)
    assert [(s.channel, s.status) for s in requeued] == [("hook", "pending")]
    assert deliverer.run_once() == 1
    assert len(posts(web, "/hook")) == 3 and len(posts(web, "/health")) == 1
    assert delivery_states(store)[alert.alert_id][0].status == "delivered"
    requeues = [e.data for e in store.read(types=["DeliveryRequeued"])]
    assert requeues == [
        DeliveryRequeued(
            alert_id=alert.alert_id, channel="hook", previous_status="given_up", attempts=2
        )
    ]
    with pytest.raises(RequeueError, match="already delivered"):
        requeue(store, alert.alert_id)
    store.close()


def test_max_age_restarts_after_requeue(tmp_path: Path) -> None:
    clock = Clock()
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    channel = Channel(name="hook", url=f"json://127.0.0.1:{free_port()}/x", tags=["all"])
    policy = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(seconds=30))
    deliverer = Deliverer(store, [channel], policy, clock=clock)
    queue(store, make_alert(), ["hook"], at=T0)
    clock.advance(31)
    deliverer.run_once()
    assert rows(store)[0].status == "given_up"
    requeue(store, make_alert().alert_id, now=clock.now)
    deliverer.run_once()
    assert rows(store)[0].status == "pending"  # a fresh 30 s, not given up at once


# --- grouping and rate limits ---------------------------------------------------------------


def test_group_wait_and_interval_send_one_message_per_window(db_url: str, web: TestServer) -> None:
    web.route("/g", Reply(200, b"{}"))
    clock = Clock()
    channel = Channel(
        name="g",
        url=f"json://{host_of(web)}/g",
        tags=["all"],
        group_wait=timedelta(seconds=30),
        group_interval=timedelta(minutes=5),
    )
    store = EventStore(db_url)
    deliverer = Deliverer(store, [channel], FAST, clock=clock)
    first = [make_alert(n) for n in (1, 2, 3)]
    for alert in first:
        queue(store, alert, ["g"], at=T0)
    assert deliverer.run_once() == 0  # waiting for company
    clock.advance(10)
    late = make_alert(4)
    queue(store, late, ["g"], at=clock.now)
    assert deliverer.run_once() == 0
    clock.advance(21)  # 31 s after the first alert
    assert deliverer.run_once() == 1
    (message,) = posts(web)
    body = json.loads(message.body)["message"]
    ids = [a.alert_id for a in [*first, late]]
    assert "4 alerts" in body
    for alert in [*first, late]:
        assert f"alert {alert.alert_id} · attempt 1" in body
        assert alert.evidence[0].quote in body and alert.evidence[0].url in body
    events = attempts_of(store)
    assert sorted(e.alert_id for e in events) == sorted(ids)
    assert len({e.message_id for e in events}) == 1
    assert all(sorted(e.group) == sorted(ids) for e in events)

    clock.advance(60)
    fifth = make_alert(5)
    queue(store, fifth, ["g"], at=clock.now)
    clock.advance(31)  # group_wait over, but group_interval (5 min since the last message) not
    assert deliverer.run_once() == 0
    clock.advance(5 * 60)
    assert deliverer.run_once() == 1
    assert len(posts(web)) == 2
    last = json.loads(posts(web)[-1].body)
    assert last["title"] == f"[CRITICAL] {fifth.title}"  # a group of one reads as one alert
    assert attempts_of(store)[-1].group == []
    store.close()


def test_a_flush_at_shutdown_sends_the_waiting_group_but_keeps_retry_backoff(
    tmp_path: Path, web: TestServer
) -> None:
    calls = {"n": 0}

    def flaky_once(_req: object) -> Reply:
        calls["n"] += 1
        return Reply(500 if calls["n"] == 1 else 200, b"{}")

    web.route("/fl", flaky_once)
    clock = Clock()
    slow = RetryPolicy(base=timedelta(minutes=5), cap=timedelta(minutes=5))
    channel = Channel(
        name="fl", url=f"json://{host_of(web)}/fl", tags=["all"], group_wait=timedelta(minutes=1)
    )
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    deliverer = Deliverer(store, [channel], slow, clock=clock)
    queue(store, make_alert(1), ["fl"], at=T0)
    clock.advance(61)
    assert deliverer.run_once() == 1  # the first group fails: backoff of minutes
    queue(store, make_alert(2), ["fl"], at=clock.now)
    assert deliverer.run_once() == 0  # alert 2 waits for its group window
    assert deliverer.run_once(flush=True) == 1  # shutdown: it goes now, alone
    assert json.loads(posts(web)[-1].body)["title"].endswith(make_alert(2).title)
    assert {r.alert_id[-1]: r.status for r in rows(store)} == {"1": "pending", "2": "delivered"}
    store.close()


def test_rate_limit_defers_without_failing(tmp_path: Path, web: TestServer) -> None:
    web.route("/r", Reply(200, b"{}"))
    clock = Clock()
    config = ChannelConfig(name="r", url=f"json://{host_of(web)}/r", rate_limit="2/1m")
    (channel,), _ = build_channels([config])
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    deliverer = Deliverer(store, [channel], FAST, clock=clock)
    for n in (1, 2, 3):
        queue(store, make_alert(n), ["r"], at=T0)
    assert deliverer.run_once() == 2
    clock.advance(59)
    assert deliverer.run_once() == 0
    clock.advance(1)
    assert deliverer.run_once() == 1
    assert len(posts(web)) == 3
    assert [a.outcome for a in attempts_of(store)] == ["delivered"] * 3
    assert all(r.attempts == 1 for r in rows(store))


# --- leases, fencing, concurrency -----------------------------------------------------------


def test_overtaken_worker_cannot_record_over_a_newer_claim(db_url: str, web: TestServer) -> None:
    web.route("/x", Reply(200, b"{}"))
    channel = Channel(name="x", url=f"json://{host_of(web)}/x", tags=["all"])
    clock = Clock()
    policy = RetryPolicy(lease=timedelta(seconds=30), max_age=timedelta(hours=1))
    store = EventStore(db_url)
    slow = Deliverer(store, [channel], policy, clock=clock)
    fast = Deliverer(store, [channel], policy, clock=clock)
    queue(store, make_alert(), ["x"], at=T0)
    unit, _ = slow._claim_next(set())  # claims, then stalls past its lease
    assert unit is not None and unit.rows[0].attempt == 1
    assert fast.run_once() == 0  # the lease holds
    clock.advance(31)
    assert fast.run_once() == 1  # the lease expired: a newer claim (attempt 2) delivers
    slow._deliver(unit)  # the stalled worker wakes up and sends, then tries to record
    (row,) = rows(store)
    assert row.status == "delivered" and row.attempts == 2 and row.lease_owner is None
    events = [(a.attempt, a.outcome, a.superseded) for a in attempts_of(store)]
    assert events == [(2, "delivered", False), (1, "delivered", True)]
    store.close()


def test_leases_of_a_dead_local_worker_are_released_at_once(tmp_path: Path, web: TestServer):
    web.route("/x", Reply(200, b"{}"))
    channel = Channel(name="x", url=f"json://{host_of(web)}/x", tags=["all"])
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    queue(store, make_alert(1), ["x"])
    queue(store, make_alert(2), ["x"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host, pidns, _pid, _ = worker_identity().split("|")
    far = datetime.now(UTC) + timedelta(hours=1)
    with store.transaction() as session:
        r1, r2 = session.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars()
        r1.lease_owner, r1.lease_until, r1.attempts = (
            f"{host}|{pidns}|{dead.stdout.strip()}|x",
            far,
            1,
        )
        r2.lease_owner, r2.lease_until, r2.attempts = f"{host}|{pidns}|1|y", far, 1  # alive (init)
    deliverer = Deliverer(store, [channel], FAST)
    assert deliverer.run_once() == 1
    statuses = [(r.alert_id[-1], r.status, r.attempts) for r in rows(store)]
    assert statuses == [("1", "delivered", 2), ("2", "pending", 1)]


def test_concurrent_workers_deliver_each_alert_exactly_once(db_url: str, web: TestServer) -> None:
    web.route("/c", Reply(200, b"{}"))
    channel = Channel(name="c", url=f"json://{host_of(web)}/c", tags=["all"])
    store = EventStore(db_url)
    alerts = [make_alert(n) for n in range(1, 41)]
    for alert in alerts:
        queue(store, alert, ["c"])
    workers = [Deliverer(store, [channel], FAST) for _ in range(4)]
    errors: list[BaseException] = []

    def work(deliverer: Deliverer) -> None:
        try:
            while deliverer.run_once(limit=3):
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    seen = Counter(m[0] for p in posts(web) for m in FOOTER.findall(json.loads(p.body)["message"]))
    assert seen == Counter({a.alert_id: 1 for a in alerts})  # every alert, none twice
    assert all(r.status == "delivered" and r.attempts == 1 for r in rows(store))
    store.close()


# --- channels, secrets ----------------------------------------------------------------------


def test_channels_from_config_env_file_and_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1:9/x")
    secret_file = tmp_path / "url"
    secret_file.write_text("mmost://127.0.0.1:9/filetoken\n")
    configs = [
        ChannelConfig(name="env", url_env="HOOK_URL", group_wait="30s", group_interval="5m"),
        ChannelConfig(name="file", url_file=secret_file, format="markdown", rate_limit="5/m"),
        ChannelConfig(name="ops", url="console://", tags=[], health=True),
        ChannelConfig(name="unset", url_env="NOT_SET_ANYWHERE"),
        ChannelConfig(name="bogus", url="nosuchscheme://x"),
    ]
    channels, warnings = build_channels(configs, ["console://"])
    by_name = {c.name: c for c in channels}
    assert list(by_name) == ["env", "file", "ops", "notify-1"]
    assert by_name["env"].grouped and by_name["env"].group_interval == timedelta(minutes=5)
    assert by_name["file"].rate_limit is not None and by_name["file"].rate_limit.count == 5
    assert by_name["file"].format == "markdown" and by_name["file"].url.endswith("filetoken")
    assert by_name["ops"].health and by_name["notify-1"].tags == ["*"]
    assert any("NOT_SET_ANYWHERE" in w for w in warnings) and any("bogus" in w for w in warnings)
    with pytest.raises(ValueError, match="format"):
        ChannelConfig(name="x", url="json://h", format="rtf")
    with pytest.raises(ValueError, match="rate limit"):
        ChannelConfig(name="x", url="json://h", rate_limit="often")


SECRETS = {
    "password": "s3cr3t-Pa55",
    "mm_token": "mmTokenZ9x8c7v6",
    "ntfy_token": "tk_ntfySecret42",
    "basic": "b4sic-auth-pw",
}


def test_secrets_never_reach_events_logs_rows_reports_or_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, web: TestServer
) -> None:
    web.route("/health", Reply(200, b"{}"))
    web.route(f"/hooks/{SECRETS['mm_token']}", Reply(500, b"no"))
    web.route("/basic", Reply(401, b"no"))
    host = host_of(web)
    channels = [
        Channel(
            name="mail",
            url=f"mailtos://user:{SECRETS['password']}@127.0.0.1:{free_port()}?to=a@example.org",
            tags=["all"],
        ),
        Channel(name="mm", url=f"mmost://{host}/{SECRETS['mm_token']}", tags=["all"]),
        Channel(
            name="ntfy", url=f"ntfy://{host}/topic?token={SECRETS['ntfy_token']}", tags=["all"]
        ),
        Channel(name="basic", url=f"json://admin:{SECRETS['basic']}@{host}/basic", tags=["all"]),
        Channel(name="ops", url=f"json://{host}/health", tags=[], health=True),
    ]
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    queue(store, make_alert(), ["mail", "mm", "ntfy", "basic"])
    raw: list[str] = []  # what Apprise logs before our filter sees it

    class Raw(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raw.append(record.getMessage())

    apprise_log, tap = logging.getLogger("apprise"), Raw()
    apprise_log.addHandler(tap)
    caplog.handler.addFilter(RedactingFilter())  # the filter monitor.logs puts on its handler
    caplog.set_level("DEBUG")  # Apprise's debug lines print request URLs
    try:
        policy = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(0))
        deliverer = Deliverer(store, channels, policy)
        deliverer.run_once()
        deliverer.run_once()
        results = send_test_messages(channels)
    finally:
        apprise_log.removeHandler(tap)
    assert [r.ok for r in results] == [False, False, False, False, True]
    assert len(posts(web, "/health")) == 4 + 1  # one report per given-up delivery, one test
    assert any(SECRETS["mm_token"] in line for line in raw)  # so the filter is what hides it
    dumped = "\n".join(
        [
            json.dumps([e.to_json() for e in store.read()]),
            caplog.text,
            str([(r.last_error, r.lease_owner) for r in rows(store)]),
            str([s.describe() for v in delivery_states(store).values() for s in v]),
            *(r.model_dump_json() for r in results),
            *(r.body.decode() for r in web.requests),
            *(c.safe_url() for c in channels),
            repr(channels),  # a channel in a log line or traceback shows no URL
        ]
    )
    assert [name for name, s in SECRETS.items() if s in dumped] == []
    assert "401" in dumped and "500" in dumped  # the errors themselves are kept


def test_migration_adds_outbox_columns_to_an_existing_database(tmp_path: Path) -> None:
    from monitor.store import migrate
    from monitor.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (alert_id, channel, status, attempts, next_attempt_at, created_at)"
            " VALUES ('a', 'c', 'pending', 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
        )
    engine.dispose()
    store = EventStore(url)
    (row,) = rows(store)
    assert row.kind == "alert" and row.sent_at is None and row.ref is None


def test_a_log_moved_to_another_database_still_delivers_what_was_pending(
    tmp_path: Path, db_url: str
) -> None:
    """`events import` brings no outbox: it is restored from the log, so nothing is lost and
    nothing already delivered is sent again."""
    import io

    from monitor.notify.admin import restore_outbox
    from monitor.store.transfer import export_jsonl, import_jsonl

    with TestServer() as server:
        server.route("/hook", Reply(200, b"{}"))
        host = server.base.removeprefix("http://")
        hook = Channel(name="hook", url=f"json://{host}/hook", tags=["all"])
        old = EventStore(f"sqlite:///{tmp_path / 'old.db'}")
        sent, waiting = make_alert(1, channels=["hook"]), make_alert(2, channels=["hook"])
        queue(old, sent, ["hook"])
        assert Deliverer(old, [hook], FAST).run_once() == 1
        queue(old, waiting, ["hook"])  # raised, not yet delivered, when the log is exported
        dump = io.StringIO()
        export_jsonl(old, dump)
        new = EventStore(db_url)
        import_jsonl(new, io.StringIO(dump.getvalue()))
        assert restore_outbox(new) == 2
        assert restore_outbox(new) == 0  # idempotent
        assert {r.alert_id: r.status for r in rows(new)} == {
            sent.alert_id: "delivered",
            waiting.alert_id: "pending",
        }
        Deliverer(new, [hook], FAST).run_once()
        posts = [r.body.decode() for r in server.requests if r.method == "POST"]
    assert len(posts) == 2  # one from the old database, one from the new
    assert waiting.alert_id in posts[1] and sent.alert_id not in posts[1]
