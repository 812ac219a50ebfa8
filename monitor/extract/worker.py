"""What an extraction worker runs: one page read into text and facts (``extract_article``).

The daemon's own process never imports this module: it hands pages to the pool
(``monitor.extract.pool``), whose fork server loads this module once (through
``monitor.extract.forkserver``) and forks every worker from that. Replay and ``monitor
extract`` read pages in their own process and import it there.
"""

from __future__ import annotations

import os
import threading
import time

from monitor.extract.normalize import Budget, normalize
from monitor.extract.pool import ExtractJob, ExtractOutcome, WatchFacts
from monitor.extract.text import TextError, article_text


def extract_article(job: ExtractJob) -> ExtractOutcome:
    """Text, relevance and facts of one page. Never raises for a bad page: a page without
    text is an outcome with ``error``; a failing reader or budget is in ``problems``."""
    try:
        text = article_text(
            job.body, url=job.url, content_type=job.content_type, metadata=job.metadata
        )
    except TextError as exc:
        return ExtractOutcome(error=str(exc))
    budget = Budget(job.budget)  # shared by the watches: one allowance per article
    found = []
    for watch in job.watches:
        if not watch.is_relevant(text.text):
            continue
        result = normalize(text.text, watch, budget, job.published or text.published)
        problems = [result.failed] if result.failed else result.problems
        found.append(WatchFacts(watch=watch.id, facts=result.facts, problems=problems))
    return ExtractOutcome(text=text, found=found)


def warm_up() -> None:
    """Build the gazetteer and compile the patterns before the first article, so that no
    article's CPU budget pays for them (once in the fork server: its workers are forked warm,
    and this is next to free there)."""
    normalize("Warm-up: 3 soldiers were killed near the border, officials said.")


def start(owner: int) -> None:
    """A worker's first step: watch the process that owns the pool, then warm up.

    A worker blocked on its job queue never notices that the daemon is gone (killed, say):
    it holds both ends of that queue, and the write end of its fork server's lifeline, so
    without the watch the workers and their server outlive the daemon for good."""
    threading.Thread(target=_leave_with, args=(owner,), name="owner watch", daemon=True).start()
    warm_up()


def _leave_with(owner: int, every: float = 1.0) -> None:
    while _alive(owner):
        time.sleep(every)
    os._exit(0)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc here: a signal 0 that reached it is all we know
