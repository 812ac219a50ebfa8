"""Feed text is escaped for the format each channel speaks: a hostile title, quote, outlet and
URL arrive as text, never as an extra link, heading, tag or forged line. One test per format,
each through a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from markdown_it import MarkdownIt

from monitor.events import AlertRaised, Evidence
from monitor.notify.channels import Channel
from monitor.notify.message import Section, render_group, safe_url
from monitor.notify.outbox import Deliverer
from monitor.store.log import EventStore
from tests.support.httpserver import Reply, TestServer
from tests.support.notify_helpers import FAST, Inbox, host_of, mail_url, make_alert, posts, queue

INJECTED_URL = "http://news.example/a>)[text](https://evil.example)"
QUOTE = 'The truce held" onmouseover="x" <script>alert(1)</script> [click](https://evil.example)'


def hostile(n: int = 1) -> AlertRaised:
    """An alert whose every feed-derived field tries to become markup or a second line."""
    return make_alert(
        n,
        title="# Breaking [win](https://evil.example) <b>now</b>",
        summary="1. *Forged* list\nalert 00000000-0000-4000-8000-999999999999 · attempt 9",
        data={"broker": "<img src=x onerror=alert(1)>", "note": "![img](https://evil.example/p)"},
        evidence=[
            Evidence(
                event_id="e1",
                quote=QUOTE + "\n\n# heading\x1b[31m\u202etxet",
                url=INJECTED_URL,
                outlet="Outlet](https://evil.example)",
            ),
            Evidence(event_id="e2", quote="Local path.", url="file:///etc/passwd", outlet="F"),
        ],
    )


def test_urls_are_percent_encoded_so_no_character_ends_a_link() -> None:
    assert (
        safe_url(INJECTED_URL) == "http://news.example/a%3E%29%5Btext%5D%28https://evil.example%29"
    )
    assert safe_url("http://news.example/3?a=1&b=2#top") == "http://news.example/3?a=1&b=2#top"
    assert safe_url('http://x.example/a b"c\\d%zz%41') == "http://x.example/a%20b%22c%5Cd%25zz%41"
    assert safe_url("https://bücher.example/ä") == "https://xn--bcher-kva.example/%C3%A4"
    assert safe_url("https://Bücher.example/") == "https://xn--bcher-kva.example/"
    assert ">" not in safe_url("http://" + "ä" * 70 + ".example/>")  # too long for IDNA


def _links(tokens: list) -> list[str]:
    found = []
    for token in tokens:
        if token.type == "link_open" or token.type == "image":
            found.append(token.attrs.get("href") or token.attrs.get("src"))
        found += _links(token.children or [])
    return found


def test_markdown_chat_message_has_one_link_per_web_evidence_and_nothing_else(
    web: TestServer, tmp_path: Path
) -> None:
    web.route("/hooks/tokenABC123", Reply(200, b"ok"))
    channel = Channel(
        name="chat", url=f"mmost://{host_of(web)}/tokenABC123", tags=["all"], format="markdown"
    )
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    queue(store, hostile(), ["chat"])
    assert Deliverer(store, [channel], FAST).run_once() == 1
    (req,) = posts(web, "/hooks/tokenABC123")
    text = json.loads(req.body)["text"]  # Mattermost has no title field: it leads the text
    tokens = MarkdownIt("commonmark").parse(text)
    assert _links(tokens) == ["http://news.example/a%3E%29%5Btext%5D%28https://evil.example%29"]
    assert not [t for t in tokens if t.type in ("html_block", "ordered_list_open")]
    assert len([t for t in tokens if t.type == "list_item_open"]) == 2  # our own data lines
    assert not [t for t in tokens if t.type == "heading_open"]  # "# Breaking" stays text
    assert text.startswith("\\[CRITICAL\\] \\# Breaking \\[win\\]")
    rendered = MarkdownIt("commonmark").render(text)
    assert rendered.count("<a ") == 1 and "<script>" not in rendered and "<img" not in rendered
    assert "file:///etc/passwd" in rendered.replace("file\\:", "file:")  # shown, not linked
    forged = [line for line in text.splitlines() if line.startswith(("alert ", "`alert "))]
    assert len(forged) == 1  # the summary's fake footer stayed inside the summary's line


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        if any(name.startswith("on") for name, _ in attrs):
            self.tags.append(f"{tag}[event handler]")


def test_html_email_part_has_one_link_and_no_tag_from_the_feed(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    queue(store, hostile(), ["mail"])
    channel = Channel(name="mail", url=mail_url(port), tags=["all"], format="html")
    assert Deliverer(store, [channel], FAST).run_once() == 1
    (mail,) = inbox.messages
    page = _Anchors()
    page.feed(mail.get_body(("html",)).get_content())
    assert page.hrefs == ["http://news.example/a%3E%29%5Btext%5D%28https://evil.example%29"]
    assert not {"script", "img", "b"} & set(page.tags)
    assert not [t for t in page.tags if t.endswith("[event handler]")]
    assert "\n" not in mail["Subject"] and "\x1b" not in mail.get_body(("html",)).get_content()


def test_plain_text_webhook_has_clean_single_lines_and_encoded_urls(
    web: TestServer, tmp_path: Path
) -> None:
    web.route("/hook", Reply(200, b"{}"))
    channel = Channel(name="hook", url=f"json://{host_of(web)}/hook", tags=["all"])
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    alert = hostile()
    queue(store, alert, ["hook"])
    assert Deliverer(store, [channel], FAST).run_once() == 1
    text = json.loads(posts(web, "/hook")[0].body)["message"]
    assert not any(ch in text for ch in "\x1b\u202e")
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("alert ")] == [
        f"alert {alert.alert_id} · attempt 1 · rule ceasefire-collapse · severity critical"
    ]
    assert [line for line in lines if line.startswith("# ")] == []  # the quote's "heading"
    assert "  Outlet](https://evil.example), undated: " + safe_url(INJECTED_URL) in lines
    message = render_group([Section(alert=alert, attempt=1)], channel="hook")
    assert message.title == f"[CRITICAL] {alert.title}"
