"""Sentence splitting with character offsets into the original text.

A regex splitter rather than pysbd: pysbd takes ~10 ms for a 5 KB article, this takes well under
one, and news prose needs only a handful of rules (abbreviations, initials, decimals, quotes).
"""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """A word list written as one string (keeps lexicons compact and readable)."""
    return text.split()


# Tokens that end in a period but rarely end a sentence (compared lower-case, without the dot).
_ABBREVIATIONS = frozenset(
    words(
        "mr mrs ms dr prof gen lt col maj capt cpt sgt cpl adm brig cmdr gov sen rep rev st jr sr "
        "no nos vs jan feb mar apr jun jul aug sep sept oct nov dec mt ft approx dept est fig inc "
        "corp ltd co u.s u.n u.k e.u i.e e.g u.s.a d.c al"
    )
)
# Longer "sentences" are cut at a clause break: news sentences stay far below this (the
# longest in the evaluation data is under 500 characters), and every rule's work on one
# sentence then stays bounded, so a text costs time in proportion to its length.
MAX_SENTENCE = 1000
# A boundary candidate: terminal punctuation, optional closing quotes or brackets, then space.
# Only at the start of a run of marks, and without giving back what it took: a run of a
# million dots is then read once, not once per dot. (The pattern opens on the mark itself and
# checks the character before it after taking it, so the scan skips straight from one mark
# to the next rather than trying every position.)
_TERMINAL = re.compile(r"[.!?](?<![.!?]{2})[.!?]*+[\"'”’)\]]*+(?=\s)")
_NEXT_START = re.compile(r"\s+[\"'“‘(\[]*[A-Z0-9]")
_PARAGRAPH = re.compile(r"\n\s*")
_LAST_TOKEN = re.compile(r"([\w.]+)\.$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at `dot` belongs to an abbreviation or an initial."""
    m = _LAST_TOKEN.search(text, max(0, dot - 12), dot + 1)
    if m is None:
        return False
    token = m.group(1)
    if len(token) == 1 and token.isalpha() and token.isupper():
        return True  # an initial: "George W. Bush"
    return token.lower() in _ABBREVIATIONS


def _split_block(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Split one paragraph text[start:end] into sentence spans appended to `out`."""
    cursor = start
    for m in _TERMINAL.finditer(text, start, end):
        stop = m.end()
        if not _NEXT_START.match(text, stop, end):
            continue
        if (
            text[m.start()] == "."
            and m.end() - m.start() == 1
            and _is_abbreviation(text, m.start())
        ):
            continue
        _append(text, cursor, stop, out)
        cursor = stop
    _append(text, cursor, end, out)


def _append(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_SENTENCE:
        cut = _break_before(text, start, start + MAX_SENTENCE)
        _append(text, start, cut, out)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append((start, end))


def _break_before(text: str, start: int, limit: int) -> int:
    """Where to cut an over-long sentence that must end by `limit`: after the last clause
    break (";", ":", ","), else the last space, in its second half; else at `limit` itself."""
    floor = start + (limit - start) // 2
    for mark in ("; ", ": ", ", "):
        at = text.rfind(mark, floor, limit)
        if at >= 0:
            return at + 1
    at = max(text.rfind(" ", floor, limit), text.rfind("\t", floor, limit))
    return at if at > floor else limit


def lowered(text: str) -> str:
    """`text` in lower case with every offset kept: scanning lower-cased text with a
    case-sensitive pattern is about twice as fast as an IGNORECASE scan, but a few characters
    ("İ") grow when lowered, and those are left as they are."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences of `text`, in order; paragraphs never merge."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for m in _PARAGRAPH.finditer(text):
        _split_block(text, cursor, m.start(), spans)
        cursor = m.end()
    _split_block(text, cursor, len(text), spans)
    return spans
