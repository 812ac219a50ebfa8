"""The ingest path, left to right: items -> pages -> text -> facts -> event log.

Items come from ``sources.polling.poll`` (the one poll, for the daemon and replay alike), or
from an article file named on the command line (``item_for_file``). ``ingest_items`` is the one
path for all of them; ``ingest_item`` is that path for a single article.

A poll's articles flow through three stages at once: the polling thread fetches the next pages
while the extraction pool reads the ones before (``AHEAD`` of them in flight), and hands the
finished articles, in publication order, to the log's one writer (``LogWriter``). The writer
appends whatever articles are waiting when it is free, from every poll, up to
``GROUP_ARTICLES`` in one transaction (group commit: nothing waits for a group to fill; a
group grows only while the previous transaction runs). Each article stays one batch of its
own in that transaction, with its own correlation id, so a crash leaves every article whole
or absent, never in part; a group that the database refuses is appended article by article,
so one bad article costs only itself. A poll returns once all its articles are stored. Every
key is derived from what was read (guid or URL, content hash), so reading the same article
again appends nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import BaseModel
from sqlalchemy import select

from monitor.events import (
    ArticleDiscovered,
    ArticleExtracted,
    ArticleFailed,
    ArticleFetched,
    ArticleRef,
    FactReported,
    parse_event_data,
)
from monitor.extract.pool import (
    DEFAULT_BUDGET,
    Extraction,
    ExtractJob,
    ExtractOutcome,
    ExtractPool,
)
from monitor.extract.text import ArticleText, TextHeader, decode, normalize_text, split_header
from monitor.sources.feeds import FeedItem
from monitor.sources.fetch import Fetched, FetchError, FetchLimits, fetch_link
from monitor.store.log import IN_CHUNK, AppendResult, EventStore, NewEvent
from monitor.store.tables import EventRow, table_of
from monitor.watches import Watch

log = logging.getLogger(__name__)

MAX_FETCH_FAILURES = 3
HEADER_BYTES = 4096  # where a text file's header block must fit
# Group commit: articles appended in one transaction at most. A transaction (and its fsync)
# per article made the log the bottleneck of a backlog, and held the polls up behind it.
GROUP_ARTICLES = 64
# Articles waiting for the writer, at most, before the polls that hand over more wait too.
WRITER_QUEUE = 4 * GROUP_ARTICLES
# Pages of one poll fetched and in the pool beyond the one being appended: enough that every
# worker has an article queued while the poll threads fetch, few enough to bound memory.
AHEAD = 4


class IngestResult(BaseModel):
    article_id: str
    url: str
    status: str  # "extracted", "failed", "skipped"
    facts: int = 0
    new_events: int = 0
    reason: str | None = None
    published: datetime | None = None  # when extracted: the date the facts are placed at


class Ingested(BaseModel):
    """What ``ingest_items`` did: one result per article it reached, in the order given."""

    results: list[IngestResult] = []
    # False when it stopped before the last item (``proceed`` said so), or the log refused an
    # article: the poll is then incomplete, and the next one reads the whole feed again.
    complete: bool = True


class History(BaseModel):
    """What the log already says about one article."""

    extracted: bool = False
    failures: int = 0
    final: bool = False  # a failure that retrying cannot help

    def skip_reason(self) -> str | None:
        if self.extracted:
            return "already extracted"
        if self.final or self.failures >= MAX_FETCH_FAILURES:
            return "failed before"
        return None


def article_histories(store: EventStore, article_ids: Sequence[str]) -> dict[str, History]:
    """The history of each of these articles that has one: one query per 500 articles."""
    streams = sorted({f"article:{a}" for a in article_ids})
    events = table_of(EventRow).c
    found: dict[str, History] = {}
    with store.read_connection() as connection:
        for i in range(0, len(streams), IN_CHUNK):
            stmt = select(events.stream, events.type, events.schema_version, events.data).where(
                events.stream.in_(streams[i : i + IN_CHUNK]),
                events.type.in_(["ArticleExtracted", "ArticleFailed"]),
            )
            for stream, type_, version, data in connection.execute(stmt):
                history = found.setdefault(stream.removeprefix("article:"), History())
                if type_ == "ArticleExtracted":
                    history.extracted = True
                    continue
                history.failures += 1
                failed = parse_event_data(type_, version, data)
                if isinstance(failed, ArticleFailed) and not failed.retryable:
                    history.final = True
    return found


def ingest_item(
    store: EventStore,
    item: FeedItem,
    watches: Sequence[Watch],
    *,
    limits: FetchLimits | None = None,
    client: httpx.Client | None = None,
    extract_budget: float = DEFAULT_BUDGET,
    pool: ExtractPool | None = None,
) -> IngestResult:
    """``ingest_items`` for one article: fetched, read, and appended in one transaction."""
    done = ingest_items(
        store,
        [item],
        watches,
        limits=limits,
        client=client,
        extract_budget=extract_budget,
        pool=pool,
    )
    return done.results[0]


def ingest_items(
    store: EventStore,
    items: Sequence[FeedItem],
    watches: Sequence[Watch],
    *,
    limits: FetchLimits | None = None,
    client: httpx.Client | None = None,
    extract_budget: float = DEFAULT_BUDGET,
    pool: ExtractPool | None = None,
    writer: LogWriter | None = None,
    proceed: Callable[[], bool] = lambda: True,
    histories: Mapping[str, History] | None = None,
) -> Ingested:
    """Fetch, extract and normalize ``items``, appending them in the order given.

    `extract_budget`: CPU seconds one article's normalization may take, over all watches.
    `pool`: the worker processes that read text and facts (None: this thread does).
    `writer`: the log's writer, shared by every poll (None: one for this call).
    `proceed` is asked before each fetch; once it says no, the articles already fetched are
    finished and appended, the rest are left for the next poll, and the result is incomplete.
    `histories`: the items' ``article_histories``, when the caller has read them already.
    Returns when every article handed to the writer is stored.
    """
    pool = pool if pool is not None else ExtractPool(0)
    own = writer is None
    writer = writer if writer is not None else LogWriter(store)
    if histories is None:
        histories = article_histories(store, [i.article_id for i in items])
    articles: list[_Article] = []
    flowing: deque[_Article] = deque()  # fetched, not yet handed to the writer (oldest first)
    handed: list[_Article] = []
    seen: set[str] = set()
    complete = True
    try:
        for item in items:
            if not proceed():
                complete = False
                break
            history = histories.get(item.article_id, History())
            skip = "listed twice" if item.article_id in seen else history.skip_reason()
            seen.add(item.article_id)
            article = _Article(item, history.failures)
            articles.append(article)
            if skip is not None:
                article.result = IngestResult(
                    article_id=item.article_id, url=item.url, status="skipped", reason=skip
                )
                continue
            article.start(watches, limits, client, extract_budget, pool)
            flowing.append(article)
            while flowing and (len(flowing) > AHEAD or flowing[0].ready()):
                handed.append(writer.submit(flowing.popleft().finish()))
        while flowing:
            handed.append(writer.submit(flowing.popleft().finish()))
    finally:
        # What was handed over is stored (or refused) before the poll ends, even on an error.
        writer.wait(handed)
        if own:
            writer.close()
    error = next((a.error for a in handed if a.error is not None), None)
    if error is not None:
        raise error
    refused = [a.refused for a in handed if a.refused is not None]
    if refused and len(refused) == len(handed):
        # Not one article taken: the error is the database's, not an article's. It ends the
        # poll as any database error does (the next poll reads the feed whole).
        raise refused[0]
    results = [a.result for a in articles if a.result is not None]
    return Ingested(results=results, complete=complete and not refused)


class _Article:
    """One article on its way to the log: fetched, then read (in the pool), then appended."""

    def __init__(self, item: FeedItem, failures: int) -> None:
        self.item = item
        self.failures = failures  # failures recorded before: the next one's key counts on
        self.seen: list[NewEvent] = [_discovered(item)]
        self.extraction: Extraction | None = None
        self.events: list[NewEvent] = []
        self.result: IngestResult | None = None
        self.failed_at: str | None = None  # the stage that failed, before any text was read
        self.stored_yet = threading.Event()  # set by the writer once appended or refused
        self.refused: Exception | None = None  # why the log refused it, even alone
        self.error: BaseException | None = None  # the writer failed: the poll fails with it

    def start(
        self,
        watches: Sequence[Watch],
        limits: FetchLimits | None,
        client: httpx.Client | None,
        budget: float,
        pool: ExtractPool,
    ) -> None:
        """Fetch the page here, and hand it to the pool (which may read it on this thread)."""
        item = self.item
        try:
            page = fetch_link(item.url, file_root=item.file_root, limits=limits, client=client)
        except FetchError as exc:
            # A refused link stays refused: retrying it cannot help.
            self._fail("fetch", str(exc), exc.kind != "refused")
            return
        self.seen.append(_fetched(item, page))
        job = ExtractJob(
            body=page.body,
            url=page.final_url,
            content_type=page.content_type,
            # The page's own title and date count only where the feed entry has none.
            metadata=not (item.title and item.published),
            published=item.published,
            watches=list(watches),
            budget=budget,
        )
        self.extraction = pool.submit(job)

    def ready(self) -> bool:
        return self.extraction is None or self.extraction.done()

    def finish(self) -> _Article:
        """Wait for the pool's outcome and turn it into this article's events."""
        if self.extraction is None:
            return self  # failed at the fetch: its events are made
        outcome, self.extraction = self.extraction.result(), None
        if outcome.text is None:
            self._fail("extract", outcome.error or "no text", outcome.retryable)
            return self
        self.events = [*self.seen, *_extracted(self.item, outcome.text, outcome)]
        facts = sum(1 for e in self.events if isinstance(e.data, FactReported))
        # Normalization that failed (a reader, or the time budget) leaves the text extracted
        # but its facts incomplete: the ingest reports a failure, as a replay must count it.
        failed = [e.data.reason for e in self.events if isinstance(e.data, ArticleFailed)]
        self.result = IngestResult(
            article_id=self.item.article_id,
            url=self.item.url,
            status="failed" if failed else "extracted",
            facts=facts,
            reason="; ".join(failed) or None,
            published=self.item.published or outcome.text.published,
        )
        return self

    def _fail(self, stage: str, reason: str, retryable: bool | None) -> None:
        item = self.item
        failed = NewEvent(
            stream=f"article:{item.article_id}",
            data=ArticleFailed.model_validate(
                {
                    "article_id": item.article_id,
                    "url": item.url,
                    "stage": stage,
                    "reason": reason,
                    "retryable": retryable,
                }
            ),
            idempotency_key=f"failed:{item.article_id}:{stage}:{self.failures + 1}",
            occurred_at=item.published,
        )
        self.events = [*self.seen, failed]
        self.failed_at = stage
        self.result = IngestResult(
            article_id=item.article_id, url=item.url, status="failed", reason=reason
        )

    def refuse(self, exc: Exception) -> None:
        """The log would not take this article: it is reported, and the poll incomplete."""
        self.refused = exc
        assert self.result is not None
        self.result.status, self.result.reason = "failed", f"not stored: {exc}"
        self.result.facts = 0
        log.error("article %s could not be appended: %s", self.item.url, exc)

    def stored(self, appended: AppendResult) -> None:
        assert self.result is not None
        item, result = self.item, self.result
        result.new_events = len(appended.new)
        if self.failed_at is not None:
            log.warning("article %s failed at %s: %s", item.url, self.failed_at, result.reason)
            return
        log.info("article %s: %d facts (%s)", item.url, result.facts, item.outlet or item.feed)
        if result.status == "failed":
            log.warning("article %s: normalization failed: %s", item.url, result.reason)


class LogWriter:
    """The log's one writer of articles: a thread that appends the articles waiting for it,
    in the order they were handed over, up to ``group`` in one transaction.

    Polls hand articles over with ``submit`` and ``wait`` for them at the end of the poll,
    so fetching and reading go on while the log is busy (with another group, or with the
    projections' transactions). Thread-safe; the thread starts with the first article.

    Each wake-up goes to whom it concerns: the writer when articles arrive, the polls
    waiting for room when a group leaves the queue, a poll when its own articles are stored
    (one condition for all of them woke every poll thread at each of those, several times an
    article)."""

    def __init__(
        self, store: EventStore, *, group: int = GROUP_ARTICLES, queue: int = WRITER_QUEUE
    ) -> None:
        self.store = store
        self.group = max(1, group)
        self.limit = max(self.group, queue)
        self._waiting: deque[_Article] = deque()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer waits here for articles
        self._room = threading.Condition(self._lock)  # submitters wait here for room
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, article: _Article) -> _Article:
        """Queue ``article`` (waiting while the queue is full); returns it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the log writer is closed")
            while len(self._waiting) >= self.limit:
                self._room.wait()
            self._waiting.append(article)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="log writer", daemon=True)
                self._thread.start()
            self._work.notify()
        return article

    def wait(self, articles: Sequence[_Article]) -> None:
        """Until each of ``articles`` is stored or refused."""
        for article in articles:
            article.stored_yet.wait()

    def close(self) -> None:
        """Store what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            self._work.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._work.wait()
                if not self._waiting:
                    return  # closed, and nothing left
                n = min(self.group, len(self._waiting))
                group = [self._waiting.popleft() for _ in range(n)]
                self._room.notify(n)  # room in the queue for as many
            try:
                self._append(group)
            except BaseException as exc:  # never leave a poll waiting for a dead writer
                for article in group:
                    article.error = article.error or exc
            for article in group:
                article.stored_yet.set()

    def _append(self, group: list[_Article]) -> None:
        try:
            appended = self.store.append_many([a.events for a in group])
        except Exception as exc:
            if len(group) == 1:
                group[0].refuse(exc)
                return
            log.warning(
                "a group of %d articles was refused (%s): appending each alone", len(group), exc
            )
            for article in group:  # in order: the refused ones are left for the next poll
                try:
                    article.stored(self.store.append(article.events))
                except Exception as alone:
                    article.refuse(alone)
            return
        for article, result in zip(group, appended, strict=True):
            article.stored(result)


def _discovered(item: FeedItem) -> NewEvent:
    return NewEvent(
        stream=f"article:{item.article_id}",
        data=ArticleDiscovered(
            article_id=item.article_id,
            feed=item.feed,
            url=item.url,
            guid=item.guid,
            title=item.title,
            outlet=item.outlet,
            published=item.published,
        ),
        idempotency_key=f"discovered:{item.article_id}",
        occurred_at=item.published,
    )


def _fetched(item: FeedItem, page: Fetched) -> NewEvent:
    return NewEvent(
        stream=f"article:{item.article_id}",
        data=ArticleFetched(
            article_id=item.article_id,
            url=item.url,
            final_url=page.final_url,
            status=page.status,
            content_type=page.content_type,
            content_hash=page.content_hash,
            size=len(page.body),
        ),
        idempotency_key=f"fetched:{item.article_id}:{page.content_hash}",
        occurred_at=item.published,
    )


def _extracted(item: FeedItem, text: ArticleText, outcome: ExtractOutcome) -> list[NewEvent]:
    published = item.published or text.published
    # Each a SHA-256 (of the whole text, for the hash): computed once, not once a fact.
    article_id, text_hash = item.article_id, text.text_hash
    stream = f"article:{article_id}"
    out = [
        NewEvent(
            stream=stream,
            data=ArticleExtracted(
                article_id=article_id,
                url=item.url,
                title=item.title or text.title,
                text=text.text,
                text_hash=text_hash,
                language=text.language,
                published=published,
                watches=[found.watch for found in outcome.found],
            ),
            idempotency_key=f"extracted:{article_id}:{text_hash}",
            occurred_at=published,
        )
    ]
    ref = ArticleRef(
        article_id=article_id,
        url=item.url,
        outlet=item.outlet,
        title=item.title or text.title,
        published=published,
    )
    for found in outcome.found:
        if found.problems:
            out.append(_normalize_failed(item, text_hash, published, found.watch, found.problems))
        for index, fact in enumerate(found.facts):
            out.append(
                NewEvent(
                    stream=stream,
                    data=FactReported(watch=found.watch, article=ref, fact=fact),
                    # Keyed on the text, not the URL: the same story syndicated under another
                    # address adds no facts a second time.
                    idempotency_key=f"fact:{found.watch}:{text_hash}:{index}:{fact.type}",
                    occurred_at=published,
                )
            )
    return out


def _normalize_failed(
    item: FeedItem, text_hash: str, published: datetime | None, watch: str, problems: list[str]
) -> NewEvent:
    """Normalization that failed on this text, wholly (its time budget ran out) or in one
    fact reader (the article keeps the other readers' facts): the failure is a fact of its
    own, not retryable, since the same text fails the same way."""
    return NewEvent(
        stream=f"article:{item.article_id}",
        data=ArticleFailed(
            article_id=item.article_id,
            url=item.url,
            stage="normalize",
            reason=f"watch {watch}: " + "; ".join(problems),
            retryable=False,
        ),
        idempotency_key=f"failed:{item.article_id}:normalize:{watch}:{text_hash}",
        occurred_at=published,
    )


def item_for_file(path: Path, published: datetime | None = None) -> FeedItem:
    """An article file given directly (no feed): its URL is its file:// location.

    A ``.txt`` file's header block (``Title:``, ``Published:``) stands in for the feed entry
    a page would have; ``published`` (``--published``) overrides its date.
    """
    header = TextHeader()
    if path.suffix.lower() == ".txt":
        with path.open("rb") as handle:
            head = handle.read(HEADER_BYTES)
        header, _ = split_header(normalize_text(decode(head)))
    url = path.resolve().as_uri()
    return FeedItem(
        feed="file",
        url=url,
        guid=url,
        title=header.title or path.stem,
        published=published or header.published,
        file_root=path.resolve().parent,
    )
