"""One poll of one feed: conditional GET, parse, and the outcome as events.

The only poll: the daemon calls it under a feed lease, ``monitor replay`` without one, and
both append the same events with the same keys. With a lease it sends the validators
remembered from the last complete poll, so an unchanged feed costs one ``304 Not Modified``
and appends nothing. A failure appends ``FeedFailed``; a changed feed, or the first success
after a failure, appends ``FeedPolled``: the feed health projection is built from those.
"""

from __future__ import annotations

import logging

import httpx
from pydantic import BaseModel

from monitor.config import FeedConfig
from monitor.events import EntrySkipped, FeedFailed, FeedPolled
from monitor.leases import Lease
from monitor.pipeline import History, article_histories
from monitor.sources.feeds import FeedError, FeedItem, ParsedFeed, parse_feed
from monitor.sources.fetch import FetchError, FetchLimits, fetch
from monitor.store.log import EventStore, NewEvent

log = logging.getLogger(__name__)


class PollOutcome(BaseModel):
    """What one poll found, as the schedule (``FeedLeases.complete``) and replay need it."""

    ok: bool
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    items: int = 0
    new_items: int = 0
    # False when the poll stopped before every item was ingested (shutdown, lost lease): the
    # validators are then not stored, so the next poll gets the full feed again.
    complete: bool = True
    error: str | None = None
    error_kind: str | None = None
    retry_after: float | None = None
    appended: int = 0  # events the poll itself appended (FeedPolled / FeedFailed / EntrySkipped)
    skipped: int = 0  # entries that could not be items (no link), each recorded as EntrySkipped


def poll(
    store: EventStore,
    feed: FeedConfig,
    lease: Lease | None,
    *,
    limits: FetchLimits,
    client: httpx.Client,
) -> tuple[list[FeedItem], PollOutcome, dict[str, History]]:
    """Fetch and parse ``feed``; record the outcome in the log; return items, outcome and
    what the log already says of the items' articles (``article_histories``, for ingest).

    ``lease`` is None for a poll outside the schedule (``monitor replay``): no validators are
    sent, so the feed is read in full.
    """
    stream = f"feed:{feed.name}"
    try:
        doc = fetch(
            feed.url,
            limits=limits,
            client=client,
            etag=lease.etag if lease else None,
            last_modified=lease.last_modified if lease else None,
        )
        parsed = (
            ParsedFeed(items=[])
            if doc.not_modified
            else parse_feed(doc, feed.name, feed.outlet, feed.file_root())
        )
    except (FetchError, FeedError) as exc:
        kind = exc.kind if isinstance(exc, FetchError) else "parse"
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        failed = FeedFailed(feed=feed.name, url=feed.url, reason=str(exc))
        appended = len(store.append([NewEvent(stream=stream, data=failed)]).new)
        log.warning("feed %s failed (%s): %s", feed.name, kind, exc)
        return (
            [],
            PollOutcome(
                ok=False,
                error=str(exc),
                error_kind=kind,
                retry_after=retry_after,
                appended=appended,
            ),
            {},
        )
    last = store.last_of(stream)  # a feed's stream grows with every change and failure
    recovering = last is not None and last.type == "FeedFailed"
    after = f":after:{last.seq}" if last is not None and recovering else ""
    outcome = PollOutcome(ok=True, etag=doc.etag, last_modified=doc.last_modified)
    if doc.not_modified:
        outcome.not_modified = True
        if recovering:  # a 304 after failures is a recovery, and health must see it
            outcome.appended = store.append(
                [
                    NewEvent(
                        stream=stream,
                        data=FeedPolled(
                            feed=feed.name, url=feed.url, items=0, new_items=0, not_modified=True
                        ),
                        idempotency_key=f"polled:{feed.name}:not-modified{after}",
                    )
                ]
            ).created.count(True)
        return [], outcome, {}
    items = parsed.items
    histories = article_histories(store, [i.article_id for i in items])
    new = sum(1 for i in items if not histories.get(i.article_id, History()).extracted)
    skipped = [
        NewEvent(
            stream=stream,
            data=EntrySkipped(
                feed=feed.name, url=feed.url, guid=s.guid, title=s.title, reason=s.reason
            ),
            idempotency_key=f"skipped:{feed.name}:{s.key}",
        )
        for s in parsed.skipped
    ]
    if skipped:
        log.warning("feed %s: %d entries skipped (no usable link)", feed.name, len(skipped))
    polled = NewEvent(
        stream=stream,
        data=FeedPolled(feed=feed.name, url=feed.url, items=len(items), new_items=new),
        # An unchanged body adds nothing; the first success after a failure always does.
        idempotency_key=f"polled:{feed.name}:{doc.content_hash}{after}",
    )
    # FeedPolled last: the stream's last event says how the latest poll went.
    outcome.appended = store.append([*skipped, polled]).created.count(True)
    outcome.items, outcome.new_items, outcome.skipped = len(items), new, len(skipped)
    return items, outcome, histories
