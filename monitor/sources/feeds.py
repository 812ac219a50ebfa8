"""Feeds to items: feedparser reads RSS and Atom; we resolve links and normalise dates.

feedparser tolerates ill-formed feeds and sets ``bozo``; we accept a bozo feed when it still
yields entries (as readers do), and report it as an error only when it yields none.
"""

from __future__ import annotations

import calendar
import hashlib
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
    summary: str | None = None
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
    parsed = feedparser.parse(doc.body, response_headers=headers)
    if not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedError(f"{doc.url}: no feed entries" + (f" ({reason})" if reason else ""))
    title = outlet or parsed.feed.get("title") or urlparse(doc.url).netloc or feed_name
    result = ParsedFeed(items=[])
    for entry in parsed.entries:
        item = _item(entry, doc.final_url, feed_name, title, file_root)
        if item is not None:
            result.items.append(item)
        else:
            result.skipped.append(_skipped(entry))
    return result


def _skipped(entry: dict) -> SkippedEntry:
    guid = entry.get("id") or None
    title = entry.get("title") or None
    held = "\n".join(str(entry.get(k) or "") for k in ("title", "summary", "published"))
    return SkippedEntry(
        key=article_id(guid or held), guid=guid, title=title, reason="entry has no link"
    )


def _item(
    entry: dict, base: str, feed_name: str, outlet: str, file_root: Path | None
) -> FeedItem | None:
    link = entry.get("link") or _alternate(entry)
    guid = entry.get("id") or None
    if not link:
        return None
    return FeedItem(
        feed=feed_name,
        url=urljoin(base, link),
        guid=guid,
        title=entry.get("title") or None,
        summary=entry.get("summary") or None,
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
