"""Diplomacy: meetings, talks, calls and recognition between named actors.

Deliberately shallow: one fact per sentence that names a diplomatic act and at least one
actor, with every actor named (places and reporters excluded) as a participant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from monitor.events import Diplomacy, DiplomacyKind, Fact
from monitor.extract.analysis import Sentence, contains_any, words
from monitor.watches import Watch

# Stems every diplomatic act below starts with (the passage-level prefilter, see normalize.py).
TRIGGERS = words("recogni phone telephone spoke speak call met meet summit talks negotiat")

# (kind, text every match holds: a substring test spares most scans, pattern)
_KINDS: tuple[tuple[DiplomacyKind, tuple[str, ...], re.Pattern[str]], ...] = (
    ("recognition", ("recogni",), re.compile(r"\brecogni[sz](?:e|ed|es|ing)\b(?! as part)")),
    (
        "call",
        ("phone", "spoke", "speak", "call with"),
        re.compile(
            r"\b(?:phone call|telephone (?:call|conversation)|spoke (?:by phone |on the phone )?"
            r"(?:with|to)|speak (?:with|to)|call with|phoned)\b"
        ),
    ),
    ("meeting", ("met", "meet", "summit"), re.compile(r"\b(?:met|meet|meets|meeting|summit)\b")),
    ("talks", ("talks", "negotiat"), re.compile(r"\b(?:talks|negotiations|negotiating table)\b")),
)


def read_sentence(sent: Sentence) -> tuple[DiplomacyKind, list[str]] | None:
    """(kind, participant codes) for the first diplomatic act named in the sentence."""
    sig = sent.sig
    for kind, needs, pattern in _KINDS:
        found = pattern.search(sig) if contains_any(sig, needs) else None
        if found:
            participants = _participants(sent)
            if participants:
                sent.note(f"diplomacy.{kind}", "fired", sent.raw_match(found))
                return kind, participants
            sent.note(f"diplomacy.{kind}", "vetoed", f"{sent.raw_match(found)}: no actor named")
            return None
    return None


def _participants(sent: Sentence) -> list[str]:
    out: list[str] = []
    for k, t in enumerate(sent.tokens):
        if t.kind == "E" and sent.is_actor_token(k):
            code = sent.mentions[t.ref].code
            if code not in out:
                out.append(code)
    return out


class DiplomacyReader:
    """Diplomatic acts of one text: one per (kind, participants)."""

    topic = "diplomacy"
    triggers = TRIGGERS

    def facts(self, sentences: Sequence[Sentence], watch: Watch | None) -> list[Fact]:
        out: list[Fact] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for sent in sentences:
            if self.topic not in sent.topics:
                continue
            found = read_sentence(sent)
            if found and (found[0], tuple(found[1])) not in seen:
                kind, participants = found
                seen.add((kind, tuple(participants)))
                out.append(
                    Diplomacy(
                        **sent.provenance(f"diplomacy.{kind}"),
                        kind=kind,
                        participants=participants,
                    )
                )
        return out


READER = DiplomacyReader()
