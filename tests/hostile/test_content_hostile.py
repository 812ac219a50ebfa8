"""Pages with bad bytes, stray NULs and sizes that would exhaust memory.

One bad byte must not turn a page into mojibake, one NUL must not cost the article, and a file
given to ``monitor extract`` is read no further than a fetched page would be.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.events import ArticleExtracted
from monitor.extract.text import TextError, article_text, decode
from monitor.pipeline import ingest_item
from monitor.sources.feeds import FeedItem
from monitor.store.log import EventStore
from tests.support.cli import run_cli
from tests.support.httpserver import LOCAL_LIMITS, Reply, TestServer

SENTENCE = "The mayor of Zürich met the café owners of São Paulo in Kraków on Tuesday."


def test_one_bad_byte_in_a_declared_utf8_page_stays_one_replacement() -> None:
    raw = SENTENCE.encode() + b" Then \xff it rained." + (" " + SENTENCE).encode()
    text = decode(raw, "utf-8")
    assert text.count("Zürich") == 2 and "São" in text and "Kraków" in text
    assert text.count("\ufffd") == 1


def test_one_bad_byte_in_an_undeclared_utf8_page_does_not_switch_to_cp1252() -> None:
    raw = SENTENCE.encode() + b" \xc3 stray." + (" " + SENTENCE).encode()
    text = decode(raw)
    assert text.count("Zürich") == 2 and "ZÃ¼rich" not in text
    assert text.count("\ufffd") == 1


def test_a_legacy_page_without_a_declaration_is_still_read_as_cp1252() -> None:
    text = decode(SENTENCE.replace("Kraków", "Krakow").encode("cp1252"))
    assert "Zürich" in text and "café" in text and "\ufffd" not in text


def test_a_declared_legacy_charset_keeps_its_bad_bytes_local() -> None:
    # 0x81 is undefined in cp1252: one replacement, the rest read as declared.
    raw = "Café Zürich".encode("cp1252") + b" \x81 " + "crème".encode("cp1252")
    assert decode(raw, "windows-1252") == "Café Zürich \ufffd crème"


def test_html_meta_charset_is_the_declaration_when_the_header_has_none() -> None:
    body = f"<p>{SENTENCE}</p>" * 3
    page = f'<html><head><meta charset="iso-8859-2"></head><body><article>{body}</article>'
    raw = (page + "</body></html>").encode("iso-8859-2", errors="replace")
    text = article_text(raw, content_type="text/html").text
    assert "Kraków" in text and "Zürich" in text


def test_an_unknown_or_non_text_declared_charset_falls_back_to_the_bytes() -> None:
    raw = SENTENCE.encode()
    assert decode(raw, "no-such-charset") == SENTENCE
    assert decode(raw, "base64") == SENTENCE
    assert decode(raw, "rot13") == SENTENCE


def test_nuls_are_stripped_not_fatal() -> None:
    raw = SENTENCE.encode() + b"\x00" + b" The talks ended\x00 at noon."
    assert article_text(raw).text == SENTENCE + " The talks ended at noon."
    html = b"<html><body><article><p>" + raw + b"</p><p>" + raw + b"</p></article></body></html>"
    extracted = article_text(html, content_type="text/html").text
    assert "\x00" not in extracted and "ended at noon" in extracted


def test_binary_content_is_still_refused() -> None:
    with pytest.raises(TextError, match="binary"):
        article_text(bytes(range(256)) * 40, content_type="application/octet-stream")
    with pytest.raises(TextError, match="binary"):
        article_text(b"\x00\x01\x02" * 1000)


def test_a_served_page_with_a_bad_byte_and_a_nul_is_extracted_whole(tmp_path: Path) -> None:
    para = "Ruritanian officials said 42 soldiers were killed near Zenda, café owners said."
    page = f"<html><body><article><p>{para}</p><p>{para}</p></article></body></html>".encode()
    page = page.replace(b"Zenda,", b"Zenda\xff,", 1).replace(b"officials", b"offi\x00cials", 1)
    store = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        with TestServer() as server:
            server.route("/p", Reply(200, page, {"Content-Type": "text/html; charset=utf-8"}))
            item = FeedItem(feed="wire", url=f"{server.base}/p", title="t")
            result = ingest_item(store, item, [], limits=LOCAL_LIMITS)
        assert result.status == "extracted", result.reason
        [text] = [e.data.text for e in store.read() if isinstance(e.data, ArticleExtracted)]
        assert text.count("café") == 2 and "Ã" not in text and "\x00" not in text
        assert text.count("officials") == 2
    finally:
        store.close()


def test_extract_reads_no_further_than_the_fetch_cap(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:  # 200 MB, sparse: cheap to make, costly to read whole
        handle.truncate(200 * 1024 * 1024)
    started = time.monotonic()
    proc = run_cli("extract", str(huge))
    assert proc.returncode == 1
    assert f"{huge}: larger than the 10485760-byte limit" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 30


def test_extract_uses_the_configured_cap(tmp_path: Path) -> None:
    article = tmp_path / "a.txt"
    article.write_text(SENTENCE * 100)
    config = tmp_path / "c.toml"
    config.write_text("[fetch]\nmax_bytes = 1000\n")
    proc = run_cli("extract", str(article), "--config", str(config))
    assert proc.returncode == 1 and "1000-byte limit" in proc.stderr
    config.write_text("[fetch]\nmax_bytes = 100000\n")
    assert run_cli("extract", str(article), "--config", str(config)).returncode == 0
