"""Chat and webhook delivery to a real HTTP server on 127.0.0.1: JSON webhooks, Mattermost."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from monitor.notify.channels import Channel
from monitor.notify.outbox import Deliverer
from monitor.store.log import EventStore
from tests.support.httpserver import Reply, Request, TestServer
from tests.support.notify_helpers import (
    FAST,
    attempts_of,
    host_of,
    make_alert,
    posts,
    queue,
    rows,
)

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
    assert "w: ceasefire brokered by RUS collapsed \\(3\\)" in text  # the title, escaped
    assert "The truce collapsed within hours, officials said \\(3\\)." in text
    assert "[Outlet A](<http://news.example/3?a=1&b=2>)" in text
    assert "\\[links\\]\\(http\\://evil.example\\)" in text  # feed text cannot become a link
    assert f"alert {alert.alert_id} · attempt 1" in text
    assert rows(store)[0].status == "delivered"


# --- structured payload for programs ----------------------------------------------------------


def test_json_webhook_gets_the_alert_as_data_with_its_severity_as_apprise_type(
    web: TestServer, tmp_path: Path
) -> None:
    web.route("/hook", Reply(200, b"{}"))
    channel = Channel(name="hook", url=f"json://{host_of(web)}/hook", tags=["all"])
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    critical = make_alert(1, explanation=["status moved from agreed to collapsed"])
    warning = make_alert(2, severity="warning", labels={"topic": "ceasefire"})
    info = make_alert(3, severity="info")
    resolved = make_alert(4, severity="critical", status="resolved")
    for alert in (critical, warning, info, resolved):
        queue(store, alert, ["hook"])
    explain = "https://monitor.example.org/alerts/{id}"
    assert Deliverer(store, [channel], FAST, explain_url=explain).run_once() == 4
    bodies = {p["id"]: p for p in (json.loads(r.body) for r in posts(web, "/hook"))}

    body = bodies[critical.alert_id]
    assert body["type"] == "failure"  # Apprise's notify type: chats colour by it
    assert body["title"] == f"[CRITICAL] {critical.title}" and "officials said" in body["message"]
    assert body["rule"] == "ceasefire-collapse" and body["severity"] == "critical"
    assert body["watch"] == "w" and body["summary"] == critical.summary
    assert body["why"] == "status moved from agreed to collapsed"
    assert body["data"] == {"status": "collapsed", "broker": "RUS"}
    assert body["evidence"] == [
        {
            "quote": "The truce collapsed within hours, officials said (1).",
            "url": "http://news.example/1?a=1&b=2",
            "outlet": "Outlet A",
            "published": "2021-03-01T00:00:00+00:00",
            "event_id": "e1",
        }
    ]
    assert body["explain"] == {
        "command": f"monitor alerts explain {critical.alert_id}",
        "url": f"https://monitor.example.org/alerts/{critical.alert_id}",
    }
    assert body["attempt"] == 1 and body["monitor"] == 1
    assert [(a["id"], a["title"]) for a in body["alerts"]] == [(critical.alert_id, critical.title)]

    assert bodies[warning.alert_id]["type"] == "warning"
    assert bodies[warning.alert_id]["labels"] == {"topic": "ceasefire"}
    assert bodies[info.alert_id]["type"] == "info"
    assert bodies[resolved.alert_id]["type"] == "success"
    assert bodies[resolved.alert_id]["status"] == "resolved"


def test_a_grouped_json_message_lists_every_alert_and_url_payload_settings_still_win(
    web: TestServer, tmp_path: Path
) -> None:
    from datetime import timedelta

    web.route("/g", Reply(200, b"{}"))
    channel = Channel(
        name="g",
        url=f"json://{host_of(web)}/g?:message=text&:source=desk",
        tags=["all"],
        group_wait=timedelta(0),
        group_interval=timedelta(hours=1),
    )
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    first, second = make_alert(1, severity="warning"), make_alert(2)
    queue(store, first, ["g"])
    queue(store, second, ["g"])
    assert Deliverer(store, [channel], FAST).run_once() == 1
    (body,) = [json.loads(r.body) for r in posts(web, "/g")]
    assert body["type"] == "failure" and body["severity"] == "critical"
    assert sorted(a["id"] for a in body["alerts"]) == [first.alert_id, second.alert_id]
    assert body["source"] == "desk" and "text" in body and "message" not in body
    assert body["alerts"][0]["explain"]["url"] is None  # no explain_url configured


def test_form_and_xml_webhooks_get_the_alert_as_text_fields(
    web: TestServer, tmp_path: Path
) -> None:
    from urllib.parse import parse_qs
    from xml.etree import ElementTree

    web.route("/form", Reply(200, b"ok"))
    web.route("/xml", Reply(200, b"ok"))
    channels = [
        Channel(name="form", url=f"form://{host_of(web)}/form", tags=["all"]),
        Channel(name="xml", url=f"xml://{host_of(web)}/xml", tags=["all"]),
    ]
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    alert = make_alert(1, labels={"topic": "<ceasefire & truce>"})
    queue(store, alert, ["form", "xml"])
    assert Deliverer(store, channels, FAST).run_once() == 2

    (form_post,) = posts(web, "/form")
    fields = {k: v[0] for k, v in parse_qs(form_post.body.decode()).items()}
    assert fields["id"] == alert.alert_id and fields["rule"] == alert.rule
    assert fields["severity"] == "critical" and fields["watch"] == "w"
    assert json.loads(fields["labels"]) == {"topic": "<ceasefire & truce>"}
    [evidence] = json.loads(fields["evidence"])
    assert evidence["quote"] == alert.evidence[0].quote
    assert [a["id"] for a in json.loads(fields["alerts"])] == [alert.alert_id]

    (xml_post,) = posts(web, "/xml")
    root = ElementTree.fromstring(xml_post.body)  # well-formed despite the <, & in a label
    notification = {el.tag.split("}")[-1]: el.text for el in root.iter()}
    assert notification["id"] == alert.alert_id and notification["rule"] == alert.rule
    assert json.loads(notification["labels"] or "") == {"topic": "<ceasefire & truce>"}
    assert json.loads(notification["evidence"] or "")[0]["url"] == alert.evidence[0].url
