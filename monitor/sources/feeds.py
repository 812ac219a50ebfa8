"""Feeds to items: feedparser reads RSS and Atom; we resolve links and normalise dates.

feedparser tolerates ill-formed feeds and sets ``bozo``; we accept a bozo feed when it still
yields entries (as readers do), and report it as an error only when it yields none.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlparse

import dateparser
import feedparser
from pydantic import BaseModel

from monitor.sources.fetch import Fetched


class FeedError(ValueError):
    """The document is not a feed we can read."""


class FeedItem(BaseModel):
    """One entry of a feed: what the pipeline needs to fetch and cite an article."""

    feed: str
    url: str
    guid: str | None = None
    title: str | None = None
    published: datetime | None = None
    outlet: str | None = None
    # Where a file: link of this item may point (set only for items of a local feed file, or
    # an article file named by the operator); None: the item's URL must be http(s).
    file_root: Path | None = None

    @property
    def article_id(self) -> str:
        return article_id(self.guid or self.url)


class SkippedEntry(BaseModel):
    """An entry that yields no item, and why."""

    key: str  # stable across polls of the same entry: its guid, or a hash of what it holds
    guid: str | None = None
    title: str | None = None
    reason: str


class ParsedFeed(BaseModel):
    items: list[FeedItem]
    skipped: list[SkippedEntry] = []


def article_id(identity: str) -> str:
    """A short stable id from the item's guid (or URL when it has none)."""
    return hashlib.sha256(identity.strip().encode("utf-8")).hexdigest()[:16]


def parse_feed(
    doc: Fetched, feed_name: str, outlet: str | None = None, file_root: Path | None = None
) -> ParsedFeed:
    """The entries of a feed document as items (``file_root`` passed on to each), and the
    entries that cannot be items, with the reason."""
    # Links are resolved here with urljoin: feedparser mangles file:// bases (file://host/...).
    headers = {"content-type": doc.content_type} if doc.content_type else {}
    try:
        body = _valid_char_refs(_without_internal_subset(doc.body))
        # No HTML sanitizing, no resolving of links inside entries' HTML: what we take from
        # an entry (title, link, dates) is escaped wherever it is shown, and the HTML of
        # summaries and contents is not used. Together they were 60% of parsing a feed whose
        # entries carry HTML (1.0 -> 0.4 ms an entry), done by the daemon for every changed feed.
        parsed = feedparser.parse(
            body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
        )
    except Exception as exc:  # feedparser has no error contract: any failure is "not a feed"
        raise FeedError(f"{doc.url}: unreadable feed ({type(exc).__name__}: {exc})") from exc
    if not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedError(f"{doc.url}: no feed entries" + (f" ({reason})" if reason else ""))
    title = outlet or parsed.feed.get("title") or urlparse(doc.url).netloc or feed_name
    result = ParsedFeed(items=[])
    for entry in parsed.entries:
        item = _item(entry, doc.final_url, feed_name, title, file_root)
        if isinstance(item, FeedItem):
            result.items.append(item)
        else:
            result.skipped.append(_skipped(entry, item))
    return result


_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*\[", re.I)
_SUBSET_END = re.compile(rb"\]\s*>")


def _without_internal_subset(body: bytes) -> bytes:
    """The DTD's internal subset dropped (``<!DOCTYPE rss [ ... ]>`` -> ``<!DOCTYPE rss>``).

    Feeds have no use for entity declarations; they are how entity bombs and XXE are made.
    expat stops a bomb, but only after inflating it to megabytes, and feedparser then retries
    the document with its loose parser; without the declarations neither happens."""
    start = _DOCTYPE.search(body, 0, 4096)
    if start is None:
        return body
    end = _SUBSET_END.search(body, start.end())
    rest = body[end.end() :] if end else b""
    return body[: start.end() - 1] + b">" + rest


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _valid_char_refs(body: bytes) -> bytes:
    """Character references to code points that cannot exist (NUL, surrogates, beyond
    U+10FFFF) become U+FFFD, as HTML does: feedparser would fail on the whole feed."""

    def fix(match: re.Match[bytes]) -> bytes:
        point = int(match[1], 16) if match[1] else int(match[2])
        if point == 0 or 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
            return b"&#xFFFD;"
        return match[0]

    return _CHAR_REF.sub(fix, body)


def _skipped(entry: dict, reason: str) -> SkippedEntry:
    guid = entry.get("id") or None
    title = entry.get("title") or None
    held = "\n".join(str(entry.get(k) or "") for k in ("title", "summary", "published", "link"))
    return SkippedEntry(key=article_id(guid or held), guid=guid, title=title, reason=reason)


def _item(
    entry: dict, base: str, feed_name: str, outlet: str, file_root: Path | None
) -> FeedItem | str:
    """The entry as an item, or why it cannot be one."""
    link = (entry.get("link") or _alternate(entry) or "").strip()
    guid = entry.get("id") or None
    if not link:
        return "entry has no link"
    try:
        url = urljoin(base, link)
    except ValueError as exc:  # e.g. "http://[::1": an unclosed IPv6 host
        return f"entry link {link[:200]!r} is not a URL ({exc})"
    return FeedItem(
        feed=feed_name,
        url=url,
        guid=guid,
        title=entry.get("title") or None,
        published=_date(entry.get("published_parsed"))
        or _date_text(entry.get("published") or entry.get("updated")),
        outlet=outlet,
        file_root=file_root,
    )


def _alternate(entry: dict) -> str | None:
    for link in entry.get("links", []):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link["href"]
    return None


def _date_text(raw: str | None) -> datetime | None:
    """Dates feedparser cannot read (other languages: "Seg, 24 Set 2018 19:42:40 -0300")."""
    if not raw:
        return None
    try:
        value = dateparser.parse(
            raw, settings={"RETURN_AS_TIMEZONE_AWARE": True, "TO_TIMEZONE": "UTC"}
        )
    except (ValueError, OverflowError, TypeError):
        return None
    return value.astimezone(UTC) if value else None


def _date(parsed) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None
