"""Sentence spans and count parsing: the two layers every fact's quote and figure rest on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.extract.numbers import find_quantities, parse_count
from monitor.extract.sentences import MAX_SENTENCE, split_sentences


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_abbreviations_and_initials_do_not_split() -> None:
    text = (
        "Gen. Abdel Fattah al-Burhan met U.S. envoy Tom Perriello on Sept. 12 in Port Sudan. "
        "George W. Bush was not there. The talks ended."
    )
    assert sentences(text) == [
        "Gen. Abdel Fattah al-Burhan met U.S. envoy Tom Perriello on Sept. 12 in Port Sudan.",
        "George W. Bush was not there.",
        "The talks ended.",
    ]


def test_quotes_decimals_and_paragraphs() -> None:
    text = '"We will respond," he said. Losses rose 2.5 percent.\n\nA new paragraph starts'
    assert sentences(text) == [
        '"We will respond," he said.',
        "Losses rose 2.5 percent.",
        "A new paragraph starts",
    ]


def test_lower_case_after_period_is_not_a_boundary() -> None:
    assert len(sentences("The strike hit at 3 a.m. local time and killed two.")) == 1


@given(st.text(max_size=400))
def test_spans_are_ordered_non_empty_and_inside(text: str) -> None:
    last = 0
    for start, end in split_sentences(text):
        assert last <= start < end <= len(text)
        assert text[start:end].strip() == text[start:end]
        last = end


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,000", 1000),
        ("36", 36),
        ("thirty-six", 36),
        ("nine hundred sixty-three", 963),
        ("one hundred and five", 105),
        ("1.5 million", 1_500_000),
        ("a dozen", 12),
    ],
)
def test_parse_count(text: str, value: int) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize(
    ("text", "vague", "acled"),
    [
        ("dozens", "dozens", 12),
        ("tens of thousands", "tens of thousands", 10000),
        ("hundreds", "hundreds", 100),
        ("several", "several", 3),
    ],
)
def test_vague_words(text: str, vague: str, acled: int) -> None:
    (q,) = find_quantities(text)
    assert (q.value, q.vague, q.acled) == (None, vague, acled)


def test_compounds_models_and_money_are_not_counts() -> None:
    assert find_quantities("a 36-hour truce, an F-16 and $2.6 billion") == []


def test_an_over_long_sentence_is_cut_at_clause_breaks() -> None:
    clause = "the convoy passed the checkpoint near the river without incident"
    text = ", ".join([clause] * 60) + ". Then it stopped."
    spans = split_sentences(text)
    assert all(e - s <= MAX_SENTENCE for s, e in spans)
    pieces = [text[s:e] for s, e in spans]
    assert all(p.endswith((",", ".")) for p in pieces)  # cut after a comma, not mid-word
    assert pieces[-1] == "Then it stopped."
    assert "".join(pieces).replace(",", "").replace(" ", "") == text.replace(",", "").replace(
        " ", ""
    )  # nothing lost but the spaces between pieces


def test_an_over_long_run_without_breaks_is_still_bounded() -> None:
    text = "x" * (3 * MAX_SENTENCE + 5) + " end."
    spans = split_sentences(text)
    assert all(e - s <= MAX_SENTENCE for s, e in spans)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_runs_of_terminal_marks_still_end_sentences() -> None:
    assert sentences("They fled!!! Then silence... And more?! ok") == [
        "They fled!!!",
        "Then silence...",
        "And more?! ok",
    ]
    assert sentences("." * 5000) == ["." * MAX_SENTENCE] * 5
