"""Hostile text into the extractor: one bad part of an article never costs the rest of it.

Each test is one row of the hostile-input table (issue: one bad part never stops the rest):
a number no float can hold, powers and scale words beyond any count of people, and a fact
reader that raises. The article keeps every fact the other parts give, and the failure is
recorded as an event, never swallowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.events import ArticleExtracted, ArticleFailed, Casualties, Fact, FactReported
from monitor.extract import casualties as casualty_reader
from monitor.extract.analysis import Sentence
from monitor.extract.normalize import Budget, extract, normalize
from monitor.extract.numbers import find_quantities
from monitor.pipeline import ingest_item, item_for_file
from monitor.store.log import EventStore
from tests.conftest import make_watch

WATCH = make_watch(
    {"RUR": ["Ruritanian", "Ruritania"], "GRA": ["Graustarkian", "Graustark"]},
    {"RUR": "Ruritania", "GRA": "Graustark"},
)


def _counts(text: str) -> list[tuple[str, int | None]]:
    return [(f.outcome, f.count) for f in extract(text, WATCH) if isinstance(f, Casualties)]


def test_a_number_of_hundreds_of_digits_is_skipped_and_the_rest_kept() -> None:
    text = (
        f"Officials gave a figure of {'7' * 400} for the shells fired. "
        "Five Graustarkian soldiers were killed near the border."
    )
    found = normalize(text, WATCH)
    assert found.problems == []
    assert [(f.outcome, f.count) for f in found.facts if isinstance(f, Casualties)] == [
        ("killed", 5)
    ]
    assert _counts(f"{'8' * 350} villagers were wounded.") == []  # unreadable: no count


def test_powers_and_huge_scale_words_are_not_counts() -> None:
    assert find_quantities("10^30") == []
    assert _counts("Rumours put the dead at 10^30 people.") == []
    assert _counts("Nine hundred ninety-nine quintillion people died, a post claimed.") == []
    assert _counts("Six trillion soldiers were killed, the bot wrote.") == []
    # Scale words a count can carry still read: "1.2 million" people, "two thousand" troops.
    assert find_quantities("1.2 million")[0].value == 1_200_000
    assert _counts("Two thousand soldiers were killed.") == [("killed", 2000)]


def _raise(sent: Sentence, death_ctx: bool) -> list[casualty_reader.Report]:
    raise RuntimeError("a pattern blew up")


TEXT = (
    "Seven Ruritanian soldiers were killed in the shelling. "
    "Graustark accused Ruritania of violating the truce brokered by Turkey."
)


def test_a_failing_reader_loses_only_its_own_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    before = normalize(TEXT, WATCH)
    assert {f.type for f in before.facts} >= {"casualties", "ceasefire"} and not before.problems
    monkeypatch.setattr(casualty_reader, "read_sentence", _raise)
    after = normalize(TEXT, WATCH)
    assert [f for f in after.facts if f.type != "casualties"] == [
        f for f in before.facts if f.type != "casualties"
    ]
    assert not any(isinstance(f, Casualties) for f in after.facts)
    assert len(after.problems) == 1 and "casualties" in after.problems[0]
    assert "RuntimeError: a pattern blew up" in after.problems[0]
    with pytest.raises(RuntimeError):
        extract(TEXT, WATCH)  # the strict entry point shows the error to tests and benches


def test_a_failing_reader_is_recorded_on_the_article(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(casualty_reader, "read_sentence", _raise)
    article = tmp_path / "border.txt"
    article.write_text(TEXT, encoding="utf-8")
    store = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    result = ingest_item(store, item_for_file(article), [WATCH])
    events = [e.data for e in store.read()]
    assert result.status == "failed" and "casualties reader" in (result.reason or "")
    assert any(isinstance(e, ArticleExtracted) for e in events)
    facts = [e.fact for e in events if isinstance(e, FactReported)]
    assert {f.type for f in facts} == {"ceasefire", "third_party"}
    failed = [e for e in events if isinstance(e, ArticleFailed)]
    assert len(failed) == 1 and failed[0].stage == "normalize" and not failed[0].retryable
    assert "casualties reader" in failed[0].reason and "watch test" in failed[0].reason
    again = ingest_item(store, item_for_file(article), [WATCH])
    assert again.status == "skipped"  # the text fails the same way: no retry
    store.close()


class Ticks:
    """A clock that advances one second each time it is read: the budget's checks are then
    counted, not timed."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.now += 1.0
        self.reads += 1
        return self.now


LONG = " ".join(f"Shelling hit the village of Zenda {i} times overnight." for i in range(40))


def test_a_text_that_outruns_its_budget_yields_a_failure_not_facts() -> None:
    text = LONG + " Seven Ruritanian soldiers were killed."
    clock = Ticks()
    found = normalize(text, WATCH, Budget(10, clock))
    assert found.facts == [] and found.problems == []
    assert found.failed == "extraction exceeded its time budget of 10 s"
    assert clock.reads == 11  # given up at the first check past the deadline
    roomy = normalize(text, WATCH, Budget(10_000, Ticks()))
    assert roomy.failed is None
    assert [(f.outcome, f.count) for f in roomy.facts if isinstance(f, Casualties)] == [
        ("killed", 7)
    ]


def test_one_budget_covers_every_watch_of_an_article() -> None:
    other = make_watch({"GRA": ["Graustarkian"], "KRE": ["Kreuzlinger"]})
    counting = Ticks()
    normalize(LONG, WATCH, Budget(10_000, counting))
    needed = counting.reads  # budget checks one reading of the text makes
    budget = Budget(needed + 2, Ticks())
    first = normalize(LONG, WATCH, budget)
    second = normalize(LONG, other, budget)
    assert first.failed is None and second.failed is not None


def test_a_reader_is_stopped_mid_walk_when_the_budget_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Sentence] = []

    def walk(sentences: Sequence[Sentence], watch: object) -> list[Fact]:
        seen.extend(sentences)
        return []

    monkeypatch.setattr(casualty_reader.READER, "facts", walk)  # the first reader to run
    # One read to start, one per sentence analysed (40), one before the reader: the deadline
    # falls a couple of checks into the reader's walk.
    found = normalize(LONG, WATCH, Budget(44, Ticks()))
    assert found.failed is not None
    assert 0 < len(seen) < 40


def test_an_article_past_its_budget_is_recorded_as_failed(tmp_path: Path) -> None:
    article = tmp_path / "long.txt"
    article.write_text(TEXT, encoding="utf-8")
    store = EventStore(f"sqlite:///{tmp_path / 'log.db'}")
    result = ingest_item(store, item_for_file(article), [WATCH], extract_budget=0)
    events = [e.data for e in store.read()]
    store.close()
    assert not any(isinstance(e, FactReported) for e in events)
    failed = [e for e in events if isinstance(e, ArticleFailed)]
    assert [(f.stage, f.retryable) for f in failed] == [("normalize", False)]
    assert failed[0].reason == "watch test: extraction exceeded its time budget of 0 s"
    assert result.status == "failed" and result.reason == failed[0].reason
