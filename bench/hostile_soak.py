"""Soak: a hostile corpus through the real poll path for N minutes. Run by hand:

    .venv/bin/python -m bench.hostile_soak [--minutes 10] [--total-timeout 5]

The corpus is built here and served from a separate process on 127.0.0.1 (and 127.0.0.2 as
the "internal" host), so the measured process is the poller alone: servers that drip headers
or bodies a byte at a time, pages and feeds far over the size cap, a gzip bomb, entity bombs
and XXE, bad and lying charsets, NULs and binary, links to ``file:`` paths and internal
addresses, redirects to both, redirect loops, feeds with no entries or no links. When
``../shared/peer`` is present its feedparser fixtures and saved real feeds are served too;
those are polled only (their links point to the internet, which this never touches).

Every feed of our own corpus goes through ``Runtime.run_feed`` (lease, poll, ingest of each
item, as the daemon does); the hostile feed names new article URLs on every request, so each
round extracts fresh pages. Reports peak RSS (target: under 300 MB) and the longest poll.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import random
import re
import resource
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.config import FeedConfig, FetchConfig, Settings
from monitor.events import ArticleFailed
from monitor.runtime import Runtime
from tests.support.httpserver import Reply, Request, TestServer

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "peer"
TARGET_MB = 300

ARTICLE = (
    "<html><head><title>Clashes</title></head><body><nav>Home | World</nav><article>"
    "<h1>Clashes near the border</h1><p>Armenian officials said {n} soldiers were killed in "
    "Nagorno-Karabakh on Sunday, and Azerbaijan said Turkey had sent drones.</p><p>The "
    "ceasefire brokered by Russia collapsed within hours, residents of Stepanakert said.</p>"
    "</article><footer>Copyright</footer></body></html>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']><rss version="2.0"><channel><title>&j;</title><item><title>&j;</title>'
    "<link>http://127.0.0.1:1/x</link><description>&j;</description></item></channel></rss>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<rss version="2.0"><channel><title>&x;</title><item><title>&x;</title>'
    "<link>http://127.0.0.1:1/x</link><description>&x;</description></item></channel></rss>"
)


def rss(links: list[str]) -> bytes:
    items = "".join(
        f"<item><title>Item {i}</title><link>{link.replace('&', '&amp;')}</link></item>"
        for i, link in enumerate(links)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Soak</title>{items}'
        "</channel></rss>"
    ).encode()


def drip_server(payload: bytes, every: float) -> int:
    """Answers every connection with ``payload``, one byte each ``every`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in payload:
                    time.sleep(every)
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def peer_routes(server: TestServer) -> list[tuple[str, str]]:
    """feedparser's fixtures (with the headers they declare) and saved real feeds."""
    feeds: list[tuple[str, str]] = []
    fixtures = PEER / "feedparser" / "tests"
    for i, path in enumerate(sorted(fixtures.rglob("*.xml")) if fixtures.is_dir() else []):
        raw = path.read_bytes()
        declared = re.findall(
            r"^Header:\s*([\w-]+):\s*(.+?)\s*$", raw[:2000].decode("latin-1"), flags=re.M
        )
        server.route(f"/peer/f{i}", Reply(200, raw, dict(declared) or {}))
        feeds.append((f"peer-{i}", f"{server.base}/peer/f{i}"))
    real = PEER / "realfeeds"
    for path in sorted(real.iterdir()) if real.is_dir() else []:
        if path.suffix in {".xml", ".rss", ".atom"}:
            server.route(f"/real/{path.name}", Reply(200, path.read_bytes()))
            feeds.append((f"real-{path.stem}", f"{server.base}/real/{path.name}"))
    return feeds


def serve_corpus(queue: Any, stop: Any) -> None:
    """The hostile corpus, in its own process; puts (own feeds, peer feeds) on ``queue``."""
    internal = TestServer(host="127.0.0.2").__enter__()
    internal.route(
        "/secret", Reply(200, ARTICLE.format(n=99).encode(), {"Content-Type": "text/html"})
    )
    server = TestServer().__enter__()
    base = server.base
    counter = {"n": 0}
    huge = b"<html><body><article><p>" + b"war news " * 4_000_000 + b"</p></article></body></html>"
    bomb = gzip.compress(b"\0" * 200_000_000)
    headers_drip = drip_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Pad: " + b"a" * 400, 1.0
    )
    body_drip = drip_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + huge[:5000], 0.05
    )
    html = {"Content-Type": "text/html; charset=utf-8"}
    rng = random.Random(7)

    def page(kind: str) -> Reply:
        n = rng.randint(1, 900)
        good = ARTICLE.format(n=n).encode()
        return {
            "ok": Reply(200, good, html),
            "huge": Reply(200, huge, html, send_length=False),
            "bad-charset": Reply(200, good.replace(b"Sunday", b"Sun\xffday\xc3"), html),
            "lying-charset": Reply(
                200,
                ARTICLE.format(n=n).encode("utf-16"),
                {"Content-Type": "text/html; charset=utf-8"},
            ),
            "unknown-charset": Reply(200, good, {"Content-Type": "text/html; charset=x-klingon"}),
            "nul": Reply(200, good.replace(b"soldiers", b"sol\x00diers"), html),
            "binary": Reply(
                200,
                bytes(rng.getrandbits(8) for _ in range(20_000)),
                {"Content-Type": "image/jpeg"},
            ),
            "gzip-bomb": Reply(200, bomb, {**html, "Content-Encoding": "gzip"}),
            "to-internal": Reply(302, b"", {"Location": f"{internal.base}/secret"}),
            "to-file": Reply(302, b"", {"Location": "file:///etc/passwd"}),
            "loop": Reply(302, b"", {"Location": "/page/loop"}),
            "gone": Reply(404, b"gone"),
        }[kind]

    kinds = [
        "ok",
        "huge",
        "bad-charset",
        "lying-charset",
        "unknown-charset",
        "nul",
        "binary",
        "gzip-bomb",
        "to-internal",
        "to-file",
        "loop",
        "gone",
    ]
    for kind in kinds:
        server.route(f"/page/{kind}", lambda _req, k=kind: page(k))

    def hostile_feed(_req: Request) -> Reply:
        counter["n"] += 1
        n = counter["n"]
        links = [f"{base}/page/{k}?n={n}" for k in kinds]
        links += [
            f"http://127.0.0.1:{body_drip}/drip?n={n}",
            f"{internal.base}/secret?n={n}",
            "file:/etc/passwd",
            "file://localhost/etc/passwd",
            f"file:///proc/self/environ?{n}",
            f"http://localhost:{base.rsplit(':', 1)[1]}/page/ok?via=name&n={n}",
        ]
        return Reply(200, rss(links), {"Content-Type": "application/rss+xml"})

    server.route("/feed/hostile", hostile_feed)
    server.route("/feed/laughs", Reply(200, LAUGHS.encode()))
    server.route("/feed/xxe", Reply(200, XXE.encode()))
    server.route("/feed/huge", Reply(200, b"<rss><channel>" + huge, send_length=False))
    server.route("/feed/gzip-bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    server.route("/feed/garbage", Reply(200, b"\x00\x01 not a feed <<<"))
    server.route("/feed/linkless", Reply(200, rss([""] * 5)))
    server.route("/feed/to-internal", Reply(302, b"", {"Location": f"{internal.base}/secret"}))
    own = [
        (name, f"{base}/feed/{name}")
        for name in (
            "hostile",
            "laughs",
            "xxe",
            "huge",
            "gzip-bomb",
            "garbage",
            "linkless",
            "to-internal",
        )
    ]
    own.append(("drip-headers", f"http://127.0.0.1:{headers_drip}/feed.xml"))
    queue.put((own, peer_routes(server)))
    stop.wait()


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--total-timeout", type=float, default=5.0, help="[fetch] total_timeout")
    args = parser.parse_args()

    queue: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    corpus = multiprocessing.Process(target=serve_corpus, args=(queue, stop), daemon=True)
    corpus.start()
    own, peer = queue.get(timeout=120)
    feeds = [FeedConfig(name=name, url=url) for name, url in own]
    peers = [FeedConfig(name=name, url=url) for name, url in peer]

    with tempfile.TemporaryDirectory(prefix="hostile-soak-") as tmp:
        settings = Settings(
            db=f"sqlite:///{tmp}/soak.db",
            rules_dir=ROOT / "rules",
            feeds=feeds,
            channels=[],
            http_listen="",
            fetch=FetchConfig(
                total_timeout=timedelta(seconds=args.total_timeout),
                allow_networks=["127.0.0.1/32"],  # our corpus host; 127.0.0.2 stays internal
            ),
        )
        runtime = Runtime(settings)
        runtime.leases.ensure(feeds)
        ends = time.monotonic() + args.minutes * 60
        rounds, polls, articles = 0, 0, Counter[str]()
        longest: tuple[float, str] = (0.0, "")
        longest_peer: tuple[float, str] = (0.0, "")
        rss_after_first = 0.0
        while time.monotonic() < ends:
            for feed in feeds:
                started = time.monotonic()
                run = runtime.run_feed(feed, force=True)
                took = time.monotonic() - started
                polls += 1
                longest = max(longest, (took, feed.name))
                for result in run.results if run else []:
                    articles[result.status] += 1
            for feed in peers:
                started = time.monotonic()
                runtime.poll(feed)
                longest_peer = max(longest_peer, (time.monotonic() - started, feed.name))
                polls += 1
            runtime.advance()
            rounds += 1
            if rounds == 1:
                rss_after_first = rss_mb()
            print(
                f"round {rounds}: rss {rss_mb():.0f} MB, longest poll {longest[0]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        reasons = Counter(
            e.data.reason.split(": ")[-1][:60]
            for e in runtime.store.read(types=["ArticleFailed"])
            if isinstance(e.data, ArticleFailed)
        )
        runtime.close()
    stop.set()
    corpus.join(5)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"hostile soak: {args.minutes:g} min, {rounds} rounds, {polls} polls "
        f"({len(feeds)} hostile feeds through run_feed, {len(peers)} peer feeds polled)"
    )
    print(f"articles: {dict(articles)}")
    print("failure reasons: " + "; ".join(f"{n} x {r}" for r, n in reasons.most_common(12)))
    verdict = "ok" if peak < TARGET_MB else "OVER"
    print(
        f"peak RSS: {peak:.0f} MB (target < {TARGET_MB} MB: {verdict}); "
        f"after round 1: {rss_after_first:.0f} MB, at the end: {rss_mb():.0f} MB"
    )
    print(
        f"longest poll (run_feed, ingest included): {longest[0]:.1f} s ({longest[1]}); "
        f"total_timeout {args.total_timeout:g} s per fetch"
    )
    if peers:
        print(f"longest peer feed poll: {longest_peer[0]:.2f} s ({longest_peer[1]})")
    return 0 if peak < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
