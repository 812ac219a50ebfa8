"""Counts in English news text: digits, number words and vague quantity words.

Number words are parsed by text2num (a maintained library) rather than a home-made table, so
"nine hundred sixty-three" works as well as "thirty-six". Vague words carry ACLED's codebook
reading ("dozens" = 12, "tens" = 10, "hundreds" = 100) for consumers that need a figure.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import NamedTuple

from text_to_num import text2num

from monitor.extract.gazetteer import trie_pattern
from monitor.extract.sentences import lowered, words

# Shaped as tries: the same words, without trying twenty alternatives at every word. (Where
# one word begins another, "seven" and "seventeen", only the whole word can end a number.)
_UNITS = trie_pattern(
    words(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen"
    )
)
_TENS = trie_pattern(words("twenty thirty forty fifty sixty seventy eighty ninety"))
# Every scale word, even those far beyond any count of people: "nine hundred ninety-nine
# quintillion" must be read whole (and then refused), never as its first three words.
_BIG_SCALES = "million|billion|trillion|quadrillion|quintillion|sextillion|septillion|octillion"
_SCALE = f"hundred|thousand|{_BIG_SCALES}"
_NUMBER_WORD = rf"(?:{_TENS})(?:[- ](?:{_UNITS}))?|{_UNITS}"
# A number phrase may open on "hundred", "thousand" or "million" alone, never on "billion"
# and above ("$2.6 billion" names no count of its own).
_FIRST_WORD = rf"(?:{_NUMBER_WORD}|hundred|thousand|million)"
_NEXT_WORD = rf"(?:{_NUMBER_WORD}|{_SCALE})"
_WORDS = rf"{_FIRST_WORD}(?:(?:\s+|\s+and\s+|-){_NEXT_WORD})*"
_DIGITS = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?"
_MULT = rf"(?:\s+(?P<mult>thousand|{_BIG_SCALES}))?"
# Past this no figure is a count of people: larger values are refused, not rounded.
_LARGEST = 10**10
# Scale words as powers of ten; text2num reads only up to "billion".
_SCALE_EXPONENT = {
    "thousand": 3,
    "million": 6,
    "billion": 9,
    "trillion": 12,
    "quadrillion": 15,
    "quintillion": 18,
    "sextillion": 21,
    "septillion": 24,
    "octillion": 27,
}

# Vague quantities: (pattern, ACLED reading). Longest first so that "tens of thousands" wins.
_VAGUE: tuple[tuple[str, int | None], ...] = (
    (r"hundreds of thousands", 100000),
    (r"tens of thousands", 10000),
    (r"thousands", 1000),
    (r"hundreds", 100),
    (r"dozens", 12),
    (r"scores", 20),
    (r"tens", 10),
    (r"several", 3),
    (r"a few", 3),
    (r"a handful", 3),
    (r"a number", None),
    (r"numerous", None),
    (r"many", None),
)

# Matched against lower-cased text (see `lowered`): twice as fast as an IGNORECASE scan.
# A "^" on either side is a power ("10^30"), neither of whose numbers is a count.
_NUMBER = re.compile(
    rf"(?<![\w.,$€£^-])(?:(?P<digits>{_DIGITS}){_MULT}|(?P<words>{_WORDS})|"
    rf"(?P<dozen>(?:half )?a dozen)|(?P<vague>{'|'.join(p for p, _ in _VAGUE)}))(?![\w^])"
)


class Quantity(NamedTuple):
    """A count found in text: `value` for figures, `vague` (the word) for vague quantities.
    (A named tuple, made several times faster than a frozen dataclass.)"""

    start: int
    end: int
    value: int | None
    vague: str | None = None
    acled: int | None = None
    is_word: bool = False


@cache
def _vague_table() -> dict[str, int | None]:
    return {p: v for p, v in _VAGUE}


def _parse_words(words: str) -> int | None:
    cleaned = re.sub(r"[-\s]+", " ", words.lower()).strip()
    try:
        value = int(text2num(cleaned, "en"))
    except (ValueError, TypeError):
        return None  # not one number ("one one"), or a scale text2num does not know
    return value if value <= _LARGEST else None


def _parse_digits(digits: str, mult: str | None) -> int | None:
    """The integer a digit string (with an optional scale word) spells, or None when it is
    not a whole number or too large to count people. Exact decimal arithmetic: a float would
    overflow on a few hundred digits and round long ones."""
    whole, _, fraction = digits.replace(",", "").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    exponent = _SCALE_EXPONENT.get((mult or "").lower(), 0)
    if len(whole) + exponent > len(str(_LARGEST)) or len(fraction) > exponent:
        return None
    value = int(whole + fraction.ljust(exponent, "0"))
    return value if value <= _LARGEST else None


def _to_quantity(m: re.Match[str]) -> Quantity | None:
    if m.group("digits"):
        value = _parse_digits(m.group("digits"), m.group("mult"))
        return None if value is None else Quantity(m.start(), m.end(), value)
    if m.group("words"):
        value = _parse_words(m.group("words"))
        return None if value is None else Quantity(m.start(), m.end(), value, is_word=True)
    if m.group("dozen"):
        value = 6 if m.group("dozen").lower().startswith("half") else 12
        return Quantity(m.start(), m.end(), value, is_word=True)
    word = m.group("vague").lower()
    return Quantity(m.start(), m.end(), None, vague=word, acled=_vague_table().get(word))


@cache
def _designation() -> re.Pattern[str]:
    """A name from data/designations.txt ending right before a number ("Hermes 450")."""
    text = resources.files("monitor.extract").joinpath("data", "designations.txt")
    names = [
        line.strip()
        for line in text.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # As a trie: the name must end right before the number, so only one can fit at a place.
    return re.compile(rf"(?<![\w-])(?:{trie_pattern(sorted(set(names)))}) $")


def find_quantities(text: str) -> list[Quantity]:
    """Every count-like expression in `text`, in order; dates and units are left to callers,
    model and unit numbers ("Hermes 450", "Flight 752") are not counts at all."""
    out: list[Quantity] = []
    designation = _designation()
    for m in _NUMBER.finditer(lowered(text)):
        if text[m.end() : m.end() + 1] == "-":
            continue  # a compound adjective: "36-hour", "nine-storey"
        if m.group("digits") and designation.search(text, max(0, m.start() - 20), m.start()):
            continue  # part of a name: "a Hermes 450 drone" is one drone
        q = _to_quantity(m)
        if q is not None:
            out.append(q)
    return out


def parse_count(text: str) -> int | None:
    """The value of a single number expression ("1,000", "thirty-six"), or None."""
    qs = find_quantities(text.strip())
    if len(qs) == 1 and qs[0].start == 0 and qs[0].end == len(text.strip()):
        return qs[0].value
    return None
