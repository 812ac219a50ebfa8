"""One poll path: ``monitor replay`` and the daemon read a feed through the same ``poll``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from monitor import pipeline
from monitor.cli import main
from monitor.config import FeedConfig, Settings
from monitor.pipeline import History, article_histories
from monitor.runtime import Runtime
from monitor.sources import polling
from monitor.store.log import EventStore
from monitor.store.tables import FeedLease
from tests.conftest import RULES
from tests.support.httpserver import Reply, TestServer

PAGE = (
    "<html><body><nav>Home | World</nav><article><h1>Shelling near the river</h1>"
    "<p>Ruritanian officials said 14 soldiers were killed in shelling near the river crossing "
    "on Friday, the defence ministry said.</p><p>Residents of the border villages said the "
    "shelling went on through the night.</p></article></body></html>"
)


def write_feed(folder: Path) -> Path:
    """A local feed: one good page, one missing page, and an entry with no link at all."""
    (folder / "pages").mkdir(parents=True)
    (folder / "pages" / "one.html").write_text(PAGE)
    feed = folder / "wire.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        "<link>http://wire.example/</link>"
        "<item><title>Shelling</title><link>pages/one.html</link><guid>g1</guid>"
        "<pubDate>Fri, 02 Oct 2020 10:00:00 GMT</pubDate></item>"
        "<item><title>Gone</title><link>pages/missing.html</link><guid>g2</guid>"
        "<pubDate>Fri, 02 Oct 2020 11:00:00 GMT</pubDate></item>"
        "<item><title>No link here</title><guid isPermaLink='false'>g3</guid></item>"
        "</channel></rss>"
    )
    return feed


def poll_events(url: str) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """What the poll and ingest appended: stream, type, key and data of every event."""
    store = EventStore(url)
    try:
        return [
            (e.stream, e.type, e.idempotency_key, e.data.model_dump(mode="json"))
            for e in store.read()
            if e.stream.startswith(("feed:", "article:"))
        ]
    finally:
        store.close()


def test_replay_and_a_daemon_poll_append_identical_events(tmp_path: Path) -> None:
    feed_file = write_feed(tmp_path / "feeds")
    replayed = f"sqlite:///{tmp_path / 'replay.db'}"
    assert main(["replay", str(feed_file), "--db", replayed, "--rules", str(RULES)]) == 1

    daemon_db = f"sqlite:///{tmp_path / 'daemon.db'}"
    feed = FeedConfig(name="wire", url=feed_file.resolve().as_uri())
    runtime = Runtime(Settings(db=daemon_db, rules_dir=RULES, feeds=[feed]))
    try:
        runtime.leases.ensure([feed])
        run = runtime.run_feed(feed, force=True)
        assert run is not None and run.outcome.ok
    finally:
        runtime.close()

    from_replay, from_daemon = poll_events(replayed), poll_events(daemon_db)
    assert from_replay == from_daemon
    types = [t for _, t, _, _ in from_replay]
    assert types.count("FeedPolled") == 1 and "ArticleExtracted" in types
    assert "ArticleFailed" in types  # the missing page, recorded the same way on both paths
    assert "EntrySkipped" in types  # the entry without a link, likewise


def test_a_poll_told_to_stop_keeps_what_it_fetched_and_is_read_whole_next_time(
    tmp_path: Path,
) -> None:
    with TestServer() as server:
        items = "".join(
            f"<item><title>Shelling {n}</title><link>{server.base}/p/{n}</link><guid>s{n}</guid>"
            f"<pubDate>Fri, 0{n + 1} Oct 2020 10:00:00 GMT</pubDate></item>"
            for n in range(4)
        )
        rss = f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}'
        server.route("/feed.xml", Reply(200, (rss + "</channel></rss>").encode(), {"ETag": '"1"'}))
        for n in range(4):
            body = PAGE.replace("14 soldiers", f"{n + 20} soldiers").encode()
            server.route(f"/p/{n}", Reply(200, body, {"Content-Type": "text/html"}))
        feed = FeedConfig(name="wire", url=f"{server.base}/feed.xml")
        settings = Settings(
            db=f"sqlite:///{tmp_path / 'm.db'}",
            rules_dir=RULES,
            feeds=[feed],
            fetch={"allow_networks": ["127.0.0.1/32"]},
        )
        runtime = Runtime(settings)
        asked = 0

        def stopping() -> bool:  # asked before each article's fetch: stop after the first
            nonlocal asked
            asked += 1
            return asked > 1

        try:
            runtime.leases.ensure([feed])
            stopped = runtime.run_feed(feed, force=True, stopping=stopping)
            assert stopped is not None and not stopped.outcome.complete and stopped.recorded
            assert [r.status for r in stopped.results] == ["extracted"]
            with runtime.store.read_session() as session:
                row = session.get(FeedLease, feed.name)
                assert row is not None and row.etag is None  # no validators: read whole again
            again = runtime.run_feed(feed, force=True)
        finally:
            runtime.close()
        feed_asks = [r for r in server.requests if r.path == "/feed.xml"]
    assert again is not None and again.outcome.complete and not again.outcome.not_modified
    assert "if-none-match" not in {k.lower() for k in feed_asks[-1].headers}
    assert [r.status for r in again.results] == ["skipped"] + ["extracted"] * 3


def test_a_daemon_poll_reads_its_articles_histories_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll reads what the log says of its articles (to count the new ones) and hands
    it to ingest, which does not read it again."""
    feed_file = write_feed(tmp_path / "feeds")
    feed = FeedConfig(name="wire", url=feed_file.resolve().as_uri())
    runtime = Runtime(Settings(db=f"sqlite:///{tmp_path / 'd.db'}", rules_dir=RULES, feeds=[feed]))
    reads: list[int] = []

    def counted(store: EventStore, article_ids: Sequence[str]) -> dict[str, History]:
        reads.append(len(article_ids))
        return article_histories(store, article_ids)

    monkeypatch.setattr(polling, "article_histories", counted)
    monkeypatch.setattr(pipeline, "article_histories", counted)
    try:
        runtime.leases.ensure([feed])
        run = runtime.run_feed(feed, force=True)
        assert run is not None and run.outcome.ok and len(run.results) == 2
        assert reads == [2]
        again = runtime.run_feed(feed, force=True)  # read again: the log has changed since
        assert again is not None and again.results[0].reason == "already extracted"
        assert reads == [2, 2]
    finally:
        runtime.close()


def test_a_poll_that_raises_backs_off_instead_of_being_due_again_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error inside a poll counts as the feed's failure: released still due,
    the shared queue would hand the same feed out again and again."""
    feed = FeedConfig(name="wire", url=write_feed(tmp_path / "feeds").resolve().as_uri())
    runtime = Runtime(Settings(db=f"sqlite:///{tmp_path / 'd.db'}", rules_dir=RULES, feeds=[feed]))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the poll")

    monkeypatch.setattr(polling, "poll", broken)
    try:
        runtime.leases.ensure([feed])
        lease = runtime.leases.claim(feed)
        assert lease is not None
        with pytest.raises(RuntimeError, match="a bug in the poll"):
            runtime.run_feed(feed, lease=lease)
        assert runtime.leases.claim(feed) is None  # not due again at once
        with runtime.store.read_session() as session:
            row = session.get(FeedLease, feed.name)
        assert row is not None and row.owner is None
        assert row.consecutive_failures == 1 and row.last_error_kind == "internal"
        assert "a bug in the poll" in (row.last_error or "")
    finally:
        runtime.close()
