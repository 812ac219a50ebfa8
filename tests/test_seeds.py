"""The offline seed fixtures: verbatim articles, the feeds and pages built from them.

These fixtures stand in for the network in end-to-end runs, so they must stay reproducible
(build.py output is committed), parseable (feedparser without bozo) and honest (trafilatura
gets the whole article body back and none of the page clutter).
"""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

import feedparser
import lxml.html
import pytest

from monitor.extract.text import article_text

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
GENERATED = ("feeds", "pages")

# Recorded once from the verbatim copies: the seeds are never edited, only wrapped.
TXT_SHA256 = {
    "000_81398aff7cddd8a7": "99978151d2673e35feb194ef7a36fa294303268dd90f810802fd2154aaa7c8a8",
    "001_7f5d40a5f4979764": "3918a119f37a07d5c832b2ab904295c02b6a1edb7216835d35a2d8938e052015",
    "002_544d5ff0b48e60d1": "99a816e8bb27d604f60517e0f17f871e5c0d8c6a075a670fd23489ebd9ddf56e",
}

FEEDS = {
    "ap.xml": ("rss20", "002_544d5ff0b48e60d1", (2020, 9, 30, 14, 32)),
    "rferl.xml": ("atom10", "001_7f5d40a5f4979764", (2020, 10, 24, 16, 5)),
    "levant-wire.xml": ("rss20", "000_81398aff7cddd8a7", (2020, 10, 24, 21, 40)),
}
PAGES = {
    "002_544d5ff0b48e60d1": "pages/ap/002_544d5ff0b48e60d1.html",
    "001_7f5d40a5f4979764": "pages/rferl/001_7f5d40a5f4979764.html",
    "000_81398aff7cddd8a7": "pages/levant-wire/000_81398aff7cddd8a7.html",
}

# Scraping artefacts in the .txt files that the pages render as markup, not as paragraphs.
VIDEO_FALLBACK = "Your browser doesn’t support HTML5"
DATELINE = re.compile(r"^date \d{4}-\d{2}-\d{2} ")
CAPTION_START = "Damage is seen inside an apartment building"

# Page chrome that must never reach the article text. Each string is also checked to be in
# the page, so that a renamed banner cannot make this test pass vacuously.
CLUTTER_COMMON = (
    "Skip to main content",
    "We use cookies to keep this site working",
    "Manage preferences",
    "Related stories",
    "Share on Facebook",
    "Email this story",
    "Copy link",
    "Subscribe",
    "All rights reserved",
    "Privacy policy",
    "Advertise with us",
)
CLUTTER = {
    "002_544d5ff0b48e60d1": (
        "Entertainment",
        "AP Morning Wire",
        "Reader comments are closed",
        "Harvest festival returns to river towns",
        "Astronomers spot a faint ring",
    ),
    "001_7f5d40a5f4979764": (
        "Central Asia",
        "The Week Ahead",
        "Comments are moderated",
        "Tram drivers in a regional capital strike",
        "Chess prodigy, 12, wins national junior title",
    ),
    "000_81398aff7cddd8a7": (
        "Opinion",
        "Evening Digest",
        "Be the first to comment",
        "Olive harvest begins early",
        "late goal sends the capital's club top of the table",
    ),
}


def squash(text: str) -> str:
    """Whitespace-insensitive form: extraction may rewrap lines, but must not alter words."""
    return " ".join(text.split())


def body_paragraphs(stem: str) -> list[str]:
    """The article's own paragraphs, read straight from the .txt (not via build.py)."""
    text = (SEEDS / f"{stem}.txt").read_text(encoding="utf-8")
    paragraphs: list[str] = []
    for line in (line.strip() for line in text.split("\n")):
        if line.startswith(CAPTION_START):
            break
        if not line or line == VIDEO_FALLBACK:
            continue
        paragraphs.append(DATELINE.sub("", line))
    return paragraphs


def extracted(stem: str) -> str:
    page = SEEDS / PAGES[stem]
    return article_text(page.read_bytes(), url=page.as_uri()).text


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for top in GENERATED
        for path in sorted((root / top).rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("stem", sorted(TXT_SHA256))
def test_seed_text_is_unchanged(stem: str) -> None:
    digest = hashlib.sha256((SEEDS / f"{stem}.txt").read_bytes()).hexdigest()
    assert digest == TXT_SHA256[stem]


def test_build_reproduces_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SEEDS / "build.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    built, committed = tree_files(tmp_path), tree_files(SEEDS)
    assert sorted(built) == sorted(committed)
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"rerun python seeds/build.py: {stale} differ"


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_feed_parses_with_one_entry_pointing_at_its_page(name: str) -> None:
    version, stem, published = FEEDS[name]
    feed_file = SEEDS / "feeds" / name
    parsed = feedparser.parse(feed_file.read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == version
    assert len(parsed.entries) == 1
    entry = parsed.entries[0]
    assert entry.title and entry.get("summary")
    assert stem in entry.id
    assert tuple(entry.published_parsed[:5]) == published
    # Relative, so the same tree works over file:// and HTTP; the consumer resolves it.
    assert not urlparse(entry.link).scheme
    target = urljoin(feed_file.as_uri(), entry.link)
    assert Path(url2pathname(urlparse(target).path)) == SEEDS / PAGES[stem]
    assert (SEEDS / PAGES[stem]).is_file()
    assert urljoin("http://127.0.0.1:8000/feeds/" + name, entry.link).endswith(PAGES[stem])


@pytest.mark.parametrize("stem", sorted(PAGES))
def test_page_text_holds_every_body_paragraph(stem: str) -> None:
    text = squash(extracted(stem))
    paragraphs = body_paragraphs(stem)
    assert len(paragraphs) >= 15
    missing = [p for p in paragraphs if squash(p) not in text]
    assert not missing


@pytest.mark.parametrize("stem", sorted(PAGES))
def test_page_text_holds_no_clutter(stem: str) -> None:
    page = html.unescape((SEEDS / PAGES[stem]).read_text(encoding="utf-8"))
    text = extracted(stem)
    for clutter in (*CLUTTER_COMMON, *CLUTTER[stem]):
        assert clutter in page, f"clutter check is stale: {clutter!r} not in page"
        assert clutter not in text


@pytest.mark.parametrize("stem", sorted(PAGES))
def test_page_title_matches_feed_title(stem: str) -> None:
    name = next(feed for feed, (_, s, _) in FEEDS.items() if s == stem)
    entry = feedparser.parse((SEEDS / "feeds" / name).read_bytes()).entries[0]
    page = SEEDS / PAGES[stem]
    assert article_text(page.read_bytes(), url=page.as_uri()).title == entry.title


def test_artefacts_are_rendered_as_markup() -> None:
    """The scrape's odd lines come from markup: a dateline, video fallback, photo captions."""
    ap = lxml.html.fromstring((SEEDS / PAGES["002_544d5ff0b48e60d1"]).read_bytes())
    assert ap.xpath('//time[@datetime="2020-09-30"]')
    first = ap.xpath("//article//p[not(ancestor::header)]")[0].text_content()
    assert first.startswith("On Wednesday, Pashinyan said")
    figures = ap.xpath("//article//figure[img[@src and @alt] and figcaption]")
    txt = (SEEDS / "002_544d5ff0b48e60d1.txt").read_text(encoding="utf-8")
    assert len(figures) == txt.count(" Credit: ") // 2 == 9

    rferl = lxml.html.fromstring((SEEDS / PAGES["001_7f5d40a5f4979764"]).read_bytes())
    videos = rferl.xpath("//article//video")
    assert len(videos) == 1 and VIDEO_FALLBACK in videos[0].text_content()
