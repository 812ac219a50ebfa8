"""Normalisation: article text in, conflict facts out (casualties, ceasefires, third parties,
downings, diplomacy), each with the sentence it came from and who said it.

Deterministic and offline: a gazetteer and lexicons as data, rules as regexes over tokens.
The text is read once (names, counts, sentences), then each sentence goes through the rule
modules, then passage-level steps merge repeated figures and carry denials across sentences.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.events import Casualties, Ceasefire, Diplomacy, Downing, Fact, ThirdParty
from monitor.extract import casualties, ceasefire, diplomacy, downing, involvement
from monitor.extract.analysis import Sentence, build_sentence, fold
from monitor.extract.gazetteer import Mention, find_mentions, home_states, trie_pattern, watch_key
from monitor.extract.numbers import Quantity, find_quantities
from monitor.extract.sentences import split_sentences
from monitor.watches import Watch

log = logging.getLogger(__name__)

_DEATH_WORDS = re.compile(r"\b(?:death|deaths|dead|killed|died|fatalit\w*|toll)\b")
# Each rule module's trigger stems: a sentence without one of a module's stems cannot yield
# its facts, so one scan of the whole text tells which sentences each module must read and
# which need no analysis at all. Third-party rules are gated on naming an outsider instead.
_TOPICS: dict[str, list[str]] = {
    "casualties": casualties.TRIGGERS,
    "ceasefire": ceasefire.TRIGGERS,
    "downing": downing.TRIGGERS,
    "diplomacy": diplomacy.TRIGGERS,
    "denial": involvement.DENIAL_TRIGGERS + downing.DENIAL_TRIGGERS,
}
_STEM_TOPICS: dict[str, frozenset[str]] = {
    stem: frozenset(t for t, stems in _TOPICS.items() if stem in stems)
    for stems in _TOPICS.values()
    for stem in stems
}
_TRIGGER = re.compile(r"\b(?:" + trie_pattern(list(_STEM_TOPICS)) + ")")
_STANCE_RANK = {"denied": 0, "confirmed": 1, "alleged": 2, "claimed": 3, "reported": 4}
_TYPE_RANK = {"casualties": 0, "ceasefire": 1, "third_party": 2, "downing": 3, "diplomacy": 4}
# Longer texts are cut: past this size an "article" is a dump, and the cost would be unbounded.
MAX_TEXT = 200_000


# CPU seconds one text may cost before its extraction is abandoned (config: extract_budget).
# A news article takes milliseconds; only a hostile or broken text comes near this.
DEFAULT_BUDGET = 5.0


class BudgetExceeded(Exception):
    """The text cost more than its time budget."""


class Budget:
    """A time allowance for one article, checked between sentences and between readers.

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


def normalize(text: str, watch: Watch | None = None, budget: Budget | None = None) -> Normalized:
    """Facts found in `text`, in text order; never raises. An exception inside one fact
    reader costs only that reader's facts and is reported in `problems`, so that one bad
    pattern cannot silence an article (or the daemon) and is still seen. One `budget` may be
    shared by the several watches an article is read for."""
    try:
        return _run(text, watch, isolate=True, budget=budget or Budget())
    except BudgetExceeded as exc:
        log.warning("normalize gave up on a %d-character text: %s", len(text), exc)
        return Normalized([], failed=str(exc))
    except Exception as exc:  # outside any reader: splitting, names, numbers
        log.exception("normalize failed on a %d-character text", len(text or ""))
        return Normalized([], failed=f"normalize: {_describe(exc)}")


def extract(text: str, watch: Watch | None = None) -> list[Fact]:
    """`normalize` without the safety net (and with no time budget), for tests and benchmarks
    that want to see errors."""
    return _run(text, watch, isolate=False, budget=Budget(float("inf"))).facts


def _run(text: str, watch: Watch | None, *, isolate: bool, budget: Budget) -> Normalized:
    if not isinstance(text, str) or not text.strip():
        return Normalized([])
    text = text[:MAX_TEXT]
    sentences = _sentences(text, watch, budget)
    facts: list[Fact] = []
    problems: list[str] = []
    for name, reader in _READERS:
        budget.check()
        if not isolate:
            facts += reader(sentences, watch)
            continue
        try:
            facts += reader(sentences, watch)
        except BudgetExceeded:
            raise  # the whole text's failure, not this reader's
        except Exception as exc:
            log.exception("fact reader %s failed on a %d-character text", name, len(text))
            problems.append(f"{name} reader: {_describe(exc)}")
    budget.check()
    facts.sort(key=lambda f: (f.span[0], _TYPE_RANK[f.type]))
    return Normalized(facts, problems)


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


def _provenance(sent: Sentence) -> dict:
    return {"quote": sent.quote, "span": (sent.start, sent.end), "attributed_to": sent.speaker}


# --- casualties ---------------------------------------------------------------------------------


def _casualties(sentences: list[Sentence], watch: Watch | None) -> list[Fact]:
    reports: list[casualties.Report] = []
    for i, sent in enumerate(sentences):
        if "casualties" not in sent.topics:
            continue
        ctx = bool(_DEATH_WORDS.search(sent.quote.lower())) or (
            i > 0 and bool(_DEATH_WORDS.search(sentences[i - 1].quote.lower()))
        )
        reports += casualties.read_sentence(sent, ctx)
    out: list[Fact] = []
    for r in casualties.merge_passage(reports):
        out.append(
            Casualties(
                **_provenance(r.sentence),
                stance="claimed" if r.claimed else "reported",
                party=r.party,
                side=watch.side_of(r.party) if watch else None,
                category=r.category,  # type: ignore[arg-type]
                outcome=r.outcome,  # type: ignore[arg-type]
                count=r.count,
                qualifier=r.qualifier,  # type: ignore[arg-type]
                cumulative=r.cumulative,
                increment=r.increment if r.increment != r.count else None,
                historical=r.historical,
                acled_count=r.acled if r.qualifier == "vague" else None,
                subset=r.subset,
            )
        )
    return out


# --- ceasefires ---------------------------------------------------------------------------------


def _ceasefires(sentences: list[Sentence], watch: Watch | None) -> list[Fact]:
    parties = frozenset(watch.parties) if watch else frozenset()
    seen: dict[tuple[str, str | None], int] = {}
    out: list[Ceasefire] = []
    for sent in sentences:
        if "ceasefire" not in sent.topics:
            continue
        for hit in ceasefire.read_sentence(sent, parties):
            key = (hit.status, hit.broker)
            if key in seen:
                prev = out[seen[key]]
                if hit.count and (prev.count or 0) < hit.count:
                    out[seen[key]] = prev.model_copy(update={"count": hit.count})
                continue
            seen[key] = len(out)
            out.append(
                Ceasefire(
                    **_provenance(sent), status=hit.status, broker=hit.broker, count=hit.count
                )
            )
    return list(out)


# --- third parties --------------------------------------------------------------------------------


def _third_parties(sentences: list[Sentence], watch: Watch | None) -> list[Fact]:
    if watch is None:
        return []  # an outsider is only an outsider to some conflict
    key = watch_key(watch)
    scope = involvement.Scope(frozenset(watch.parties), home_states(key))
    denials = [involvement.deniers(s) if "denial" in s.topics else set() for s in sentences]
    merged: dict[tuple[str, str, str | None], tuple[str, Sentence]] = {}
    for i, sent in enumerate(sentences):
        for hit in involvement.read_sentence(sent, scope):
            stance = hit.stance
            window = set().union(*denials[max(0, i - 1) : i + 3])
            covert = hit.kind not in involvement.OPEN_KINDS
            if covert and (hit.actor in window or (hit.supports and hit.supports in window)):
                stance = "denied"
            k = (hit.actor, hit.kind, hit.supports)
            if k in merged:
                old_stance, old_sent = merged[k]
                if _STANCE_RANK[stance] < _STANCE_RANK[old_stance]:
                    merged[k] = (stance, old_sent)
                continue
            merged[k] = (stance, sent)
    merged = _drop_unsupported_duplicates(merged)
    return [
        ThirdParty(**_provenance(sent), stance=stance, actor=a, kind=kind, supports=sup)  # type: ignore[arg-type]
        for (a, kind, sup), (stance, sent) in merged.items()
    ]


def _drop_unsupported_duplicates(
    merged: dict[tuple[str, str, str | None], tuple[str, Sentence]],
) -> dict[tuple[str, str, str | None], tuple[str, Sentence]]:
    """(TUR, military, None) adds nothing beside (TUR, military, AZE) from the same text."""
    out = dict(merged)
    for (actor, kind, sup), (stance, _) in merged.items():
        if sup is None and any(a == actor and k == kind and s for a, k, s in merged):
            richer = next(v for (a, k, s), v in merged.items() if a == actor and k == kind and s)
            if _STANCE_RANK[stance] >= _STANCE_RANK[richer[0]]:
                out.pop((actor, kind, sup), None)
    return out


# --- downings -------------------------------------------------------------------------------------


def _downings(sentences: list[Sentence], watch: Watch | None) -> list[Fact]:
    out: list[Downing] = []
    seen: dict[tuple[str, str | None, str | None], int] = {}
    for i, sent in enumerate(sentences):
        if "downing" not in sent.topics:
            continue
        for hit in downing.read_sentence(sent):
            if hit.definite and out:
                continue
            key = (hit.asset, hit.owner, hit.claimed_by)
            if key in seen:
                continue
            seen[key] = hit.count
            denied = downing.denied_by_owner(sentences, i, hit.owner, hit.claimed_by)
            out.append(
                Downing(
                    **_provenance(sent),
                    stance="denied" if denied else "claimed" if hit.claimed_by else "reported",
                    asset=hit.asset,  # type: ignore[arg-type]
                    owner=hit.owner,
                    claimed_by=hit.claimed_by,
                    denied=denied,
                    count=hit.count,
                )
            )
    return list(out)


# --- diplomacy ------------------------------------------------------------------------------------


def _diplomacy(sentences: list[Sentence], watch: Watch | None) -> list[Fact]:
    out: list[Fact] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for sent in sentences:
        if "diplomacy" not in sent.topics:
            continue
        found = diplomacy.read_sentence(sent)
        if found and (found[0], tuple(found[1])) not in seen:
            kind, participants = found
            seen.add((kind, tuple(participants)))
            out.append(Diplomacy(**_provenance(sent), kind=kind, participants=participants))  # type: ignore[arg-type]
    return out


# Every fact reader, run in this order on the analysed sentences of one text.
_READERS: tuple[tuple[str, Callable[[list[Sentence], Watch | None], list[Fact]]], ...] = (
    ("casualties", _casualties),
    ("ceasefire", _ceasefires),
    ("third_party", _third_parties),
    ("downing", _downings),
    ("diplomacy", _diplomacy),
)
