"""Fuzzed feed bytes into the feed parser and the real poll: no exception escapes.

Whatever the bytes (well-formed RSS and Atom with hostile fields, entities, wrong encoding
declarations, truncations, raw binary), parsing yields items or a ``FeedError``, and a poll
records ``FeedPolled``/``FeedFailed``/``EntrySkipped`` and returns; ingesting what it found
records each article as extracted or failed. Kept quick: few examples, no deadline.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import FeedConfig
from monitor.pipeline import ingest_item
from monitor.sources.feeds import FeedError, parse_feed
from monitor.sources.fetch import Fetched, FetchLimits, new_client
from monitor.sources.polling import poll
from monitor.store.log import EventStore

# Fuzzing runs long by design: with the crash loops in `make test-slow` (and in CI).
pytestmark = pytest.mark.slow

LINKS = [
    "pages/a.html",
    "../outside.html",
    "file:/etc/passwd",
    "file://localhost/etc/passwd",
    "file:///dev/zero",
    "http://127.0.0.1:1/closed",
    "http://127.0.0.2:1/internal",
    "javascript:alert(1)",
    "//evil.example/x",
    "data:text/html,hi",
    "http://%zz/",
    "http://[::1",
    "",
    " ",
]
DATES = [
    "Fri, 02 Oct 2020 10:00:00 GMT",
    "2020-10-02T10:00:00Z",
    "0000-00-00",
    "Mon, 99 Foo 99999 99:99:99",
    "9999999999999999999",
    "Seg, 24 Set 2018 19:42:40 -0300",
]
ENTITIES = ["&amp;", "&lt;", "&#0;", "&#x110000;", "&#xD800;", "&foo;", "&#65;", "&"]
ENCODINGS = ["utf-8", "iso-8859-1", "utf-16", "windows-1252", "no-such-charset", "ebcdic"]

words = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
field = st.one_of(
    words.map(escape),  # text as a careful writer escapes it
    words,  # and as a careless one does not
    st.lists(st.sampled_from(ENTITIES), max_size=4).map("".join),
)


@st.composite
def entry(draw: st.DrawFn, atom: bool) -> str:
    title = draw(field)
    link = draw(st.one_of(st.sampled_from(LINKS), field))
    date = draw(st.one_of(st.sampled_from(DATES), field))
    guid = draw(st.one_of(st.none(), field))
    if atom:
        parts = [f"<title>{title}</title>", f'<link href="{escape(link, {chr(34): "&quot;"})}"/>']
        parts += [f"<updated>{date}</updated>"] + ([f"<id>{guid}</id>"] if guid else [])
        body = "".join(draw(st.permutations(parts)))
        return f"<entry>{body}</entry>"
    parts = [f"<title>{title}</title>", f"<link>{link}</link>", f"<pubDate>{date}</pubDate>"]
    if guid is not None:
        parts.append(
            f'<guid isPermaLink="{draw(st.sampled_from(["true", "false"]))}">{guid}</guid>'
        )
    kept = draw(st.lists(st.sampled_from(parts), unique=True))
    return f"<item>{''.join(kept)}<description>{draw(field)}</description></item>"


@st.composite
def feed_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["rss", "atom", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=600))
    atom = kind == "atom"
    entries = "".join(draw(st.lists(entry(atom), max_size=5)))
    encoding = draw(st.sampled_from(ENCODINGS))
    if atom:
        doc = f'<feed xmlns="http://www.w3.org/2005/Atom"><title>{draw(field)}</title>{entries}</feed>'
    else:
        doc = f'<rss version="2.0"><channel><title>{draw(field)}</title>{entries}</channel></rss>'
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if draw(st.booleans()) else ""
    try:
        data = (declaration + doc).encode(encoding, errors="replace")
    except LookupError:
        data = (declaration + doc).encode("utf-8")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # cut off mid-document
    return data


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=feed_bytes())
def test_parse_feed_returns_items_or_a_feed_error(data: bytes) -> None:
    doc = Fetched(url="http://wire.example/feed", final_url="http://wire.example/feed", body=data)
    try:
        parsed = parse_feed(doc, "fuzz")
    except FeedError:
        return
    for item in parsed.items:
        assert item.url and item.article_id
        assert item.published is None or item.published.tzinfo is not None
    assert all(s.reason and s.key for s in parsed.skipped)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "feeds" / "pages").mkdir(parents=True)
    (root / "feeds" / "pages" / "a.html").write_text(
        "<html><body><article><p>Officials said 3 soldiers were killed on Monday, "
        "residents said.</p><p>Shelling went on through the night.</p></article></body></html>"
    )
    (root / "outside.html").write_text("<html><body><p>outside the feed folder</p></body></html>")
    yield root


@FUZZ
@given(data=feed_bytes())
def test_polling_and_ingesting_fuzzed_feeds_never_raises(folder: Path, data: bytes) -> None:
    feed_file = folder / "feeds" / "fuzz.xml"
    feed_file.write_bytes(data)
    store = EventStore(f"sqlite:///{folder / 'log.db'}")
    limits = FetchLimits(connect_timeout=1, read_timeout=1, total_timeout=2, max_bytes=100_000)
    try:
        with new_client(limits) as client:
            feed = FeedConfig(name="fuzz", url=feed_file.as_uri())
            items, outcome, _ = poll(store, feed, None, limits=limits, client=client)
            assert outcome.ok or outcome.error
            for item in items:
                result = ingest_item(store, item, [], limits=limits, client=client)
                assert result.status in ("extracted", "failed", "skipped")
        types = {e.type for e in store.read()}
        assert types <= {
            "FeedPolled",
            "FeedFailed",
            "EntrySkipped",
            "ArticleDiscovered",
            "ArticleFetched",
            "ArticleExtracted",
            "ArticleFailed",
        }
        assert not any(
            e.type == "ArticleExtracted" and "root:" in e.data.text  # type: ignore[union-attr]
            for e in store.read()
        )
    finally:
        store.close()


def laughs(levels: int) -> bytes:
    """The billion laughs: each entity ten of the one before."""
    decls = "".join(
        f'<!ENTITY e{i} "{("&e" + str(i - 1) + ";") * 10 if i else "lol"}">' for i in range(levels)
    )
    top = f"&e{levels - 1};"
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [{decls}]><rss version="2.0"><channel>'
        f"<title>{top}</title><item><title>{top}</title><link>http://wire.example/a</link>"
        "</item></channel></rss>"
    ).encode()


def test_entity_bombs_and_xxe_are_inert_and_cheap() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>&x;</title><item><title>&x;</title>'
        b"<link>http://wire.example/b</link></item></channel></rss>"
    )
    for body in (laughs(10), xxe):
        doc = Fetched(url="http://wire.example/f", final_url="http://wire.example/f", body=body)
        tracemalloc.start()
        started = time.monotonic()
        try:
            parsed = parse_feed(doc, "bomb")
            took = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        [item] = parsed.items
        assert item.url.startswith("http://wire.example/")
        assert len(item.title or "") < 100 and "root:" not in (item.title or "")
        assert took < 1.0 and peak < 20 * 2**20, (took, peak)
