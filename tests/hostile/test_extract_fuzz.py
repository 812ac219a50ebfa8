"""Random text into the extractor: nothing escapes, every span lies inside the text, every
count is a count.

The strict entry point (`extract`) is fuzzed, so that an exception inside any fact reader
fails here rather than being absorbed by `normalize`'s safety net. Three kinds of input:
arbitrary Unicode; text built from the words the readers react to (names, numbers of every
shape, outcome and downing verbs, punctuation runs); and long runs past the sentence bound.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import Casualties, Ceasefire, Downing, Fact
from monitor.extract.normalize import extract, normalize
from monitor.extract.sentences import MAX_SENTENCE
from monitor.extract.text import TextError, article_text
from tests.conftest import make_watch

# Fuzzing runs long by design: with the crash loops in `make test-slow` (and in CI).
pytestmark = pytest.mark.slow

WATCH = make_watch(
    {"RUR": ["Ruritanian", "Ruritania", "Zenda"], "GRA": ["Graustarkian", "Graustark"]},
    {"RUR": "Ruritania", "GRA": "Graustark"},
)

NUMBERS = [
    "0",
    "7",
    "1,000",
    "12.5",
    "2.6 billion",
    "10^30",
    "9" * 320,
    "1e400",
    "nine hundred ninety-nine quintillion",
    "thirty-six",
    "a dozen",
    "dozens",
    "tens of thousands",
    "between 3 and",
    "-5",
    "٣",
]
WORDS = [
    "killed",
    "wounded",
    "dead",
    "died",
    "missing",
    "captured",
    "bodies",
    "the death toll",
    "rose to",
    "bringing the total to",
    "including",
    "at least",
    "civilians",
    "soldiers",
    "fighters",
    "a man",
    "his brother",
    "were",
    "was",
    "shot down",
    "intercepted",
    "drone",
    "Hermes 450",
    "helicopters",
    "jets",
    "backed",
    "backs",
    "supplied",
    "weapons",
    "to",
    "ceasefire",
    "truce",
    "brokered by",
    "violated",
    "collapsed",
    "denied",
    "said",
    "claimed",
    "according to",
    "Turkey",
    "Iran",
    "Russian",
    "the UN",
    "Ruritanian",
    "Graustark",
    "its",
    "of",
    "and",
    "(",
    ")",
    ",",
    ".",
    "...",
    "!!!",
    ";",
    "\n",
    '"',
    "’s",
    "-",
    "—",
    "İ",
]
TOKENS = st.sampled_from(NUMBERS + WORDS)
SEPARATORS = st.sampled_from([" ", " ", " ", "", "\n", "  ", "\t", ". "])


@st.composite
def conflict_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(TOKENS, SEPARATORS), max_size=60))
    return "".join(token + sep for token, sep in parts)


@st.composite
def long_runs(draw: st.DrawFn) -> str:
    unit = draw(conflict_text().filter(lambda t: 0 < len(t) < 80))
    times = draw(st.integers(min_value=1, max_value=(3 * MAX_SENTENCE) // len(unit) + 1))
    return unit * times


def check(text: str, facts: list[Fact]) -> None:
    for fact in facts:
        start, end = fact.span
        assert 0 <= start < end <= len(text)
        assert text[start:end] == fact.quote
        if isinstance(fact, Casualties):
            for value in (fact.count, fact.increment, fact.acled_count):
                assert value is None or value >= 0
        elif isinstance(fact, Ceasefire):
            assert fact.count is None or fact.count >= 0
        elif isinstance(fact, Downing):
            assert fact.count >= 1


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=2000))
def test_any_unicode(text: str) -> None:
    check(text, extract(text, WATCH))


@FUZZ
@given(conflict_text())
def test_text_made_of_what_the_readers_react_to(text: str) -> None:
    for watch in (None, WATCH):
        facts = extract(text, watch)
        check(text, facts)
        found = normalize(text, watch)
        assert found.facts == facts and found.problems == [] and found.failed is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_runs())
def test_long_runs_past_the_sentence_bound(text: str) -> None:
    check(text, extract(text, WATCH))


TAGS = ["p", "div", "article", "h1", "span", "script", "style", "table", "td", "li", "br"]


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    """Pages of nested tags around text the readers react to, with stray markup, entities
    and bytes that are not UTF-8."""
    parts = ["<html><body>"]
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        tag = draw(st.sampled_from(TAGS))
        body = draw(conflict_text())
        junk = draw(st.sampled_from(["", "&amp;", "&#x0;", "&#xD800;", "<", "</p>", "<!--", "]]>"]))
        parts.append(f"<{tag}>{body}{junk}</{tag}>")
    page = "".join(parts).encode("utf-8", errors="replace")
    return page + draw(st.binary(max_size=20))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_pages())
def test_fuzzed_pages_through_text_extraction(page: bytes) -> None:
    try:
        text = article_text(page, content_type="text/html")
    except TextError:
        return  # no main text: a recorded failure, not an exception
    check(text.text, extract(text.text, WATCH))
