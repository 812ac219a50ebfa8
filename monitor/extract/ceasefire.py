"""Ceasefires: called for, proposed, agreed, violated or collapsed, and who brokered them.

A sentence yields ceasefire facts only when it names a ceasefire (truce, cessation of
hostilities) and a status cue sits within a few tokens of that name; each cue family maps to
one status (CONVENTIONS.md). Brokers come from brokering phrases ("Russian-brokered",
"mediated by Qatar and Egypt", "with the help of China's facilitation").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.events import Ceasefire, CeasefireStatus, Fact
from monitor.extract.analysis import Sentence, words
from monitor.watches import Watch

# Stems every ceasefire name starts with (the passage-level prefilter, see normalize.py).
TRIGGERS = words("cease cessation truce armistice pause")

_TRIGGER = re.compile(
    r"\b(?:ceasefires?|cease-fires?|truces?|cessation of (?:all )?(?:hostilities|fire)|"
    r"cease (?:the )?(?:hostilities|fire)|armistice|pause in (?:the )?(?:fighting|hostilities))\b"
)
_STATUS_CUES: tuple[tuple[CeasefireStatus, re.Pattern[str]], ...] = (
    (
        "called_for",
        re.compile(
            r"\b(?:call(?:s|ed|ing)? (?:\S+ ){0,3}?for|call(?:s|ed|ing)? to|urg(?:e|ed|es|ing)|"
            r"appeal(?:s|ed)?|demand(?:s|ed|ing)?|push(?:ed|ing)? for|press(?:ed|ing)? for|"
            r"plea)\b"
        ),
    ),
    (
        "proposed",
        re.compile(
            r"\b(?:propos(?:e|ed|es|al|als|ing)|offer(?:s|ed)?|unilateral(?:ly)?|declared?|"
            r"announc(?:ed|es|ement)|order(?:ed|s))\b"
        ),
    ),
    (
        "agreed",
        re.compile(
            r"\b(?:agreed?|agreeing|agreement|signed|reached|took effect|(?:came|come|comes|"
            r"coming|went|go|goes) into (?:effect|force)|enter(?:ed|s)? into force|"
            r"will enter into force|in effect|brokered|mediated|established|joined|"
            r"decided to cease|started|began|accepted|(?:ceasefire|cease-fire|truce) "
            r"(?:\S+ )?(?:holds|held|is holding|was holding))\b"
        ),
    ),
    (
        "violated",
        re.compile(
            r"\b(?:violat(?:e|ed|es|ing|ion|ions)|breach(?:ed|es|ing)?|broken|"
            r"broke(?! (?:out|down|away))|not (?:been )?respected|flout(?:ed|ing)?)\b"
        ),
    ),
    (
        "collapsed",
        re.compile(
            r"\b(?:collaps(?:e|ed|es|ing)|failed|failure|shattered|broke down|break down|"
            r"breakdown|ended|unravel(?:l?ed)?|fell apart|crumbled)\b"
        ),
    ),
)
# Fighting again in a sentence about a truce: it is being violated (unless it collapsed).
_RESUMED = re.compile(
    r"\b(?:fighting|clashes|hostilities|shelling) (?:\S+ )?(?:resumed|resumes|erupted again|"
    r"broke out again|flared again)\b"
)
_DESPITE = re.compile(
    r"\bdespite (?:a |the |an )?(?:(?!calls?\b)\S+ ){0,4}?(?:ceasefire|cease-fire|truce)"
)
_NEGATED = re.compile(r"\b(?:no (?:violations?|breach(?:es)?)|without (?:any )?violations?)\b")
_BROKER_SUFFIX = re.compile(r"\b(E\d+) - (?:brokered|mediated|sponsored|facilitated|negotiated)\b")
_BROKER_BY = re.compile(
    r"\b(?:brokered|mediated|facilitated|negotiated|sponsored|proposed|announced|declared|"
    r"offered|ordered|guaranteed) (?:\S+ ){0,6}?by\b|\bmediation of\b|\bmediators? (?:\S+ ){0,3}?"
    r"(?:including|such as|from)\b|\bmediators?\b , (?:including|such as)\b|\bauspices of\b|"
    r"\bhelp of\b|\bfacilitation (?:of|by)\b|\bintermediar(?:y|ies)\b"
)
_BROKER_SUBJECT = re.compile(
    r"\b(E\d+) (?:'s )?(?:has |had |have )?(?:\S+ ){0,2}?(?:brokered|mediated|facilitated|"
    r"announced|proposed|offered|declared|ordered|mediation|facilitation)\b"
)
_COUNT = re.compile(r"\b(N\d+) (?:\S+ ){0,3}?(?:ceasefires|cease-fires|truces)\b")
_WINDOW = 14


@dataclass(frozen=True, slots=True)
class CeasefireHit:
    status: CeasefireStatus
    broker: str | None
    count: int | None
    sentence: Sentence
    pattern: str


def _near(sent: Sentence, cue: re.Match[str], triggers: list[re.Match[str]]) -> bool:
    ci = sent.token_at(cue.start())
    return any(abs(sent.token_at(t.start()) - ci) <= _WINDOW for t in triggers)


def _actor_list(sent: Sentence, start_token: int, parties: frozenset[str]) -> list[str]:
    """Actors named in a list starting at a token: "Egypt, Qatar, and the United States"."""
    out: list[str] = []
    gap = 0
    for k in range(start_token, len(sent.tokens)):
        t = sent.tokens[k]
        if t.text in (".", ";", ":", "to", "that", "which", "who", "after", "in", "on"):
            break
        if t.kind == "E":
            if sent.is_actor_token(k) and not _possessive_modifier(sent, k):
                code = sent.mentions[t.ref].code
                if code not in out:
                    out.append(code)
            gap = 0
            continue
        gap += 1
        if gap > 4:
            break
    return out


def _possessive_modifier(sent: Sentence, k: int) -> bool:
    """ "Turkey's regional rivals": Turkey only qualifies the noun that follows."""
    return (
        k + 2 < len(sent.tokens)
        and sent.tokens[k + 1].text == "'s"
        and (
            sent.tokens[k + 2].kind == "W"
            and sent.tokens[k + 2].text not in ("mediation", "facilitation", "help")
        )
    )


def brokers(sent: Sentence, parties: frozenset[str]) -> list[str]:
    """States or organisations credited with brokering or mediating, in text order (kept in
    the sentence's memo: the ceasefire and the third-party rules both ask)."""
    key = ("brokers", parties)
    if key not in sent.memo:
        sent.memo[key] = _brokers(sent, parties)
    return list(sent.memo[key])


def _brokers(sent: Sentence, parties: frozenset[str]) -> list[str]:
    out: list[str] = []
    sig = sent.sig
    for m in _BROKER_SUFFIX.finditer(sig):
        out.extend(_coordinated(sent, sent.token_at(m.start())))
    for m in _BROKER_BY.finditer(sig):
        out.extend(_actor_list(sent, sent.token_at(m.end()) + 1, parties))
    for m in _BROKER_SUBJECT.finditer(sig):
        if sig.startswith(" by ", m.end()):
            continue  # "a truce between A and B brokered by C": A and B are its sides
        out.extend(_coordinated(sent, sent.token_at(m.start())))
    return list(dict.fromkeys(out))


_COORDINATORS = frozenset(["and", ",", "the", "or", "both"])


def _coordinated(sent: Sentence, tok: int) -> list[str]:
    """The actors coordinated with the one at token `tok`, in text order: "Saudi Arabia and
    the United States, which brokered" credits both, not only the name next to the verb."""
    if not sent.is_actor_token(tok):
        return []
    lo = tok
    while lo > 0 and (sent.tokens[lo - 1].text in _COORDINATORS or sent.is_actor_token(lo - 1)):
        lo -= 1
    hi = tok
    while hi + 1 < len(sent.tokens) and (
        sent.tokens[hi + 1].text in _COORDINATORS or sent.is_actor_token(hi + 1)
    ):
        hi += 1
    return [
        sent.mentions[sent.tokens[k].ref].code
        for k in range(lo, hi + 1)
        if sent.is_actor_token(k) and not _possessive_modifier(sent, k)
    ]


def _joint(sent: Sentence, cue: re.Match[str], parties: frozenset[str]) -> bool:
    """Whether two or more parties are named before the announcement ("the army and the
    alliance announced a ceasefire")."""
    ci = sent.token_at(cue.start())
    codes = {
        sent.mentions[t.ref].code
        for t in sent.tokens[max(0, ci - 12) : ci]
        if t.kind == "E" and sent.mentions[t.ref].code in parties
    }
    return len(codes) >= 2


def _proposer(sent: Sentence, cue: re.Match[str]) -> str | None:
    """Who proposed or announced a ceasefire: "by E" after the cue, or the nearest actor
    before it."""
    ci = sent.token_at(cue.start())
    after = sent.tokens[ci + 1 : ci + 8]
    for k, t in enumerate(after):
        if t.text == "by":
            found = _actor_list(sent, ci + 2 + k, frozenset())
            if found:
                return found[0]
    for k in range(ci - 1, max(-1, ci - 10), -1):
        if sent.is_actor_token(k):
            return sent.mentions[sent.tokens[k].ref].code
    return None


# A status cue found near a ceasefire's name: the match and the id of its pattern.
_Cue = tuple[re.Match[str], str]


def _cue_id(status: CeasefireStatus) -> str:
    return f"ceasefire.{status.replace('_', '-')}-cue"


def read_sentence(sent: Sentence, parties: frozenset[str]) -> list[CeasefireHit]:
    sig = sent.sig
    triggers = []
    for t in _TRIGGER.finditer(sig):
        if sig[: t.start()].endswith("no "):
            sent.note("ceasefire.name", "vetoed", f"no {sent.raw_match(t)}")
        else:
            triggers.append(t)
    if not triggers:
        return []
    statuses: dict[CeasefireStatus, _Cue] = {}
    for status, pattern in _STATUS_CUES:
        far: re.Match[str] | None = None
        for cue in pattern.finditer(sig):
            if _near(sent, cue, triggers):
                statuses.setdefault(status, (cue, _cue_id(status)))
                break
            far = far or cue
        if status not in statuses and far is not None:
            sent.note(_cue_id(status), "vetoed", f"{sent.raw_match(far)}: far from the name")
    for pattern, name in ((_DESPITE, "ceasefire.despite-truce"), (_RESUMED, "ceasefire.resumed")):
        found_cue = pattern.search(sig)
        if found_cue and "collapsed" not in statuses:
            statuses.setdefault("violated", (found_cue, name))
    negated = _NEGATED.search(sig)
    if negated and "violated" in statuses:
        sent.note(statuses.pop("violated")[1], "vetoed", sent.raw_match(negated))
    found = brokers(sent, parties)
    mediated = bool(re.search(r"\bmediat|\bbrokered|\bfacilitat|\bintermediar", sig)) and bool(
        found
    )
    statuses = _resolve(statuses, sent, parties, mediated)
    if not statuses:
        return []
    count_m = _COUNT.search(sig)
    count = sent.quantities[int(count_m.group(1)[1:])].value if count_m else None
    out: list[CeasefireHit] = []
    for status, (cue, pattern) in statuses.items():
        sent.note(pattern, "fired", sent.raw_match(cue))
        if status == "called_for":
            out.append(CeasefireHit(status, None, None, sent, pattern))
            continue
        names = found
        if status == "proposed" and not names:
            proposer = _proposer(sent, cue)
            names = [proposer] if proposer else []
        if not names:
            out.append(CeasefireHit(status, None, count, sent, pattern))
        for code in names:
            out.append(CeasefireHit(status, code, count, sent, pattern))
    return out


def _resolve(
    statuses: dict[CeasefireStatus, _Cue],
    sent: Sentence,
    parties: frozenset[str],
    mediated: bool,
) -> dict[CeasefireStatus, _Cue]:
    """An announcement that both sides made, or one with a mediator, is an agreement; one
    that is violated or collapsed was in force, so it is no mere proposal."""
    sig = sent.sig
    if "proposed" in statuses and (mediated or _joint(sent, statuses["proposed"][0], parties)):
        cue = statuses["proposed"][0]
        statuses.setdefault("agreed", (cue, "ceasefire.announced-jointly-or-mediated"))
    if "proposed" in statuses and (
        "agreed" in statuses or "violated" in statuses or "collapsed" in statuses
    ):
        cue, pattern = statuses.pop("proposed")
        sent.note(pattern, "vetoed", f"{sent.raw_match(cue)}: the truce was in force")
    if "proposed" in statuses and sig[: statuses["proposed"][0].start()].endswith(" to "):
        cue, pattern = statuses.pop("proposed")  # "called on them to declare a truce"
        sent.note(pattern, "vetoed", f"{sent.raw_match(cue)}: still an appeal")
    return statuses


class CeasefireReader:
    """Ceasefire facts of one text: one per (status, broker), with the largest count given."""

    topic = "ceasefire"
    triggers = TRIGGERS

    def facts(self, sentences: Sequence[Sentence], watch: Watch | None) -> list[Fact]:
        parties = frozenset(watch.parties) if watch else frozenset()
        seen: dict[tuple[str, str | None], int] = {}
        out: list[Ceasefire] = []
        for sent in sentences:
            if self.topic not in sent.topics:
                continue
            for hit in read_sentence(sent, parties):
                key = (hit.status, hit.broker)
                if key in seen:
                    prev = out[seen[key]]
                    if hit.count and (prev.count or 0) < hit.count:
                        out[seen[key]] = prev.model_copy(update={"count": hit.count})
                    continue
                seen[key] = len(out)
                out.append(
                    Ceasefire(
                        **sent.provenance(hit.pattern),
                        status=hit.status,
                        broker=hit.broker,
                        count=hit.count,
                    )
                )
        return list(out)


READER = CeasefireReader()
