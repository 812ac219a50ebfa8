"""The extractor's patterns are shaped for speed: word lists as tries, and left word
boundaries checked after a name's first character. Each shape must find exactly what the
plain pattern it stands for finds; these tests hold both to the same random texts."""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.extract import involvement, lexicon, numbers
from monitor.extract.gazetteer import _gazetteer_regex, gazetteer, trie_pattern, word_start
from monitor.extract.sentences import _TERMINAL, lowered


def _longest_first(words: list[str]) -> str:
    """The plain form: every word as its own alternative, the longest tried first."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _spans(rx: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in rx.finditer(text)]


# Words where one begins another, the case a trie must get right.
WORDS = ["seven", "seventeen", "seventy", "shot", "shot dead", "shot down", "a", "ab", "abc"]
GLUE = [" ", "  ", "-", "\n", ".", ",", "'s", "x", "s", "ty", "teen", "Seven", "ſ"]


def _texts(words: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from([*words, *GLUE]), max_size=14).map("".join)


@settings(max_examples=300, deadline=None)
@given(_texts(WORDS))
def test_a_trie_finds_what_the_longest_first_alternation_finds(text: str) -> None:
    plain = re.compile(rf"\b(?:{_longest_first(WORDS)})\b")
    trie = re.compile(rf"\b(?:{trie_pattern(WORDS)})\b")
    assert _spans(trie, text) == _spans(plain, text)


NAMES = ["Turkey", "Turkish", "Turkish Cypriots", "Iran", "Iranian", "UN", "UNICEF", "al-Qaeda"]


@settings(max_examples=300, deadline=None)
@given(_texts(NAMES))
def test_a_boundary_checked_after_the_first_character_is_the_same_boundary(text: str) -> None:
    plain = re.compile(rf"(?<![\w])(?:{_longest_first(NAMES)})(?![\w])")
    shaped = re.compile(trie_pattern(NAMES, after_first=r"(?<!\w.)") + r"(?![\w])")
    assert _spans(shaped, text) == _spans(plain, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(gazetteer())), min_size=1, max_size=6), st.data())
def test_the_gazetteer_pattern_finds_every_name_a_plain_scan_finds(
    names: list[str], data: st.DataObject
) -> None:
    glue = data.draw(st.lists(st.sampled_from(GLUE), min_size=len(names), max_size=len(names)))
    text = "".join(g + n for g, n in zip(glue, names, strict=True))
    assert _spans(_gazetteer_regex(), text) == _spans(_plain_gazetteer(), text)


@cache
def _plain_gazetteer() -> re.Pattern[str]:
    return re.compile(rf"(?<![\w])(?:{trie_pattern(sorted(gazetteer()))})(?![\w])")


def test_word_patterns_prefer_the_longest_phrase_that_fits() -> None:
    rx = re.compile(lexicon.word_pattern(["shot", "shot dead", "shot down"]))
    assert [m.group() for m in rx.finditer("shot dead, shot down, shot, shot downs")] == [
        "shot dead",
        "shot down",
        "shot",
        "shot",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=".!?\"')” a\nB", max_size=30))
def test_sentence_ends_are_found_where_the_plain_pattern_finds_them(text: str) -> None:
    plain = re.compile(r"(?<![.!?])[.!?]++[\"'”’)\]]*+(?=\s)")
    assert _spans(_TERMINAL, text) == _spans(plain, text)


NUMBER_WORDS = ["seven", "seventeen", "seventy", "six", "sixteen", "sixty", "one", "hundred"]


@settings(max_examples=300, deadline=None)
@given(_texts([*NUMBER_WORDS, "and", "thousand", "9", "1,000", "dozens"]))
def test_number_words_are_read_whole(text: str) -> None:
    units = (
        "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
        "fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
    )
    tens = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
    word = rf"(?:{tens})(?:[- ](?:{units}))?|{units}"
    words = (
        rf"(?:{word}|hundred|thousand|million)(?:(?:\s+|\s+and\s+|-)(?:{word}|{numbers._SCALE}))*"
    )
    vague = "|".join(p for p, _ in numbers._VAGUE)
    plain = re.compile(
        rf"(?<![\w.,$€£^-])(?:(?P<digits>{numbers._DIGITS}){numbers._MULT}|(?P<words>{words})|"
        rf"(?P<dozen>(?:half )?a dozen)|(?P<vague>{vague}))(?![\w^])"
    )
    low = lowered(text)
    got = [(m.span(), m.lastgroup) for m in numbers._NUMBER.finditer(low)]
    assert got == [(m.span(), m.lastgroup) for m in plain.finditer(low)]


def _plain_verbs(entries: list[str]) -> str:
    """verb_pattern with each verb's forms as a flat alternation, in the word file's order."""
    out = []
    for entry in entries:
        lemma, *rest = entry.split()
        part = "(?:" + "|".join(re.escape(f) for f in lexicon.verb_forms(lemma)) + ")"
        for word in rest:
            if word == "...":
                part += " (?:\\S+ ){0,4}?"
            elif word.startswith("!"):
                part += f"(?! {re.escape(word[1:])}\\b)"
            else:
                part += ("" if part.endswith("?") else " ") + re.escape(word)
        out.append(part)
    return r"\b(?:" + "|".join(out) + r")\b"


VERBS = ["call ... for", "break !out", "kill", "shoot down", "arm"]
VERB_WORDS = sorted({f for v in VERBS for f in lexicon.verb_forms(v.split()[0])})


@settings(max_examples=300, deadline=None)
@given(_texts([*VERB_WORDS, "for", "out", "down", "the", "truce"]))
def test_verb_patterns_find_what_a_flat_list_of_forms_finds(text: str) -> None:
    shaped = re.compile(lexicon.verb_pattern(VERBS))
    assert _spans(shaped, text) == _spans(re.compile(_plain_verbs(VERBS)), text)


# Branches that share a first character, one that begins another, groups, classes and `\w*`.
ALTERNATION = r"kill\w*|killed|struck|strikes?|us(?:e|es|ed|ing)|defen[cs]e|claims? no role|a|ab"
ALT_WORDS = ["kill", "killed", "killers", "struck", "strike", "strikes", "use", "using", "used"]
ALT_WORDS += ["defense", "defence", "claim no role", "claims no role", "a", "ab", "abc"]


@settings(max_examples=300, deadline=None)
@given(_texts(ALT_WORDS))
def test_a_word_start_alternation_finds_what_the_plain_one_finds(text: str) -> None:
    plain = re.compile(rf"\b(?:{ALTERNATION})\b")
    shaped = re.compile(word_start(ALTERNATION) + r"\b")
    assert _spans(shaped, text) == _spans(plain, text)
    assert [m.span() for m in shaped.finditer(text, 1)] == [
        m.span() for m in plain.finditer(text, 1)
    ]


def test_a_word_start_branch_must_open_on_a_literal_character() -> None:
    for bad in ("(?:a|b)c", "s?ee", "[ab]c", "\\wx", "-x"):
        with pytest.raises(ValueError):
            word_start(f"abc|{bad}")


ARMS = ["drones", "armoured vehicles", "air defence systems", "himars", "military aid", "arms"]


@settings(max_examples=300, deadline=None)
@given(_texts([*ARMS, "armoured", "vehicle", "system", "the", "E1", "N2"]))
def test_the_weapons_gate_finds_a_weapon_where_the_weapons_pattern_does(text: str) -> None:
    plain = re.compile(rf"\b{involvement._ARMS_NOUNS}\b")
    assert bool(involvement._ARMS_RX.search(text)) == bool(plain.search(text))
