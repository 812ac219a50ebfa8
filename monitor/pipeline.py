"""The ingest path, left to right: item -> page -> text -> facts -> event log.

Items come from ``sources.polling.poll`` (the one poll, for the daemon and replay alike), or
from an article file named on the command line (``item_for_file``).

Each article's events are appended in one transaction, after the network work is done, so a
crash leaves either all of an article or none of it. Every key is derived from what was read
(guid or URL, content hash), so reading the same article again appends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import BaseModel

from monitor.events import (
    ArticleDiscovered,
    ArticleExtracted,
    ArticleFailed,
    ArticleFetched,
    ArticleRef,
    FactReported,
)
from monitor.extract.normalize import DEFAULT_BUDGET
from monitor.extract.pool import ExtractJob, ExtractOutcome, ExtractPool
from monitor.extract.text import ArticleText, TextHeader, decode, normalize_text, split_header
from monitor.sources.feeds import FeedItem
from monitor.sources.fetch import Fetched, FetchError, FetchLimits, fetch_link
from monitor.store.log import EventStore, NewEvent
from monitor.watches import Watch

log = logging.getLogger(__name__)

MAX_FETCH_FAILURES = 3
HEADER_BYTES = 4096  # where a text file's header block must fit


class IngestResult(BaseModel):
    article_id: str
    url: str
    status: str  # "extracted", "failed", "skipped"
    facts: int = 0
    new_events: int = 0
    reason: str | None = None
    published: datetime | None = None  # when extracted: the date the facts are placed at


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
    """Fetch, extract and normalize one article, then append all its events at once.
    `extract_budget`: CPU seconds its normalization may take, over all watches. `pool`: the
    worker processes that read text and facts (None: this thread does)."""
    stream = f"article:{item.article_id}"
    history = store.read_stream(stream)
    if any(e.type == "ArticleExtracted" for e in history):
        return IngestResult(
            article_id=item.article_id, url=item.url, status="skipped", reason="already extracted"
        )
    failures = [e for e in history if e.type == "ArticleFailed"]
    if len(failures) >= MAX_FETCH_FAILURES or any(
        isinstance(e.data, ArticleFailed) and not e.data.retryable for e in failures
    ):
        return IngestResult(
            article_id=item.article_id, url=item.url, status="skipped", reason="failed before"
        )
    discovered = _discovered(item)
    try:
        page = fetch_link(item.url, file_root=item.file_root, limits=limits, client=client)
    except FetchError as exc:
        # A refused link stays refused: retrying it cannot help.
        retryable = exc.kind != "refused"
        return _fail(store, item, [discovered], "fetch", str(exc), len(failures), retryable)
    fetched = _fetched(item, page)
    job = ExtractJob(
        body=page.body,
        url=page.final_url,
        content_type=page.content_type,
        # The page's own title and date count only where the feed entry has none.
        metadata=not (item.title and item.published),
        watches=list(watches),
        budget=extract_budget,
    )
    outcome = pool.run(job) if pool is not None else ExtractPool(0).run(job)
    if outcome.text is None:
        reason = outcome.error or "no text"
        seen = [discovered, fetched]
        return _fail(store, item, seen, "extract", reason, len(failures), outcome.retryable)
    text = outcome.text
    events = [discovered, fetched, *_extracted(item, text, outcome)]
    result = store.append(events)
    facts = sum(1 for e in events if isinstance(e.data, FactReported))
    log.info("article %s: %d facts (%s)", item.url, facts, item.outlet or item.feed)
    # Normalization that failed (a reader, or the time budget) leaves the text extracted but
    # its facts incomplete: the ingest reports a failure, as a replay must count it.
    failed = [e.data.reason for e in events if isinstance(e.data, ArticleFailed)]
    if failed:
        log.warning("article %s: normalization failed: %s", item.url, "; ".join(failed))
    return IngestResult(
        article_id=item.article_id,
        url=item.url,
        status="failed" if failed else "extracted",
        facts=facts,
        new_events=len(result.new),
        reason="; ".join(failed) or None,
        published=item.published or text.published,
    )


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
    stream = f"article:{item.article_id}"
    out = [
        NewEvent(
            stream=stream,
            data=ArticleExtracted(
                article_id=item.article_id,
                url=item.url,
                title=item.title or text.title,
                text=text.text,
                text_hash=text.text_hash,
                language=text.language,
                published=published,
                watches=[found.watch for found in outcome.found],
            ),
            idempotency_key=f"extracted:{item.article_id}:{text.text_hash}",
            occurred_at=published,
        )
    ]
    ref = ArticleRef(
        article_id=item.article_id,
        url=item.url,
        outlet=item.outlet,
        title=item.title or text.title,
        published=published,
    )
    for found in outcome.found:
        if found.problems:
            out.append(_normalize_failed(item, text, found.watch, found.problems))
        for index, fact in enumerate(found.facts):
            out.append(
                NewEvent(
                    stream=stream,
                    data=FactReported(watch=found.watch, article=ref, fact=fact),
                    # Keyed on the text, not the URL: the same story syndicated under another
                    # address adds no facts a second time.
                    idempotency_key=f"fact:{found.watch}:{text.text_hash}:{index}:{fact.type}",
                    occurred_at=published,
                )
            )
    return out


def _normalize_failed(
    item: FeedItem, text: ArticleText, watch: str, problems: list[str]
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
        idempotency_key=f"failed:{item.article_id}:normalize:{watch}:{text.text_hash}",
        occurred_at=item.published or text.published,
    )


def _fail(
    store: EventStore,
    item: FeedItem,
    events: list[NewEvent],
    stage: str,
    reason: str,
    previous: int,
    retryable: bool | None = None,
) -> IngestResult:
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
        idempotency_key=f"failed:{item.article_id}:{stage}:{previous + 1}",
        occurred_at=item.published,
    )
    result = store.append([*events, failed])
    log.warning("article %s failed at %s: %s", item.url, stage, reason)
    return IngestResult(
        article_id=item.article_id,
        url=item.url,
        status="failed",
        reason=reason,
        new_events=len(result.new),
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
