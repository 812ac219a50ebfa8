"""Servers that try to hold a poll worker: every fetch ends at the total timeout.

Real sockets on 127.0.0.1. Each byte arrives well within the read timeout, so only a bound on
the whole request (headers included) can end these.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.config import FeedConfig
from monitor.sources.fetch import FetchError, FetchLimits, fetch, fetch_link, new_client
from monitor.sources.polling import poll
from monitor.store.log import EventStore

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Padding: " + b"a" * 200


@contextmanager
def dripping(payload: bytes, every: float) -> Iterator[str]:
    """A server that answers each connection with ``payload``, one byte every ``every`` s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in payload:
                if stop.wait(every):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


LIMITS = FetchLimits(read_timeout=5, total_timeout=2, allow_networks=("127.0.0.1/32",))


@pytest.mark.parametrize("every", [1.0, 0.2], ids=["one-byte-a-second", "five-bytes-a-second"])
def test_headers_dripped_slowly_are_cut_at_the_total_timeout(every: float) -> None:
    with dripping(HEADERS, every) as base:
        started = time.monotonic()
        with pytest.raises(FetchError, match="in total") as info:
            fetch(f"{base}/feed.xml", limits=LIMITS)
        took = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert 1.8 < took < 3.5, took


def test_a_link_with_dripped_headers_is_cut_too() -> None:
    with dripping(HEADERS, 0.5) as base:
        started = time.monotonic()
        with pytest.raises(FetchError, match="in total"):
            fetch_link(f"{base}/page.html", limits=LIMITS)
    assert time.monotonic() - started < 3.5


def test_a_dripping_feed_fails_its_poll_in_time_and_is_recorded(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        with dripping(HEADERS, 0.5) as base, new_client(LIMITS) as client:
            feed = FeedConfig(name="drip", url=f"{base}/feed.xml")
            started = time.monotonic()
            items, outcome, _ = poll(store, feed, None, limits=LIMITS, client=client)
            took = time.monotonic() - started
        assert items == [] and not outcome.ok and outcome.error_kind == "timeout"
        assert took < 3.5
        [failed] = [e for e in store.read() if e.type == "FeedFailed"]
        assert "in total" in failed.data.reason  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_body_dripped_after_quick_headers_is_cut_as_well() -> None:
    body = HEADERS + b"\r\n\r\n" + b"<rss>" + b"x" * 1000
    with dripping(body, 0.001) as base:
        # The headers arrive in ~0.2 s; the body would take over a second at this pace.
        limits = LIMITS.model_copy(update={"total_timeout": 0.6})
        started = time.monotonic()
        with pytest.raises(FetchError, match="in total"):
            fetch(f"{base}/feed.xml", limits=limits)
    assert time.monotonic() - started < 1.5


def test_a_name_lookup_that_hangs_is_cut_at_the_total_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A resolver that never answers cannot be run offline, so this one stand-in blocks
    # getaddrinfo for one name the way a dead DNS server does; everything else is real.
    real = socket.getaddrinfo
    release = threading.Event()

    def hanging(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow-resolver.invalid":
            release.wait(30)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    limits = LIMITS.model_copy(update={"total_timeout": 0.5})
    started = time.monotonic()
    try:
        with pytest.raises(FetchError) as info:
            fetch("http://slow-resolver.invalid/feed.xml", limits=limits)
    finally:
        release.set()
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 2.0


def test_a_name_is_tried_at_each_of_its_addresses_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    # "localhost" may list ::1 before 127.0.0.1; a server on 127.0.0.1 only must still be reached.
    feed = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
    body = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: "
    payload = body + str(len(feed)).encode() + b"\r\n\r\n" + feed
    with dripping(payload, 0) as base:
        port = base.rsplit(":", 1)[1]
        real = socket.getaddrinfo

        def both(host: str, *args: object, **kwargs: object) -> object:
            if host == "twice.invalid":
                # An address nobody listens on first, then the server's.
                return [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.9", int(port))),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port))),
                ]
            return real(host, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", both)
        result = fetch(f"http://twice.invalid:{port}/feed.xml", limits=LIMITS)
    assert b"<rss" in result.body
