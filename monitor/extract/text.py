"""Article text: HTML pages to clean main text (``monitor.extract.html``); plain text passes
through.

It takes bytes as fetched (any encoding), so that a wrongly declared charset or a binary blob
becomes a clear error, never a crash upstream. The models and the decoding here are light: the
daemon's own process uses them, while only the extraction workers load trafilatura.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from datetime import UTC, datetime

import dateparser
from pydantic import BaseModel


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
    """Bytes to str: BOM, then the declared charset, then UTF-8 or cp1252 by the bytes' shape.

    Bad bytes become U+FFFD where they stand; they never switch the whole page to another
    charset. Without a declaration, text is UTF-8 when its valid multi-byte sequences outnumber
    its invalid ones (a stray byte in a UTF-8 page), else cp1252 (a legacy page, whose accented
    letters almost never form valid UTF-8).
    """
    return _decode(raw, declared)[0]


def _decode(raw: bytes, declared: str | None) -> tuple[str, str]:
    """`decode`, and the codec it used."""
    for bom, marked in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if raw.startswith(bom):
            return raw.decode(marked, errors="replace"), marked
    charset = charset_codec(declared)
    if charset is not None:
        try:
            return raw.decode(charset, errors="replace"), charset
        except LookupError:
            pass  # a codec that is not a charset (base64, rot13) declared as one
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if not bad:
        return text, "utf-8"
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    return (text, "utf-8") if good > bad else (raw.decode("cp1252", errors="replace"), "cp1252")


def charset_codec(name: str | None) -> str | None:
    """The Python codec for a declared charset name, or None when it names none."""
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]{1,40})""", re.I
)


def sniff_charset(raw: bytes) -> str | None:
    """The charset an HTML page declares in a ``<meta>`` near its top, if any."""
    match = _META_CHARSET.search(raw[:4096])
    return match[1].decode("ascii") if match else None


# A body with this share of NULs and other control characters is binary, not text (random
# bytes have about 13 %; real pages next to none).
BINARY_SHARE = 0.05
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


# Codecs in which each byte below 0x80 is that ASCII character and nothing else is: there,
# the bytes hold exactly the text's control characters, and bytes are quicker to count.
_ASCII_SAFE = re.compile(r"utf-8|ascii|latin-1|iso8859-\d+|cp125\d")
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, *range(0x0E, 0x20), 0x7F])


def clean(text: str, what: str, raw: bytes | None = None) -> str:
    """NULs dropped (one stray NUL must not cost the article); binary content refused.
    `raw`: the bytes `text` was decoded from, when their codec is ASCII-safe (counted there)."""
    if raw is not None:
        controls = len(raw) - len(raw.translate(None, _CONTROL_BYTES))
    else:
        controls = len(_CONTROL.findall(text))
    if controls > BINARY_SHARE * len(text):
        raise TextError(f"binary content, not {what}")
    return text.replace("\x00", "") if controls else text


def decode_checked(raw: bytes | str, declared: str | None, what: str) -> str:
    """The text of `raw`, decoded (`decode`) and cleaned (`clean`)."""
    if isinstance(raw, str):
        return clean(raw, what)
    text, codec = _decode(raw, declared)
    return clean(text, what, raw if _ASCII_SAFE.fullmatch(codec) else None)


def normalize_text(text: str) -> str:
    """NFC, unified line ends, no trailing blanks: the form every span offset refers to."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n")


class TextHeader(BaseModel):
    """What a plain-text article may say about itself in a header block at its top."""

    title: str | None = None
    published: datetime | None = None


_HEADER_LINE = re.compile(r"^(title|published|date)[ \t]*:[ \t]*(\S.*?)\s*$", re.I)
MAX_HEADER_LINES = 8


def split_header(text: str) -> tuple[TextHeader, str]:
    """A header block (``Title: ...``, ``Published: 2020-10-01``; ``Date:`` means the same)
    as the first lines of a text, ended by a blank line; and the text after it. A text that
    does not start so has no header and is returned whole."""
    lines = text.split("\n", MAX_HEADER_LINES + 1)
    fields: dict[str, str] = {}
    for index, line in enumerate(lines[: MAX_HEADER_LINES + 1]):
        if not line.strip():
            if not fields:
                break
            header = TextHeader(
                title=fields.get("title"),
                published=parse_published(fields.get("published") or fields.get("date") or ""),
            )
            return header, "\n".join(lines[index + 1 :]).lstrip("\n")
        match = _HEADER_LINE.match(line)
        if match is None:
            break
        fields[match[1].lower()] = match[2]
    return TextHeader(), text


def parse_published(value: str) -> datetime | None:
    """A publication date as people write it (ISO, "1 October 2020", ...), in UTC."""
    value = value.strip()
    if not value:
        return None
    when: datetime | None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = dateparser.parse(
                value,
                settings={"RETURN_AS_TIMEZONE_AWARE": True, "TIMEZONE": "UTC"},
            )
        except (ValueError, OverflowError, TypeError):
            when = None
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def from_plain(raw: bytes | str, declared: str | None = None) -> ArticleText:
    text = decode_checked(raw, declared, "text")
    header, text = split_header(normalize_text(text))
    if not text.strip():
        raise TextError("empty text")
    return ArticleText(text=text, title=header.title, published=header.published)


def looks_like_html(raw: bytes | str, content_type: str | None = None) -> bool:
    if content_type:
        return "html" in content_type.lower()
    head = (raw[:2048] if isinstance(raw, str) else raw[:2048].decode("latin-1")).lower()
    return "<html" in head or "<!doctype html" in head or "<body" in head or "<p>" in head


def article_text(
    raw: bytes | str,
    *,
    url: str | None = None,
    content_type: str | None = None,
    metadata: bool = True,
) -> ArticleText:
    """The one entry point: HTML goes through trafilatura, anything else is plain text.
    `metadata`: read the page's own title and date too (a plain text's header is always read)."""
    declared = _charset(content_type)
    if looks_like_html(raw, content_type):
        # Loaded on the first page, not with this module: the daemon's own process hands
        # pages to the workers and never parses one, and trafilatura with lxml is ~15 MB.
        from monitor.extract.html import from_html

        return from_html(raw, url=url, declared=declared, metadata=metadata)
    return from_plain(raw, declared)


def _charset(content_type: str | None) -> str | None:
    if not content_type or "charset=" not in content_type.lower():
        return None
    return content_type.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"') or None
