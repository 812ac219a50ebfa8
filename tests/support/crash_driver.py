"""An ingest loop for the crash tests, run as a child process that the test SIGKILLs.

It does what the daemon does, with the real store, projections and rule evaluator: for each
article, look at its stream, append all its events in one transaction (discovered, fetched,
then extracted with its facts, or failed), then advance the projections and the rules. The
articles are generated from their number, so every run (killed or not) sees the same input.
Progress goes to stdout, one line per article, so the test knows where each kill landed.

    python -m tests.support.crash_driver DB_URL RULES_DIR ARTICLES
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import load_rules
from monitor.events import (
    ArticleDiscovered,
    ArticleExtracted,
    ArticleFailed,
    ArticleFetched,
    ArticleRef,
    Casualties,
    Ceasefire,
    FactReported,
    FeedPolled,
    ThirdParty,
)
from monitor.store.log import EventStore, NewEvent
from monitor.store.projections import all_projections, follow

T0 = datetime(2020, 9, 27, 6, tzinfo=UTC)
WATCH = "nk"
ACTORS = ["TUR", "RUS", "FRA", "USA", "IRN", "OSCE", "UN", "EU", "GEO", "ISR"]
STATUSES = ["called_for", "proposed", "agreed", "violated", "collapsed"]
ROUTES = [Route(name="console", tags=["*"]), Route(name="mail", tags=["urgent"])]


def article_events(i: int) -> list[NewEvent]:
    """Article ``i``'s events, the same on every run; every 11th fails, at fetch or extract."""
    aid = f"a{i:05d}"
    url = f"https://news.example/{aid}"
    when = T0 + timedelta(hours=i)
    stream = f"article:{aid}"
    outlet = ["RFE/RL", "AP", "Levant Wire"][i % 3]
    events = [
        NewEvent(
            stream=stream,
            data=ArticleDiscovered(
                article_id=aid, feed="f", url=url, outlet=outlet, published=when
            ),
            idempotency_key=f"discovered:{aid}",
            occurred_at=when,
        )
    ]
    if i % 11 == 5:
        fail = ArticleFailed(article_id=aid, url=url, stage="fetch", reason="HTTP 503")
        return [*events, NewEvent(stream=stream, data=fail, idempotency_key=f"failed:{aid}:1")]
    events.append(
        NewEvent(
            stream=stream,
            data=ArticleFetched(
                article_id=aid, url=url, final_url=url, content_hash=f"c{i}", size=1000 + i
            ),
            idempotency_key=f"fetched:{aid}:c{i}",
            occurred_at=when,
        )
    )
    if i % 11 == 9:
        fail = ArticleFailed(article_id=aid, url=url, stage="extract", reason="no text")
        return [*events, NewEvent(stream=stream, data=fail, idempotency_key=f"failed:{aid}:2")]
    text = f"Article {i}. " * 20
    events.append(
        NewEvent(
            stream=stream,
            data=ArticleExtracted(
                article_id=aid,
                url=url,
                text=text,
                text_hash=f"t{i}",
                published=when,
                watches=[WATCH],
            ),
            idempotency_key=f"extracted:{aid}:t{i}",
            occurred_at=when,
        )
    )
    ref = ArticleRef(article_id=aid, url=url, outlet=outlet, published=when)
    for n, fact in enumerate(facts(i)):
        events.append(
            NewEvent(
                stream=stream,
                data=FactReported(watch=WATCH, article=ref, fact=fact),
                idempotency_key=f"fact:{WATCH}:t{i}:{n}:{fact.type}",
                occurred_at=when,
            )
        )
    return events


def facts(i: int) -> list[Casualties | Ceasefire | ThirdParty]:
    quote = f"Sentence {i}."
    span = (0, len(quote))
    side = ["armenian", "azerbaijani"][i % 2]
    # A toll that grows, jumping by 150 every 7th article: the jump rule fires on those.
    toll = 100 + 3 * i + 150 * (i // 7)
    out: list[Casualties | Ceasefire | ThirdParty] = [
        Casualties(
            quote=quote,
            span=span,
            side=side,
            category="military",
            outcome="killed",
            count=toll,
            cumulative=True,
        )
    ]
    if i % 4 == 0:
        out.append(Ceasefire(quote=quote, span=span, status=STATUSES[(i // 4) % len(STATUSES)]))
    if i % 6 == 0:
        out.append(
            ThirdParty(quote=quote, span=span, actor=ACTORS[(i // 6) % len(ACTORS)], kind="arms")
        )
    return out


def done(store: EventStore, i: int) -> bool:
    """Ingest's own check: an article that ended extracted or failed is not processed again."""
    return any(
        e.type in ("ArticleExtracted", "ArticleFailed")
        for e in store.read_stream(f"article:a{i:05d}")
    )


def run(url: str, rules_dir: Path, articles: int, out=sys.stdout) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(url)
    evaluator = Evaluator(load_rules(rules_dir), ROUTES)
    projections = all_projections()
    print("ready", file=out, flush=True)
    for i in range(articles):
        if not done(store, i):
            store.append(article_events(i))
        if i % 10 == 9:
            store.append(
                [
                    NewEvent(
                        stream="feed:f",
                        data=FeedPolled(
                            feed="f", url="https://news.example/feed", items=10, new_items=10
                        ),
                        idempotency_key=f"polled:f:{i}",
                    )
                ]
            )
        # Small batches: many consumer transactions, so kills land between and inside them.
        for projection in projections:
            follow(store, projection, batch=7)
        evaluator.catch_up(store, batch=5)
        print(f"article {i}", file=out, flush=True)
    print("done", file=out, flush=True)
    store.close()


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
