"""``monitor replay`` over inputs that fail: a non-zero exit, a summary, nothing dropped quietly."""

from __future__ import annotations

from pathlib import Path

from monitor.store.log import EventStore
from tests.conftest import RULES, shared_dir
from tests.support.cli import run_cli

ARTICLE = "Ruritanian officials said 9 soldiers were killed near the border on Monday."


def events_of(db: str, type_: str) -> list:
    store = EventStore(db)
    try:
        return [e.data for e in store.read(types=[type_])]
    finally:
        store.close()


def replay(db: str, *paths: Path) -> tuple[int, str]:
    proc = run_cli("replay", *map(str, paths), "--db", db, "--rules", str(RULES))
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


def test_a_feed_without_entries_fails_the_replay_with_a_summary(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text(ARTICLE)
    junk = tmp_path / "junk.xml"
    junk.write_bytes(b"<html><body>this is not a feed</body></html>")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    code, err = replay(db, tmp_path / "good.txt", junk)
    assert code == 1
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("replayed 1 feeds, 1 articles (1 extracted, 1 undated)"), summary
    assert "1 inputs FAILED" in summary
    assert f"failed: feed {junk.as_uri()}: " in err and "no feed entries" in err
    assert [f.feed for f in events_of(db, "FeedFailed")] == ["junk"]


def test_a_clean_replay_exits_zero_and_says_what_it_read(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(ARTICLE)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    code, err = replay(db, tmp_path / "a.txt")
    assert code == 0 and "FAILED" not in err
    assert "replayed 0 feeds, 1 articles (1 extracted, 1 undated)" in err
    # Again into the same log: nothing new, still a success.
    code, err = replay(db, tmp_path / "a.txt")
    assert code == 0 and "1 articles (1 already in the log" in err


def test_entries_without_a_link_are_recorded_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "a.html").write_text(
        f"<html><body><article><p>{ARTICLE}</p><p>{ARTICLE}</p></article></body></html>"
    )
    feed = tmp_path / "wire.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        "<item><title>Linked</title><link>pages/a.html</link><guid>g1</guid></item>"
        "<item><title>Bulletin without a page</title><guid isPermaLink='false'>g2</guid></item>"
        "<item><description>Neither a link nor a title</description></item>"
        "</channel></rss>"
    )
    db = f"sqlite:///{tmp_path / 'r.db'}"
    code, err = replay(db, feed)
    assert code == 0, err
    assert "(2 entries without a link skipped)" in err
    skipped = events_of(db, "EntrySkipped")
    assert {(s.guid, s.title) for s in skipped} == {
        ("g2", "Bulletin without a page"),
        (None, None),
    }
    assert all(s.reason == "entry has no link" and s.feed == "wire" for s in skipped)
    replay(db, feed)  # the same feed again: the same entries are not recorded twice
    assert len(events_of(db, "EntrySkipped")) == 2


def test_a_failed_article_fails_the_replay(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("   \n\n  ")
    (tmp_path / "ok.txt").write_text(ARTICLE)
    code, err = replay(
        f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "empty.txt", tmp_path / "ok.txt"
    )
    assert code == 1
    assert f"failed: article {(tmp_path / 'empty.txt').resolve().as_uri()}: empty text" in err
    assert "2 articles (1 extracted, 1 failed, 1 undated)" in err


def test_feedparser_fixtures_fail_loudly_and_keep_linkless_entries(tmp_path: Path) -> None:
    """feedparser's own suite holds feeds with no entries and entries with no link."""
    root = shared_dir("peer", "feedparser", "tests")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    code, err = replay(db, root)
    assert code == 1 and "inputs FAILED" in err.strip().splitlines()[-1]
    assert len(events_of(db, "EntrySkipped")) > 10
    assert events_of(db, "FeedFailed")
