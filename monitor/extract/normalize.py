"""Normalisation: article text in, conflict facts out (casualties, ceasefires, third parties,
downings, diplomacy), each with the sentence it came from and who said it.

Deterministic and offline: a gazetteer and lexicons as data, rules as regexes over tokens.
The text is read once (names, counts, sentences), then every fact reader in `READERS` (the
contract is in reader.py) reads the analysed sentences, each owning its passage-level steps
(merging repeated figures, carrying denials across sentences). This module owns what they
share: sentence analysis, the trigger prefilter, the time budget and failure isolation.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import overload

from monitor.events import Fact
from monitor.extract import casualties, ceasefire, diplomacy, downing, involvement
from monitor.extract.analysis import (
    Note,
    Sentence,
    build_sentence,
    fold,
    resolve_group_speakers,
)
from monitor.extract.gazetteer import Mention, find_mentions, home_states, trie_pattern, watch_key
from monitor.extract.numbers import Quantity, find_quantities
from monitor.extract.pool import DEFAULT_BUDGET
from monitor.extract.reader import FactReader
from monitor.extract.sentences import split_sentences
from monitor.watches import Watch

log = logging.getLogger(__name__)

# Every fact reader (reader.py), in the order their facts sort at one position.
READERS: tuple[FactReader, ...] = (
    casualties.READER,
    ceasefire.READER,
    involvement.READER,
    downing.READER,
    diplomacy.READER,
)
# Each reader's trigger stems: a sentence without one of a reader's stems cannot yield its
# facts, so one scan of the whole text tells which sentences each reader must read and
# which need no analysis at all. Third-party rules are gated on naming an outsider instead.
# The scan finds one stem per word, so a stem's topics include those of every shorter stem it
# begins with ("denied" is also "deni").
_STEM_TOPICS: dict[str, frozenset[str]] = {
    stem: frozenset(r.topic for r in READERS if any(stem.startswith(t) for t in r.triggers))
    for r in READERS
    for stem in r.triggers
}
_TRIGGER = re.compile(r"\b(?:" + trie_pattern(list(_STEM_TOPICS)) + ")")
_TYPE_RANK = {r.topic: rank for rank, r in enumerate(READERS)}
# Longer texts are cut: past this size an "article" is a dump, and the cost would be unbounded.
MAX_TEXT = 200_000


class BudgetExceeded(Exception):
    """The text cost more than its time budget."""


class Budget:
    """A time allowance for one article, checked as sentences are analysed and as each reader
    walks them.

    Measured on the calling thread's CPU clock by default, so that a busy machine (other
    poll workers, other programs) does not make an ordinary article fail."""

    def __init__(
        self, seconds: float = DEFAULT_BUDGET, clock: Callable[[], float] = time.thread_time
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._deadline = clock() + seconds

    def check(self) -> None:
        if self._clock() >= self._deadline:  # a budget of 0 s allows nothing
            raise BudgetExceeded(f"extraction exceeded its time budget of {self.seconds:g} s")


@dataclass(frozen=True, slots=True)
class Normalized:
    """What one text yielded. `problems`: a line per fact reader that failed on it (that
    reader's facts are missing; the other readers' facts are whole). `failed`: why the text
    yielded nothing at all (its time budget ran out, or an error outside every reader)."""

    facts: list[Fact]
    problems: list[str] = field(default_factory=list)
    failed: str | None = None


def normalize(
    text: str,
    watch: Watch | None = None,
    budget: Budget | None = None,
    published: datetime | None = None,
) -> Normalized:
    """Facts found in `text`, in text order; never raises. An exception inside one fact
    reader costs only that reader's facts and is reported in `problems`, so that one bad
    pattern cannot silence an article (or the daemon) and is still seen. One `budget` may be
    shared by the several watches an article is read for. `published` (the article's date)
    tells a year of this report's own time from an earlier one."""
    try:
        return _run(text, watch, isolate=True, budget=budget or Budget(), published=published)
    except BudgetExceeded as exc:
        log.warning("normalize gave up on a %d-character text: %s", len(text), exc)
        return Normalized([], failed=str(exc))
    except Exception as exc:  # outside any reader: splitting, names, numbers
        log.exception("normalize failed on a %d-character text", len(text or ""))
        return Normalized([], failed=f"normalize: {_describe(exc)}")


def extract(text: str, watch: Watch | None = None, published: datetime | None = None) -> list[Fact]:
    """`normalize` without the safety net (and with no time budget), for tests and benchmarks
    that want to see errors."""
    return _run(text, watch, isolate=False, budget=Budget(float("inf")), published=published).facts


@dataclass(frozen=True, slots=True)
class Explained:
    """One sentence that some fact reader looked at: the facts read from it and the
    patterns that fired or were vetoed there, in the order the readers ran."""

    start: int
    end: int
    quote: str
    facts: list[Fact]
    notes: list[Note]


def explain(
    text: str, watch: Watch | None = None, published: datetime | None = None
) -> tuple[Normalized, list[Explained]]:
    """What `normalize` finds in `text`, and why, sentence by sentence (for `monitor extract
    --explain`): every sentence with a fact or a pattern that fired or was vetoed."""
    sentences: list[Sentence] = []
    found = _run(
        text,
        watch,
        isolate=True,
        budget=Budget(float("inf")),
        traced=sentences,
        published=published,
    )
    by_span: dict[tuple[int, int], list[Fact]] = {}
    for fact in found.facts:
        by_span.setdefault(fact.span, []).append(fact)
    out = [
        Explained(s.start, s.end, s.quote, by_span.get((s.start, s.end), []), s.trace or [])
        for s in sentences
        if s.trace or (s.start, s.end) in by_span
    ]
    return found, out


def _run(
    text: str,
    watch: Watch | None,
    *,
    isolate: bool,
    budget: Budget,
    traced: list[Sentence] | None = None,
    published: datetime | None = None,
) -> Normalized:
    """Read `text`; with `traced`, every sentence records its patterns and is put there."""
    if not isinstance(text, str) or not text.strip():
        return Normalized([])
    text = text[:MAX_TEXT]
    sentences = _sentences(text, watch, budget)
    if published is not None:
        for sent in sentences:
            sent.report_year = published.year
    if traced is not None:
        for sent in sentences:
            sent.trace = []
        traced += sentences
    timed = _Timed(sentences, budget)
    facts: list[Fact] = []
    problems: list[str] = []
    for reader in READERS:
        budget.check()
        if not isolate:
            facts += reader.facts(timed, watch)
            continue
        try:
            facts += reader.facts(timed, watch)
        except BudgetExceeded:
            raise  # the whole text's failure, not this reader's
        except Exception as exc:
            log.exception("fact reader %s failed on a %d-character text", reader.topic, len(text))
            problems.append(f"{reader.topic} reader: {_describe(exc)}")
    budget.check()
    facts.sort(key=lambda f: (f.span[0], _TYPE_RANK[f.type]))
    return Normalized(facts, problems)


class _Timed(Sequence[Sentence]):
    """The sentences as a reader walks them: every few sentences the walk checks the time
    budget, so that no reader can run long past it (BudgetExceeded ends the text)."""

    EVERY = 8

    def __init__(self, sentences: list[Sentence], budget: Budget) -> None:
        self._sentences = sentences
        self._budget = budget

    def __len__(self) -> int:
        return len(self._sentences)

    @overload
    def __getitem__(self, index: int) -> Sentence: ...
    @overload
    def __getitem__(self, index: slice) -> list[Sentence]: ...
    def __getitem__(self, index: int | slice) -> Sentence | list[Sentence]:
        return self._sentences[index]

    def __iter__(self) -> Iterator[Sentence]:
        for n, sent in enumerate(self._sentences):
            if n % self.EVERY == 0:
                self._budget.check()
            yield sent


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _sentences(text: str, watch: Watch | None, budget: Budget) -> list[Sentence]:
    """Every sentence, analysed only when some rule could fire on it (the cheap gate below:
    most sentences of an article are background that no rule reads)."""
    mentions = find_mentions(text, watch)
    quantities = find_quantities(text)
    m_starts = [m.start for m in mentions]
    q_starts = [q.start for q in quantities]
    home = home_states(watch_key(watch)) if watch is not None else frozenset()
    spans = split_sentences(text)
    folded = fold(text)
    topics = _topics(folded, spans)
    out: list[Sentence] = []
    for index, (start, end) in enumerate(spans):
        budget.check()
        ms = _within(mentions, m_starts, start, end)
        qs = _within(quantities, q_starts, start, end)
        outsider = watch is not None and any(
            m.is_actor and not m.party and m.code not in home for m in ms
        )
        if outsider or topics[index]:
            sent = build_sentence(text, start, end, index, ms, qs, folded)
        else:
            sent = Sentence(text, start, end, index, ms, qs)
        sent.topics = topics[index]
        out.append(sent)
    resolve_group_speakers(out)
    return out


def _topics(folded: str, spans: list[tuple[int, int]]) -> list[frozenset[str]]:
    """For each sentence, the rule modules whose trigger stems it contains (one scan of the
    folded text)."""
    found: list[frozenset[str]] = [frozenset()] * len(spans)
    starts = [s for s, _ in spans]
    for m in _TRIGGER.finditer(folded):
        i = bisect.bisect_right(starts, m.start()) - 1
        if i >= 0 and m.end() <= spans[i][1]:
            found[i] = found[i] | _STEM_TOPICS[m.group()]
    return found


def _within(
    items: Sequence[Mention] | Sequence[Quantity], starts: list[int], start: int, end: int
) -> list:
    lo = bisect.bisect_left(starts, start)
    hi = bisect.bisect_left(starts, end)
    return [x for x in items[lo:hi] if x.end <= end]
