"""HTML pages to their main text, title and date, with trafilatura.

Only this module knows trafilatura (and lxml, htmldate). ``monitor.extract.text`` turns to it
for every HTML page; it is loaded by whoever reads pages (the extraction workers, replay,
``monitor extract``), never by the daemon's own process, which only hands pages over.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from html import unescape

import trafilatura
from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura.metadata import examine_meta, extract_meta_json, extract_title, extract_url
from trafilatura.settings import Document, set_date_params
from trafilatura.utils import line_processing, load_html, trim

from monitor.extract.text import (
    ArticleText,
    TextError,
    charset_codec,
    decode_checked,
    normalize_text,
    sniff_charset,
)

# Pages larger than this are refused before parsing: lxml would need many times as much memory.
MAX_HTML_BYTES = 8 * 1024 * 1024


def from_html(
    raw: bytes | str,
    url: str | None = None,
    declared: str | None = None,
    *,
    metadata: bool = True,
) -> ArticleText:
    """The main text of a page; with `metadata`, also the page's own title and date (the
    only metadata we keep: the pipeline asks for them only when the feed entry lacks them,
    since trafilatura's full metadata pass costs a third of its extraction)."""
    try:
        return _read(raw, url, declared, metadata)
    finally:
        _forget_texts()


def _read(raw: bytes | str, url: str | None, declared: str | None, metadata: bool) -> ArticleText:
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_HTML_BYTES:
        raise TextError(f"page of {size} bytes exceeds the {MAX_HTML_BYTES}-byte limit")
    if isinstance(raw, bytes) and not charset_codec(declared):
        declared = sniff_charset(raw)
    html = decode_checked(raw, declared, "HTML")
    title = published = None
    page: str | HtmlElement = html
    if metadata:
        tree = load_html(html)  # parsed once: the metadata and the text read the same tree
        if tree is None:
            raise TextError("no main text found in page")
        title, published, url = _title_and_date(tree, url)
        page = tree
    doc = trafilatura.bare_extraction(
        page,
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        with_metadata=False,
        deduplicate=False,
    )
    if not isinstance(doc, Document) or not doc.text or not doc.text.strip():
        raise TextError("no main text found in page")
    return ArticleText(
        title=title,
        text=normalize_text(doc.text),
        published=_parse_date(published),
    )


def _title_and_date(
    tree: HtmlElement, url: str | None
) -> tuple[str | None, str | None, str | None]:
    """Title, date and canonical URL as trafilatura's metadata pass finds them, without the
    rest of that pass (authors, categories, tags, site name, licence), which we never use."""
    meta = examine_meta(tree)
    with contextlib.suppress(Exception):  # trafilatura guards its JSON-LD reader the same way
        meta = extract_meta_json(tree, meta)
    title = meta.title or extract_title(tree)
    page_url = meta.url or extract_url(tree, url)
    date = find_date(tree, **{**set_date_params(True), "url": page_url})
    if title:
        title = line_processing(unescape(title[:9999] + "…" if len(title) > 10000 else title))
    return title or None, date, url or page_url


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _forget_texts() -> None:
    """Empty trafilatura's caches of whole texts once a page is read.

    ``trim`` and ``line_processing`` each keep a thousand element texts (up to a page long)
    from page to page, for hits that come almost only within one page: an extraction worker
    grew by ~20 MB with them. trafilatura's other caches hold small things and stay, above all
    the set of every language's stop words, which takes 77 ms to build again."""
    trim.cache_clear()
    line_processing.cache_clear()
