"""The CPU half of ingest, one article at a time: page -> text -> relevant watches -> facts.

``extract_article`` (``monitor.extract.worker``) is pure computation on plain data (the
pydantic models here in and out, no store, no network), so it can run in another process:
``ExtractPool`` runs it in worker processes (``cpu_workers`` of them, so that every core reads
articles while the poll threads fetch and the one writer appends), or on the calling thread
when ``cpu_workers`` is 0 or 1. This module is the daemon's side of it and loads no extractor.

Workers start from a forkserver (never ``fork``: the daemon has threads), which loads and
warms the extractors once (``monitor.extract.forkserver``). A worker that dies
(killed, out of memory, a crash in C code) breaks the pool: the pool is rebuilt and the
article is tried once more; if it is lost again, the outcome says so and the pipeline records
a retryable ``ArticleFailed``. An article that runs past ``hang_after`` seconds of wall time
(trafilatura has no time budget of its own) has its workers stopped the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from monitor.events import Fact
from monitor.extract.text import ArticleText
from monitor.watches import Watch

log = logging.getLogger(__name__)

# Wall seconds an article may take in a worker, beyond its normalization budget, before the
# worker is stopped: far above any real page (tens of milliseconds), so only a hang hits it.
HANG_FLOOR = 60.0
ATTEMPTS = 2  # tries of one article when its worker dies under it
# CPU seconds one article's normalization may take, over all its watches (config:
# extract_budget). A news article takes milliseconds; only a hostile or broken text comes near.
DEFAULT_BUDGET = 5.0


class ExtractJob(BaseModel):
    """What the CPU stages need to know about one fetched page."""

    body: bytes
    url: str
    content_type: str | None = None
    metadata: bool = True  # read the page's own title and date (the feed entry lacks one)
    published: datetime | None = None  # the feed entry's date, which the page's cannot override
    watches: list[Watch]
    budget: float  # CPU seconds normalization may take, over all watches (extract_budget)


class WatchFacts(BaseModel):
    """What normalization read for one relevant watch."""

    watch: str
    facts: list[Fact]
    problems: list[str] = []  # a failed reader each, or the one reason the whole text failed


class ExtractOutcome(BaseModel):
    """The text and facts of one page; or, with ``text`` None, why there are none."""

    text: ArticleText | None = None
    found: list[WatchFacts] = []  # relevant watches in the order given, with their facts
    error: str | None = None
    retryable: bool | None = None  # None: the failure's stage decides (ArticleFailed)


# The pool submits these, never ``monitor.extract.worker``'s functions themselves: pickling a
# function imports its module in this process, and the daemon's own process must not load what
# the workers load (trafilatura, lxml and the fact readers: ~10 MB that it never uses). In a
# worker, the import finds the module that its fork server loaded already.


def _read(job: ExtractJob) -> ExtractOutcome:
    from monitor.extract import worker

    return worker.extract_article(job)


def _start(owner: int) -> None:
    from monitor.extract import worker

    worker.start(owner)


def _warm_up() -> None:
    from monitor.extract import worker

    worker.warm_up()


def pool_size(setting: int | None) -> int:
    """Worker processes for a ``cpu_workers`` setting: None means one per core."""
    return (os.cpu_count() or 1) if setting is None else setting


class ExtractPool:
    """``extract_article`` on ``workers`` processes; inline when ``workers`` <= 1.

    Thread-safe: every poll thread submits here. Processes start on first use."""

    def __init__(self, workers: int, *, hang_after: float = HANG_FLOOR) -> None:
        self.workers = workers
        self.hang_after = hang_after
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self.rebuilds = 0  # pools replaced after a worker died or hung

    @property
    def inline(self) -> bool:
        return self.workers <= 1

    def submit(self, job: ExtractJob) -> Extraction:
        """Start reading ``job`` and return at once (inline: read it now), so that a poll can
        fetch its next page while this one is read and keep every worker busy."""
        if self.inline:
            from monitor.extract.worker import extract_article

            return Extraction(self, job, outcome=extract_article(job))
        return Extraction(self, job)

    def run(self, job: ExtractJob) -> ExtractOutcome:
        """The outcome of ``job``, waited for."""
        return self.submit(job).result()

    def _submit(self, job: ExtractJob) -> tuple[ProcessPoolExecutor, Future[ExtractOutcome]]:
        while True:
            executor = self._current()
            try:
                return executor, executor.submit(_read, job)
            except BrokenProcessPool:
                self._replace(executor)  # it broke under another thread's article
            except RuntimeError:
                if self._closed:
                    raise
                # shut down by another thread that replaced it a moment ago: take the new one

    def pids(self) -> list[int]:
        """The worker processes' ids (tests, metrics)."""
        with self._lock:
            return [p.pid for p in _processes(self._executor) if p.pid is not None]

    def start(self) -> None:
        """Start the workers now (the daemon, at start-up), not with the first article: one
        warm-up each (the executor starts a process for each job that finds none idle)."""
        if not self.inline:
            executor = self._current()
            for _ in range(self.workers):
                executor.submit(_warm_up)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            _stop(executor, kill=False)

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the extraction pool is closed")
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                # Workers fork from a server that has loaded and warmed the extractors once.
                context.set_forkserver_preload(["monitor.extract.forkserver"])
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor, *, stop: bool = False) -> None:
        """Drop ``broken`` (once, however many threads saw it fail); the next job starts a
        new pool. ``stop``: its workers are killed first (a hung article)."""
        with self._lock:
            if self._executor is not broken:
                return  # another thread replaced it already
            self._executor = None
            self.rebuilds += 1
        _stop(broken, kill=stop)


class Extraction:
    """One article submitted to the pool; ``result`` waits for its outcome. A worker lost
    under it is retried once on a new pool; one that hangs has its workers stopped."""

    def __init__(
        self, pool: ExtractPool, job: ExtractJob, *, outcome: ExtractOutcome | None = None
    ) -> None:
        self.pool, self.job = pool, job
        self._outcome = outcome
        self._running: tuple[ProcessPoolExecutor, Future[ExtractOutcome]] | None = None
        if outcome is None:
            self._running = pool._submit(job)

    def done(self) -> bool:
        """Finished (or failed) already: ``result`` will not wait."""
        return self._running is None or self._running[1].done()

    def result(self) -> ExtractOutcome:
        if self._outcome is None:
            self._outcome = self._wait()
        return self._outcome

    def _wait(self) -> ExtractOutcome:
        pool, job = self.pool, self.job
        # The clock starts when the caller waits, not at submission: time spent queued
        # behind other articles is not this article hanging.
        patience = pool.hang_after + 4 * job.budget
        lost = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                self._running = pool._submit(job)
            assert self._running is not None
            executor, future = self._running
            try:
                return future.result(timeout=patience)
            except BrokenProcessPool as exc:
                lost = f"its extraction worker died ({exc})"
            except FutureTimeout:
                pool._replace(executor, stop=True)
                lost = f"extraction took longer than {patience:g} s"
                log.warning("%s: %s; workers stopped", job.url, lost)
                break  # a page that hangs once would hang again now: a later poll retries
            log.warning("%s: %s; retrying on a new pool", job.url, lost)
            pool._replace(executor)
        return ExtractOutcome(error=lost, retryable=True)


def _processes(executor: ProcessPoolExecutor | None) -> list[Any]:
    # ProcessPoolExecutor has no public list of its workers before Python 3.14.
    return list((getattr(executor, "_processes", None) or {}).values())


def _stop(executor: ProcessPoolExecutor, *, kill: bool) -> None:
    processes = _processes(executor)
    if kill:
        for process in processes:
            process.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
