"""The extraction pool: real worker processes (two), the same facts as in-process, and no
article lost when a worker dies or hangs under it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.events import ArticleExtracted, ArticleFailed, FactReported
from monitor.extract.pool import ExtractJob, ExtractPool, pool_size
from monitor.extract.text import article_text
from monitor.pipeline import IngestResult, LogWriter, ingest_item, ingest_items
from monitor.sources.feeds import FeedItem
from monitor.store.log import EventStore
from monitor.watches import load_watch
from tests.conftest import RULES, SEEDS
from tests.support.httpserver import LOCAL_LIMITS, Reply, Request, TestServer

WATCH = load_watch(RULES / "watches" / "nagorno-karabakh.yaml")
PAGES = sorted((SEEDS / "pages").glob("*/*.html"))
# A long page of our own sentences: long enough (about a second of trafilatura) that a worker
# can be killed while it reads it.
PARAGRAPH = (
    "<p>Armenian officials said {n} soldiers were killed near Stepanakert on Tuesday, while "
    "Azerbaijan denied that its drones had struck the village, and Turkey called for talks.</p>"
)
LONG_PAGE = (
    "<html><head><title>Long report</title></head><body><article><h1>Long report</h1>"
    + "".join(PARAGRAPH.format(n=n % 90 + 2) for n in range(2500))
    + "</article></body></html>"
).encode()

LONG = Reply(200, LONG_PAGE, {"Content-Type": "text/html"})


@pytest.fixture(scope="module")
def pool() -> Iterator[ExtractPool]:
    pool = ExtractPool(2)
    yield pool
    pool.close()


def store_at(path: Path) -> EventStore:
    return EventStore(f"sqlite:///{path}")


def item(base: str, path: str, n: int = 0) -> FeedItem:
    return FeedItem(feed="wire", url=f"{base}/{path}", guid=f"{path}#{n}", title=None)


def facts_of(store: EventStore) -> list[dict]:
    return [
        e.data.model_dump(mode="json") for e in store.read() if isinstance(e.data, FactReported)
    ]


def killed_while_busy(pool: ExtractPool, times: int, stop: threading.Event) -> threading.Thread:
    """A thread that SIGKILLs a worker once its CPU time shows it is reading (``times`` kills
    at most: each new pool's workers are fair game), until ``stop``."""

    def cpu(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run() -> None:
        seen: dict[int, float] = {}
        kills = 0
        while kills < times and not stop.is_set():
            for pid in pool.pids():
                used = cpu(pid)
                if pid in seen and used - seen[pid] >= 0.05:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                    seen.clear()
                    break
                seen.setdefault(pid, used)
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_pool_reads_the_same_facts_as_this_process(tmp_path: Path, pool: ExtractPool) -> None:
    inline, pooled = store_at(tmp_path / "inline.db"), store_at(tmp_path / "pooled.db")
    with TestServer(SEEDS / "pages") as server:
        for page in PAGES:
            path = page.relative_to(SEEDS / "pages").as_posix()
            for store, used in ((inline, None), (pooled, pool)):
                result = ingest_item(
                    store, item(server.base, path), [WATCH], limits=LOCAL_LIMITS, pool=used
                )
                assert result.status == "extracted" and result.facts > 0
    assert facts_of(pooled) == facts_of(inline) and len(facts_of(inline)) >= 10
    titles = [e.data.title for e in pooled.read() if isinstance(e.data, ArticleExtracted)]
    assert all(titles)  # the page's own title, read in the worker: the entry had none


def ingest_under_kills(
    store: EventStore, server: TestServer, pool: ExtractPool, kills: int
) -> IngestResult:
    """Ingest the long page through ``pool`` while up to ``kills`` workers are killed."""
    stop = threading.Event()
    killer = killed_while_busy(pool, kills, stop)
    try:
        return ingest_item(
            store, item(server.base, "long"), [WATCH], limits=LOCAL_LIMITS, pool=pool
        )
    finally:
        stop.set()
        killer.join()


def test_a_worker_killed_mid_article_loses_nothing(tmp_path: Path, pool: ExtractPool) -> None:
    inline, pooled = store_at(tmp_path / "inline.db"), store_at(tmp_path / "pooled.db")
    pool.run(ExtractJob(body=b"<p>warm</p>", url="x", watches=[], budget=5))  # workers up
    rebuilds = pool.rebuilds
    with TestServer() as server:
        server.route("/long", LONG)
        result = ingest_under_kills(pooled, server, pool, 1)
        ingest_item(inline, item(server.base, "long"), [WATCH], limits=LOCAL_LIMITS)
    assert pool.rebuilds == rebuilds + 1  # the worker did die under the article
    assert result.status == "extracted" and result.facts > 0
    assert facts_of(pooled) == facts_of(inline)


def test_an_article_whose_worker_dies_twice_is_recorded_and_retried_later(
    tmp_path: Path, pool: ExtractPool
) -> None:
    store = store_at(tmp_path / "log.db")
    pool.run(ExtractJob(body=b"<p>warm</p>", url="x", watches=[], budget=5))
    with TestServer() as server:
        server.route("/long", LONG)
        first = ingest_under_kills(store, server, pool, 2)
        again = ingest_item(
            store, item(server.base, "long"), [WATCH], limits=LOCAL_LIMITS, pool=pool
        )
    failed = [e.data for e in store.read() if isinstance(e.data, ArticleFailed)]
    assert first.status == "failed" and "worker died" in (first.reason or "")
    assert [(f.stage, f.retryable) for f in failed] == [("extract", True)]
    assert again.status == "extracted" and again.facts > 0


def test_a_hung_article_is_stopped_and_recorded(tmp_path: Path) -> None:
    store = store_at(tmp_path / "log.db")
    impatient = ExtractPool(2, hang_after=0.2)
    try:
        with TestServer() as server:
            server.route("/long", LONG)
            result = ingest_item(
                store,
                item(server.base, "long"),
                [WATCH],
                limits=LOCAL_LIMITS,
                pool=impatient,
                extract_budget=0.01,
            )
        assert impatient.rebuilds == 1 and not impatient.pids()
    finally:
        impatient.close()
    failed = [e.data for e in store.read() if isinstance(e.data, ArticleFailed)]
    assert result.status == "failed" and "took longer" in (result.reason or "")
    assert [(f.stage, f.retryable) for f in failed] == [("extract", True)]


def test_the_cpu_budget_holds_in_a_worker(tmp_path: Path, pool: ExtractPool) -> None:
    store = store_at(tmp_path / "log.db")
    with TestServer() as server:
        server.route("/long", LONG)
        result: IngestResult = ingest_item(
            store,
            item(server.base, "long"),
            [WATCH],
            limits=LOCAL_LIMITS,
            pool=pool,
            extract_budget=0,
        )
    failed = [e.data for e in store.read() if isinstance(e.data, ArticleFailed)]
    assert result.status == "failed" and "time budget" in (result.reason or "")
    assert [(f.stage, f.retryable) for f in failed] == [("normalize", False)]


def test_a_poll_fetches_the_next_pages_while_the_pool_reads(
    tmp_path: Path, pool: ExtractPool
) -> None:
    """The long page goes first; the short ones after it are fetched (and read by the other
    worker) before the long one is done, yet the log keeps the order of the feed."""
    store = store_at(tmp_path / "log.db")
    pool.run(ExtractJob(body=b"<p>warm</p>", url="x", watches=[], budget=5))
    asked: dict[str, datetime] = {}

    def answer(body: bytes) -> Callable[[Request], Reply]:
        def reply(req: Request) -> Reply:
            asked[req.path] = datetime.now(UTC)
            return Reply(200, body, {"Content-Type": "text/html; charset=utf-8"})

        return reply

    with TestServer() as server:
        server.route("/long", answer(LONG_PAGE))
        for n, page in enumerate(PAGES):
            server.route(f"/short/{n}", answer(page.read_bytes()))
        items = [item(server.base, "long")]
        items += [item(server.base, f"short/{n}") for n in range(len(PAGES))]
        # One article a transaction here, so the log tells when each one was finished.
        writer = LogWriter(store, group=1)
        done = ingest_items(store, items, [WATCH], limits=LOCAL_LIMITS, pool=pool, writer=writer)
        writer.close()
    assert done.complete and all(r.status == "extracted" for r in done.results)
    events = list(store.read())
    streams = list(dict.fromkeys(e.stream for e in events))
    assert streams == [f"article:{i.article_id}" for i in items]  # the order of the feed
    long_done = next(e.recorded_at for e in events if e.type == "ArticleExtracted")
    assert all(asked[f"/short/{n}"] < long_done for n in range(len(PAGES)))


def test_pool_size_defaults_to_one_worker_per_core() -> None:
    assert pool_size(None) == os.cpu_count()
    assert pool_size(0) == 0 and ExtractPool(1).inline and ExtractPool(0).inline


def test_a_page_read_without_its_metadata_has_the_same_text() -> None:
    for page in PAGES:
        whole = article_text(page.read_bytes(), url=page.as_uri())
        bare = article_text(page.read_bytes(), url=page.as_uri(), metadata=False)
        assert bare.text == whole.text and whole.title and whole.published
        assert bare.title is None and bare.published is None


OWNER = """
import sys
from monitor.extract.pool import ExtractJob, ExtractPool
pool = ExtractPool(2)
pool.run(ExtractJob(body=b"<p>warm</p>", url="x", watches=[], budget=5))
pool.start()
print(" ".join(str(p) for p in pool.pids()), flush=True)
sys.stdin.read()  # until killed
"""


def test_workers_leave_when_the_process_owning_the_pool_is_killed() -> None:
    """SIGKILL leaves the pool no time to stop its workers; they must notice and go, or they
    (and their fork server) would outlive a crashed daemon for good."""
    import subprocess
    import sys

    from tests.support.daemon_helpers import wait_for

    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
    finally:
        owner.kill()
        owner.wait(30)
    wait_for(lambda: not any(alive(pid) for pid in workers), 30, "the orphaned workers to exit")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


PARENT = """
import json, sys
from pathlib import Path
from monitor.extract.pool import ExtractJob, ExtractPool
from monitor.watches import load_watch
page, watch = Path(sys.argv[1]).read_bytes(), load_watch(Path(sys.argv[2]))
pool = ExtractPool(2)
outcome = pool.run(ExtractJob(body=page, url="x", watches=[watch], budget=5))
pool.close()
heavy = ["trafilatura", "lxml", "htmldate", "monitor.extract.html", "monitor.extract.normalize",
         "monitor.extract.worker", "monitor.extract.gazetteer"]
print(json.dumps([len(outcome.found[0].facts), [m for m in heavy if m in sys.modules]]))
"""


def test_the_process_owning_the_pool_loads_no_extractor() -> None:
    """The daemon hands pages over and gets facts back; trafilatura, lxml and the readers stay
    in the workers (in the daemon they cost ~10 MB and every garbage collection a walk)."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PARENT, PAGES[0], RULES / "watches" / "nagorno-karabakh.yaml"],
        capture_output=True,
        text=True,
        check=True,
    )
    facts, loaded = json.loads(done.stdout.splitlines()[-1])
    assert facts > 0 and loaded == []


def test_workers_start_with_the_extractors_loaded_and_frozen(pool: ExtractPool) -> None:
    """The fork server loads and warms the extractors and freezes them (the import is silent
    when it fails: a worker would then load them itself, unshared)."""
    import gc
    import subprocess
    import sys

    pool.start()
    frozen = pool._current().submit(gc.get_freeze_count).result(timeout=60)
    probe = "import gc, monitor.extract.pool; gc.freeze(); print(gc.get_freeze_count())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    without_extractors = int(done.stdout)
    assert frozen > without_extractors + 10_000  # the extractors' objects are frozen too


def test_reading_a_page_leaves_no_page_text_in_trafilaturas_caches() -> None:
    """trafilatura caches whole element texts from page to page (~20 MB a worker, measured):
    they are let go once each page is read, in the workers and everywhere else."""
    from trafilatura.utils import line_processing, trim

    trim("some text  to fill the cache")
    assert trim.cache_info().currsize > 0
    text = article_text(PAGES[0].read_bytes(), url=PAGES[0].as_uri())
    assert text.text and text.title
    assert trim.cache_info().currsize == 0 and line_processing.cache_info().currsize == 0
