"""Article text: HTML pages to clean main text with trafilatura; plain text passes through.

Only this module knows trafilatura. It takes bytes as fetched (any encoding), so that a
wrongly declared charset or a binary blob becomes a clear error, never a crash upstream.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime

import trafilatura
from pydantic import BaseModel

# Pages larger than this are refused before parsing: lxml would need many times as much memory.
MAX_HTML_BYTES = 8 * 1024 * 1024


class TextError(ValueError):
    """The page held no article text we can use."""


class ArticleText(BaseModel):
    title: str | None = None
    text: str
    language: str | None = None
    published: datetime | None = None

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def decode(raw: bytes, declared: str | None = None) -> str:
    """Bytes to str: BOM, then the declared charset, then UTF-8, then cp1252 as last resort."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if raw.startswith(bom):
            return raw.decode(codec, errors="replace")
    for codec in (declared, "utf-8"):
        if not codec:
            continue
        try:
            return raw.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("cp1252", errors="replace")


def normalize_text(text: str) -> str:
    """NFC, unified line ends, no trailing blanks: the form every span offset refers to."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")


def from_plain(raw: bytes | str, declared: str | None = None) -> ArticleText:
    text = raw if isinstance(raw, str) else decode(raw, declared)
    if "\x00" in text:
        raise TextError("binary content, not text")
    text = normalize_text(text)
    if not text.strip():
        raise TextError("empty text")
    return ArticleText(text=text)


def from_html(raw: bytes | str, url: str | None = None, declared: str | None = None) -> ArticleText:
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_HTML_BYTES:
        raise TextError(f"page of {size} bytes exceeds the {MAX_HTML_BYTES}-byte limit")
    html = raw if isinstance(raw, str) else decode(raw, declared)
    if "\x00" in html:
        raise TextError("binary content, not HTML")
    doc = trafilatura.bare_extraction(
        html,
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        with_metadata=True,
        deduplicate=False,
    )
    if doc is None or not (doc.text or "").strip():
        raise TextError("no main text found in page")
    return ArticleText(
        title=doc.title or None,
        text=normalize_text(doc.text),
        language=doc.language or None,
        published=_parse_date(doc.date),
    )


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def looks_like_html(raw: bytes | str, content_type: str | None = None) -> bool:
    if content_type:
        return "html" in content_type.lower()
    head = (raw[:2048] if isinstance(raw, str) else raw[:2048].decode("latin-1")).lower()
    return "<html" in head or "<!doctype html" in head or "<body" in head or "<p>" in head


def article_text(
    raw: bytes | str, *, url: str | None = None, content_type: str | None = None
) -> ArticleText:
    """The one entry point: HTML goes through trafilatura, anything else is plain text."""
    declared = _charset(content_type)
    if looks_like_html(raw, content_type):
        return from_html(raw, url=url, declared=declared)
    return from_plain(raw, declared)


def _charset(content_type: str | None) -> str | None:
    if not content_type or "charset=" not in content_type.lower():
        return None
    return content_type.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"') or None
