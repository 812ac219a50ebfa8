"""Articles per second through the daemon's own path, against trafilatura alone, same run.

    .venv/bin/python -m bench.bench_pipeline [--articles 1000] [--growth] [--profile FILE]

Real pages (the seed pages, plus ../shared/peer/trafilatura's news pages where that folder
exists) are repeated to N articles, each copy made distinct by a short sentence in its last
paragraph, and served by a local HTTP server on 127.0.0.1 with RSS feeds of 50 items listing
them. The pipeline row is what the daemon does with a backlog: ``Runtime.run_feed`` for every
feed on ``poll_workers`` threads (feed -> fetch -> text -> facts -> append, SQLite file), then
``Runtime.advance`` (rules and projections). The peer row is ``trafilatura.extract`` on the
same page bytes, one after another, in this process. Cores used is the CPU time of this
process and every process under it (the extraction pool) over the wall time.

Target (issue 14): pipeline time at most 1.3x trafilatura alone. Issue 15: >= 1.7 cores used
on 2 cores while a backlog drains with the pool.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trafilatura  # noqa: E402

from monitor.config import FeedConfig, load_settings  # noqa: E402
from monitor.extract.pool import ExtractJob  # noqa: E402
from monitor.extract.text import article_text  # noqa: E402
from monitor.runtime import FeedRun, Runtime  # noqa: E402

SEED_PAGES = REPO / "seeds" / "pages"
PEER_PAGES = REPO.parent / "shared" / "peer" / "trafilatura"
FEED_SIZE = 50


def real_pages(seeds_only: bool = False) -> list[tuple[str, bytes]]:
    """The seed pages, then the peer's news pages when ../shared is there."""
    pages = [(p.name, p.read_bytes()) for p in sorted(SEED_PAGES.glob("*/*.html"))]
    if seeds_only:
        return pages
    if PEER_PAGES.is_dir():
        peer = sorted([*PEER_PAGES.glob("cache/*.html"), *PEER_PAGES.glob("eval/*.html")])
        pages += [(p.name, p.read_bytes()) for p in peer]
    else:
        print(f"note: {PEER_PAGES} absent: seed pages only", file=sys.stderr)
    return pages


_LAST_PARAGRAPH_END = re.compile(rb"</p\s*>(?![\s\S]*</p\s*>)", re.I)


def corpus(pages: list[tuple[str, bytes]], count: int) -> list[bytes]:
    """``count`` articles: the pages in turn, each copy's last paragraph given a sentence of
    its own, so that copies are different articles to the log (no fact is deduplicated away)."""
    out = []
    for i in range(count):
        _, body = pages[i % len(pages)]
        mark = f" Copy {i} of this report was filed at 0{i % 10}:00.".encode()
        found = _LAST_PARAGRAPH_END.search(body)
        out.append(body[: found.start()] + mark + body[found.start() :] if found else body)
    return out


def feeds_xml(base: str, count: int) -> list[bytes]:
    """RSS documents listing the articles, ``FEED_SIZE`` each, dated a minute apart."""
    start = datetime(2020, 9, 27, tzinfo=UTC)
    docs = []
    for first in range(0, count, FEED_SIZE):
        items = []
        for i in range(first, min(count, first + FEED_SIZE)):
            when = format_datetime(start + timedelta(minutes=i), usegmt=True)
            items.append(
                f"<item><title>Report {i}</title><link>{base}/a/{i}.html</link>"
                f"<guid isPermaLink='false'>bench-{i}</guid><pubDate>{when}</pubDate></item>"
            )
        docs.append(
            (
                "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                f"<title>{escape('Bench wire')}</title><link>{base}/</link>"
                + "".join(items)
                + "</channel></rss>"
            ).encode()
        )
    return docs


# The server runs in a process of its own, left out of the CPU figures: serving is not ours.
SERVER = """
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real site allows
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=sys.argv[1]))
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""
SERVER_PIDS: set[int] = set()


@contextmanager
def serve(articles: list[bytes], root: Path) -> Iterator[tuple[str, int]]:
    """A local server for the articles and their feeds; yields (base URL, number of feeds)."""
    (root / "a").mkdir(parents=True)
    (root / "feed").mkdir()
    for i, body in enumerate(articles):
        (root / "a" / f"{i}.html").write_bytes(body)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(root)], stdout=subprocess.PIPE, text=True
    )
    SERVER_PIDS.add(proc.pid)
    try:
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        feeds = feeds_xml(base, len(articles))
        for k, doc in enumerate(feeds):
            (root / "feed" / f"{k}.xml").write_bytes(doc)
        yield base, len(feeds)
    finally:
        proc.terminate()
        proc.wait()
        SERVER_PIDS.discard(proc.pid)


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and every live process under it."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks
    me = os.getpid()
    total = 0.0
    for pid, seconds in cpu.items():
        walk = pid
        while walk > 1 and walk != me:
            walk = parents.get(walk, 0)
        if walk == me and pid not in SERVER_PIDS:
            total += seconds
    return total


def machine_cpu() -> float:
    """CPU seconds every process on the machine has used (to show how busy others kept it)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    articles: int
    seconds: float
    cpu: float  # CPU seconds of this process and its children
    cores: float
    machine: float = 0.0  # cores busy on the whole machine meanwhile (ours and others')
    facts: int = 0
    alerts: int = 0
    failed: int = 0


def timed(action: Callable[[], tuple[int, int, int]], articles: int) -> Run:
    cpu0, busy0, wall0 = tree_cpu(), machine_cpu(), time.perf_counter()
    facts, alerts, failed = action()
    wall = time.perf_counter() - wall0
    cpu, busy = tree_cpu() - cpu0, machine_cpu() - busy0
    return Run(articles, wall, cpu, cpu / wall, busy / wall, facts, alerts, failed)


def peer(articles: list[bytes]) -> Run:
    """trafilatura.extract alone on the same page bytes."""

    def run() -> tuple[int, int, int]:
        empty = sum(1 for body in articles if not trafilatura.extract(body))
        return 0, 0, empty

    return timed(run, len(articles))


def text_stage(articles: list[bytes]) -> Run:
    """Our text stage alone (trafilatura with our options, decoding, normalizing), as the
    pipeline runs it for a feed entry that has its title and date."""

    def run() -> tuple[int, int, int]:
        failed = 0
        for body in articles:
            try:
                article_text(body, content_type="text/html", metadata=False)
            except ValueError:
                failed += 1
        return 0, 0, failed

    return timed(run, len(articles))


def pipeline(articles: list[bytes], workdir: Path, cpu_workers: int, **settings: Any) -> Run:
    """The daemon's path over a backlog: every feed polled on the poll workers, then rules;
    the CPU stages on ``cpu_workers`` processes (0: on the poll threads)."""
    with serve(articles, workdir / "site") as (base, nfeeds):
        feeds = [
            FeedConfig(name=f"wire-{k}", url=f"{base}/feed/{k}.xml", outlet=f"Wire {k % 7}")
            for k in range(nfeeds)
        ]
        config = load_settings(
            None,
            db=f"sqlite:///{workdir / 'events.db'}",
            rules_dir=REPO / "rules",
            channels=[],
            feeds=feeds,
            fetch={"allow_networks": ["127.0.0.1/32"]},
            **settings,
        )
        runtime = Runtime(config, cpu_workers=cpu_workers)
        try:
            runtime.leases.ensure(feeds)
            runtime.advance()  # rules compiled, projections opened: start-up, not per article
            runtime.extract_pool.start()  # as the daemon does before its first poll
            if not runtime.extract_pool.inline:
                runtime.extract_pool.run(
                    ExtractJob(body=articles[0], url=base, watches=[], budget=5)
                )
                time.sleep(1.0)  # every worker's warm-up (imports done, patterns compiled)

            def run() -> tuple[int, int, int]:
                def poll(feed: FeedConfig) -> FeedRun | None:
                    return runtime.run_feed(feed, force=True)

                if config.poll_workers == 1:  # on this thread, where a profiler sees it
                    runs = [poll(f) for f in feeds]
                else:
                    with ThreadPoolExecutor(config.poll_workers) as threads:
                        runs = list(threads.map(poll, feeds))
                alerts = len(runtime.advance())
                results = [r for run in runs if run for r in run.results]
                facts = sum(r.facts for r in results)
                failed = sum(1 for r in results if r.status != "extracted")
                return facts, alerts, failed

            return timed(run, len(articles))
        finally:
            runtime.close()


def row(label: str, run: Run, baseline: Run | None) -> str:
    ratio = f"{run.seconds / baseline.seconds:5.2f}x" if baseline else "    -"
    cpu_ratio = f"{run.cpu / baseline.cpu:5.2f}x" if baseline else "    -"
    return (
        f"| {label:<34} | {run.articles:>5} | {run.articles / run.seconds:8.1f} | "
        f"{1000 * run.seconds / run.articles:7.2f} | {ratio} | "
        f"{1000 * run.cpu / run.articles:7.2f} | {cpu_ratio} | "
        f"{run.cores:5.2f} | {run.machine:5.2f} | "
        f"{run.facts:>5} | {run.alerts:>4} | {run.failed:>4} |"
    )


HEADER = (
    "| path | articles | articles/s | wall ms/article | wall vs trafilatura | CPU ms/article "
    "| CPU vs trafilatura | cores used | machine busy | facts | alerts | not extracted |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--growth", action="store_true", help="also x1/x10/x100 (10..1000)")
    parser.add_argument(
        "--seeds-only", action="store_true", help="the seed pages alone (conflict news, many facts)"
    )
    parser.add_argument("--profile", type=Path, help="pyinstrument text report of the pipeline")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # rows as they come: a run takes minutes
    pages = real_pages(args.seeds_only)
    print(f"{len(pages)} distinct pages, {os.cpu_count()} cores")
    trafilatura.extract(pages[0][1])  # imports and first-call set-up, outside every timing
    article_text(pages[0][1], content_type="text/html")
    sizes = [10, 100, args.articles] if args.growth else [args.articles]
    cores = os.cpu_count() or 1
    print(HEADER)
    for size in sizes:
        articles = corpus(pages, size)
        base = peer(articles)
        print(row("trafilatura.extract alone (peer)", base, base))
        print(row("our text stage alone", text_stage(articles), base))
        with tempfile.TemporaryDirectory() as tmp:
            if args.profile and size == sizes[-1]:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.001)
                with profiler:
                    run = pipeline(articles, Path(tmp), 0, poll_workers=1)
                args.profile.write_text(profiler.output_text(unicode=True, show_all=False))
            else:
                run = pipeline(articles, Path(tmp), 0, poll_workers=1)
        print(row("pipeline in-process, 1 poll thread", run, base))
        with tempfile.TemporaryDirectory() as tmp:
            run = pipeline(articles, Path(tmp), 0)
        print(row("pipeline in-process, 4 poll threads", run, base))
        with tempfile.TemporaryDirectory() as tmp:
            run = pipeline(articles, Path(tmp), cores)
        print(row(f"pipeline, pool of {cores}, 4 poll threads", run, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
