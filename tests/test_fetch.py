"""Polite, bounded fetching against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.sources.fetch import FetchError, FetchLimits, fetch, new_client, parse_retry_after
from tests.support.httpserver import LOCAL, LOCAL_LIMITS, Reply, Request, TestServer


def conditional(body: bytes, etag: str, modified: str):  # type: ignore[no-untyped-def]
    """A route that answers 304 when the client sends back what it was given."""

    def handler(req: Request) -> Reply:
        if (
            req.headers.get("If-None-Match") == etag
            or req.headers.get("If-Modified-Since") == modified
        ):
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, body, {"ETag": etag, "Last-Modified": modified})

    return handler


def test_conditional_get_sends_validators_and_reports_not_modified() -> None:
    modified = "Wed, 21 Oct 2020 07:28:00 GMT"
    with TestServer() as server:
        server.route("/feed", conditional(b"<rss/>", '"v1"', modified))
        first = fetch(f"{server.base}/feed")
        assert (first.etag, first.last_modified, first.not_modified) == ('"v1"', modified, False)
        second = fetch(f"{server.base}/feed", etag=first.etag, last_modified=first.last_modified)
        assert second.not_modified and second.body == b"" and second.etag == '"v1"'
        sent = server.requests[1].headers
        assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == modified
        assert "If-None-Match" not in server.requests[0].headers


def test_gzip_is_asked_for_and_decoded() -> None:
    body = b"<rss>" + b"news " * 2000 + b"</rss>"
    with TestServer() as server:
        server.route("/gz", Reply(200, gzip.compress(body), {"Content-Encoding": "gzip"}))
        got = fetch(f"{server.base}/gz")
        assert got.body == body
        assert "gzip" in server.requests[0].headers["Accept-Encoding"]
        assert server.requests[0].headers["User-Agent"].startswith("monitor/")


def test_gzip_bomb_is_cut_at_the_cap_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 kB on the wire, 50 MB inflated
    with TestServer() as server:
        server.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
        with pytest.raises(FetchError, match="limit") as info:
            fetch(f"{server.base}/bomb", limits=FetchLimits(max_bytes=1_000_000))
        assert info.value.kind == "too_large"


def test_error_kinds_status_and_retry_after() -> None:
    with TestServer() as server:
        server.route("/busy", Reply(429, b"slow down", {"Retry-After": "120"}))
        server.route("/down", Reply(503, b"", {"Retry-After": "7"}))
        server.route("/gone", Reply(404, b""))
        with pytest.raises(FetchError) as busy:
            fetch(f"{server.base}/busy")
        assert (busy.value.kind, busy.value.status, busy.value.retry_after) == (
            "rate_limited",
            429,
            120,
        )
        assert "retry after 120 s" in str(busy.value)
        with pytest.raises(FetchError) as down:
            fetch(f"{server.base}/down")
        assert (down.value.kind, down.value.retry_after) == ("http_5xx", 7)
        with pytest.raises(FetchError) as gone:
            fetch(f"{server.base}/gone")
        assert (gone.value.kind, gone.value.retry_after) == ("http_4xx", None)
    with pytest.raises(FetchError) as refused:
        fetch(f"{server.base}/gone")  # the server is gone now
    assert refused.value.kind == "connect"


def test_retry_after_as_http_date_and_nonsense() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert parse_retry_after("99999999") == 24 * 3600
    assert parse_retry_after("soon") is None


def drip_server(interval: float, stop: threading.Event) -> int:
    """A raw server that sends headers, then one body byte every ``interval`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                stop.wait(interval)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def test_total_timeout_stops_a_server_that_drips_forever() -> None:
    """Each read is quick (no read timeout fires), yet the whole fetch is bounded."""
    stop = threading.Event()
    port = drip_server(0.05, stop)
    try:
        with pytest.raises(FetchError, match="in total") as info:
            fetch(f"http://127.0.0.1:{port}/", limits=FetchLimits(read_timeout=5, total_timeout=1))
        assert info.value.kind == "timeout"
    finally:
        stop.set()


def test_per_host_limit_caps_requests_in_flight() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(_req: Request) -> Reply:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return Reply(200, b"ok")

    limits = FetchLimits(per_host=2)
    with TestServer() as server, new_client(limits) as client:
        server.route("/slow", slow)
        threads = [
            threading.Thread(
                target=fetch,
                args=(f"{server.base}/slow",),
                kwargs={"client": client, "limits": limits},
            )
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(server.requests) == 6
    assert state["peak"] == 2


def test_redirects_are_followed_up_to_the_limit() -> None:
    with TestServer() as server:
        server.route("/a", Reply(301, b"", {"Location": "/b"}))
        server.route("/b", Reply(200, b"<rss/>"))
        server.route("/loop", Reply(302, b"", {"Location": "/loop"}))
        got = fetch(f"{server.base}/a", limits=LOCAL_LIMITS)
        assert got.final_url.endswith("/b") and got.body == b"<rss/>"
        with pytest.raises(FetchError) as info:
            fetch(f"{server.base}/loop", limits=FetchLimits(max_redirects=2, allow_networks=LOCAL))
        assert info.value.kind == "redirects"
