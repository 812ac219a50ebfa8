"""What ``monitor replay`` and ``monitor extract`` accept: feed URLs, dated and undated text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitor.events import ArticleDiscovered, ArticleExtracted, FeedPolled
from monitor.extract.text import split_header
from monitor.store.log import EventStore
from tests.conftest import RULES, SEEDS
from tests.support.cli import run_cli
from tests.support.httpserver import TestServer

BODY = "The Ruritanian defence ministry said 31 soldiers had been killed since Sunday."
DATED = f"Title: Toll rises in the border war\nPublished: 2020-10-01 09:30\n\n{BODY}\n"


def events(db: str) -> list:
    store = EventStore(db)
    try:
        return [e.data for e in store.read()]
    finally:
        store.close()


def test_replay_reads_a_feed_over_http(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with TestServer(SEEDS) as server:
        url = f"{server.base}/feeds/ap.xml"
        proc = run_cli("replay", url, "--db", db, "--rules", str(RULES), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert "replayed 1 feeds, 1 articles (1 extracted)" in proc.stderr
    assert any(json.loads(line)["rule"] for line in proc.stdout.splitlines())
    logged = events(db)
    [polled] = [e for e in logged if isinstance(e, FeedPolled)]
    assert polled.url == url and polled.feed == url.removeprefix("http://")
    [page] = [e for e in logged if isinstance(e, ArticleExtracted)]
    assert page.url == f"{server.base}/pages/ap/002_544d5ff0b48e60d1.html"


def test_a_text_header_dates_and_titles_the_article(tmp_path: Path) -> None:
    dated, undated = tmp_path / "dated.txt", tmp_path / "undated.txt"
    dated.write_text(DATED)
    undated.write_text(BODY.replace("31", "32"))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    proc = run_cli("replay", str(undated), str(dated), "--db", db, "--rules", str(RULES))
    assert proc.returncode == 0, proc.stderr
    assert f"undated: {undated.resolve().as_uri()}" in proc.stderr
    assert f"undated: {dated.resolve().as_uri()}" not in proc.stderr
    assert "2 articles (2 extracted, 1 undated)" in proc.stderr
    extracted = {e.url: e for e in events(db) if isinstance(e, ArticleExtracted)}
    article = extracted[dated.resolve().as_uri()]
    assert article.published == datetime(2020, 10, 1, 9, 30, tzinfo=UTC)
    assert article.title == "Toll rises in the border war"
    assert article.text == BODY  # the header is not part of the text the facts cite
    assert extracted[undated.resolve().as_uri()].published is None
    discovered = [e for e in events(db) if isinstance(e, ArticleDiscovered)]
    assert {d.title for d in discovered} == {"Toll rises in the border war", "undated"}


def test_published_flag_dates_article_files(tmp_path: Path) -> None:
    article = tmp_path / "a.txt"
    article.write_text(BODY)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    proc = run_cli("replay", str(article), "--db", db, "--published", "24 October 2020")
    assert proc.returncode == 0 and "undated" not in proc.stderr, proc.stderr
    [extracted] = [e for e in events(db) if isinstance(e, ArticleExtracted)]
    assert extracted.published == datetime(2020, 10, 24, tzinfo=UTC)
    bad = run_cli("replay", str(article), "--db", db, "--published", "someday soon-ish")
    assert bad.returncode == 2 and "--published 'someday soon-ish': not a date" in bad.stderr


def test_extract_reports_the_date_and_flags_undated_files(tmp_path: Path) -> None:
    dated, undated = tmp_path / "dated.txt", tmp_path / "undated.txt"
    dated.write_text(DATED)
    undated.write_text(BODY)
    proc = run_cli("extract", str(dated), str(undated), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    when = {r["file"]: r["published"] for r in rows}
    assert when == {str(dated): "2020-10-01T09:30:00+00:00", str(undated): None}
    assert f"{undated}: undated" in proc.stderr and f"{dated}: undated" not in proc.stderr
    flagged = run_cli("extract", str(undated), "--published", "2020-10-02", "--format", "jsonl")
    assert "undated" not in flagged.stderr
    assert {json.loads(x)["published"] for x in flagged.stdout.splitlines()} == {
        "2020-10-02T00:00:00+00:00"
    }


def test_only_a_block_of_known_keys_at_the_top_is_a_header() -> None:
    header, text = split_header("Date: 1 Oct 2020\nTitle: Talks\n\nBody here.")
    assert (header.title, header.published, text) == (
        "Talks",
        datetime(2020, 10, 1, tzinfo=UTC),
        "Body here.",
    )
    for prose in (
        "Note: the talks failed.\n\nMore text.",
        "The talks failed.\nPublished: 2020-10-01\n\nMore.",
        "Title: a title with no blank line after it",
    ):
        header, text = split_header(prose)
        assert header.title is None and header.published is None and text == prose
    header, text = split_header("Published: not a date at all\n\nBody.")
    assert header.published is None and text == "Body."


def test_a_feed_files_links_stay_in_its_directory_unless_widened(tmp_path: Path) -> None:
    """The seed feeds link to ../pages: outside the feed's folder, so named explicitly."""
    feed = SEEDS / "feeds" / "ap.xml"
    alone = run_cli("replay", str(feed), "--db", f"sqlite:///{tmp_path / 'a.db'}")
    assert alone.returncode == 1
    assert "refused: file: link outside the feed's directory" in alone.stderr
    assert "--files-under" in alone.stderr  # the way out is named where the refusal is
    widened = run_cli(
        "replay", str(feed), "--files-under", str(SEEDS), "--db", f"sqlite:///{tmp_path / 'b.db'}"
    )
    assert widened.returncode == 0, widened.stderr
    assert "1 articles (1 extracted)" in widened.stderr
