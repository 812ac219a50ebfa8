"""A hostile feed tries to make the daemon read local files and internal addresses.

The operator's feed URL is trusted; every link inside it and every redirect is not. Real
servers: the feed on 127.0.0.1, an "internal" page on 127.0.0.2 (another loopback address).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import FeedConfig
from monitor.events import ArticleExtracted, ArticleFailed
from monitor.pipeline import ingest_item
from monitor.sources.fetch import FetchError, FetchLimits, fetch, fetch_link, new_client
from monitor.sources.guard import AddressPolicy
from monitor.sources.polling import poll
from monitor.store.log import EventStore
from tests.support.httpserver import Reply, TestServer

PAGE = (
    b"<html><body><article><p>The internal page says the regional office counted twelve trucks "
    b"at the depot on Monday morning, staff said.</p><p>It is not meant to leave the building, "
    b"and the staff said so twice.</p></article></body></html>"
)
SECRET = "regional office counted twelve trucks"


def rss(*links: str) -> bytes:
    items = "".join(
        f"<item><title>Item {i}</title><link>{link}</link><guid>g{i}</guid></item>"
        for i, link in enumerate(links)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        f"<link>http://wire.example/</link>{items}</channel></rss>"
    ).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    yield store
    store.close()


@pytest.fixture
def internal() -> Iterator[TestServer]:
    """A page on 127.0.0.2: not public, and not the operator's feed host."""
    with TestServer(host="127.0.0.2") as server:
        server.route("/secret", Reply(200, PAGE, {"Content-Type": "text/html"}))
        yield server


def run(store: EventStore, feed: FeedConfig, limits: FetchLimits) -> dict[str, str]:
    """The daemon's path: poll the feed, ingest every item; each item's outcome by URL."""
    with new_client(limits) as client:
        items, outcome, _ = poll(store, feed, None, limits=limits, client=client)
        assert outcome.ok, outcome.error
        results = [ingest_item(store, i, [], limits=limits, client=client) for i in items]
    return {r.url: r.status if r.status != "failed" else f"failed: {r.reason}" for r in results}


def failures(store: EventStore) -> list[ArticleFailed]:
    return [e.data for e in store.read() if isinstance(e.data, ArticleFailed)]


def leaked(store: EventStore) -> bool:
    return any(isinstance(e.data, ArticleExtracted) and SECRET in e.data.text for e in store.read())


def test_a_link_to_another_internal_address_is_refused(
    store: EventStore, internal: TestServer
) -> None:
    strict = FetchLimits(allow_networks=("127.0.0.1/32",))  # the feed's host only
    with TestServer() as feeds:
        feeds.route("/feed.xml", Reply(200, rss(f"{internal.base}/secret")))
        outcome = run(store, FeedConfig(name="wire", url=f"{feeds.base}/feed.xml"), strict)
    [status] = outcome.values()
    assert status.startswith("failed") and "127.0.0.2 is not a public address" in status
    assert internal.requests == []  # refused on connect, before a byte was sent
    [failed] = failures(store)
    assert failed.stage == "fetch" and "refused" in failed.reason and not failed.retryable
    assert not leaked(store)


def test_a_name_that_resolves_to_loopback_is_refused_too(store: EventStore) -> None:
    """The check is on the address connected to, not on how the URL spells the host."""
    with TestServer() as server:
        server.route("/page", Reply(200, PAGE, {"Content-Type": "text/html"}))
        port = server.base.rsplit(":", 1)[1]
        server.route("/feed.xml", Reply(200, rss(f"http://localhost:{port}/page")))
        outcome = run(store, FeedConfig(name="wire", url=f"{server.base}/feed.xml"), FetchLimits())
    assert all("is not a public address" in s for s in outcome.values())
    assert [r.path for r in server.requests] == ["/feed.xml"]
    assert not leaked(store)


def test_file_links_in_a_remote_feed_are_refused(store: EventStore, tmp_path: Path) -> None:
    local = tmp_path / "note.html"
    local.write_bytes(PAGE)
    links = ["file:/etc/passwd", "file://localhost/etc/passwd", "file:///etc/hostname"]
    links.append(local.as_uri())
    with TestServer() as feeds:
        feeds.route("/feed.xml", Reply(200, rss(*links)))
        outcome = run(store, FeedConfig(name="wire", url=f"{feeds.base}/feed.xml"), FetchLimits())
    assert len(outcome) == len(links)
    assert all("file: links are read only from local feed files" in s for s in outcome.values())
    texts = [e.data.text for e in store.read() if isinstance(e.data, ArticleExtracted)]
    assert texts == [] and not leaked(store)
    assert len(failures(store)) == len(links)


def test_redirects_to_internal_addresses_and_files_are_refused(
    store: EventStore, internal: TestServer
) -> None:
    """An allowed page that redirects elsewhere: the redirect is an untrusted link."""
    limits = FetchLimits(allow_networks=("127.0.0.1/32",))
    with TestServer() as site:
        site.route("/to-internal", Reply(302, b"", {"Location": f"{internal.base}/secret"}))
        site.route("/to-file", Reply(301, b"", {"Location": "file:///etc/passwd"}))
        site.route(
            "/to-localhost-file", Reply(307, b"", {"Location": "file://localhost/etc/passwd"})
        )
        site.route(
            "/feed.xml",
            Reply(
                200,
                rss(
                    f"{site.base}/to-internal",
                    f"{site.base}/to-file",
                    f"{site.base}/to-localhost-file",
                ),
            ),
        )
        outcome = run(store, FeedConfig(name="wire", url=f"{site.base}/feed.xml"), limits)
    by_path = {url.rsplit("/", 1)[1]: status for url, status in outcome.items()}
    assert "127.0.0.2 is not a public address" in by_path["to-internal"]
    assert "redirect to file:///etc/passwd" in by_path["to-file"]
    assert "redirect to file://localhost/etc/passwd" in by_path["to-localhost-file"]
    assert internal.requests == []
    assert not leaked(store)


def test_the_operators_feed_may_not_redirect_inside_either(internal: TestServer) -> None:
    """The configured URL is trusted; where it redirects to is not."""
    internal.route("/feed.xml", Reply(200, rss("http://wire.example/a")))
    with TestServer() as site:
        site.route("/feed.xml", Reply(302, b"", {"Location": f"{internal.base}/feed.xml"}))
        with pytest.raises(FetchError, match="not a public address") as info:
            fetch(f"{site.base}/feed.xml")
    assert info.value.kind == "refused" and internal.requests == []
    # The configured location itself may be internal: the operator chose it.
    assert b"wire.example" in fetch(f"{internal.base}/feed.xml").body


def test_allow_networks_lets_links_reach_an_internal_host(
    store: EventStore, internal: TestServer
) -> None:
    limits = FetchLimits(allow_networks=("127.0.0.1/32", "127.0.0.2/32"))
    with TestServer() as site:
        site.route("/hop", Reply(302, b"", {"Location": f"{internal.base}/secret"}))
        site.route("/feed.xml", Reply(200, rss(f"{internal.base}/secret", f"{site.base}/hop")))
        outcome = run(store, FeedConfig(name="wire", url=f"{site.base}/feed.xml"), limits)
    assert set(outcome.values()) == {"extracted"}
    assert leaked(store)  # allowed on purpose, so read


def test_a_local_feed_reads_files_inside_its_directory_only(
    store: EventStore, tmp_path: Path
) -> None:
    feeds = tmp_path / "feeds"
    (feeds / "pages").mkdir(parents=True)
    (feeds / "pages" / "inside.html").write_bytes(PAGE)
    (tmp_path / "outside.html").write_bytes(PAGE.replace(b"twelve", b"thirteen"))
    (feeds / "pages" / "sneaky.html").symlink_to(tmp_path / "outside.html")
    (feeds / "local.xml").write_bytes(
        rss("pages/inside.html", "../outside.html", "pages/sneaky.html", "file:/etc/passwd")
    )
    feed = FeedConfig(name="local", url=(feeds / "local.xml").as_uri())
    outcome = run(store, feed, FetchLimits())
    by_name = {url.rsplit("/", 1)[1]: status for url, status in outcome.items()}
    assert by_name["inside.html"] == "extracted"
    for name in ("outside.html", "sneaky.html", "passwd"):
        assert "outside the feed's directory" in by_name[name], name
    # files_under widens the bound on purpose (the seed feeds link to ../pages).
    wider = feed.model_copy(update={"files_under": tmp_path})
    fresh = EventStore(f"sqlite:///{tmp_path / 'wider.db'}")
    try:
        assert run(fresh, wider, FetchLimits())[(tmp_path / "outside.html").as_uri()] == "extracted"
    finally:
        fresh.close()


def test_links_with_other_schemes_are_refused() -> None:
    for url in ("ftp://127.0.0.1/x", "gopher://127.0.0.1:70/", "data:text/html,hi", "/etc/passwd"):
        with pytest.raises(FetchError, match="refused") as info:
            fetch_link(url)
        assert info.value.kind == "refused"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("::ffff:169.254.169.254", False),
    ],
)
def test_address_policy_default_is_public_only(address: str, allowed: bool) -> None:
    assert (AddressPolicy().refusal(address) is None) is allowed


def test_address_policy_allow_networks() -> None:
    policy = AddressPolicy(["10.20.0.0/16", "fd00:1::/64"])
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("::ffff:10.20.3.4") is None
    assert policy.refusal("fd00:1::5") is None
    assert policy.refusal("10.21.0.1") is not None
