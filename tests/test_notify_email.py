"""Email alerts through Apprise's SMTP plugin to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

from monitor.notify.channels import Channel
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.store.log import EventStore
from tests.support.notify_helpers import (
    FAST,
    Inbox,
    attempts_of,
    free_port,
    mail_url,
    make_alert,
    queue,
    rows,
)

# --- email ----------------------------------------------------------------------------------


def test_email_has_subject_text_and_html_parts_evidence_and_a_stable_message_id(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    plain = make_alert(1, explanation=["status collapsed (was agreed) for broker RUS"])
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
    assert "Why: status collapsed (was agreed) for broker RUS" in text  # one line: why it fired
    assert "<i>Why:</i> status collapsed (was agreed) for broker RUS" in html

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
