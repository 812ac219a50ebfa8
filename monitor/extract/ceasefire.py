"""Ceasefires: called for, proposed, agreed, violated or collapsed, and who brokered them.

A sentence yields ceasefire facts only when it names a ceasefire (truce, cessation of
hostilities) and a status cue sits within a few tokens of that name; each cue family maps to
one status (CONVENTIONS.md). The names and cues are words in `data/ceasefire_words.yaml`,
inflected from lemmas. A cue inside an appeal's content ("urged them to agree to a truce") or
after an intent or a modal ("efforts to reach", "could collapse") reports nothing; a truce only
described as brokered or in force ("despite an X-brokered truce") is agreed only when nothing
else is said of it. Brokers come from brokering phrases ("Russian-brokered", "mediated by
Qatar and Egypt", "with the help of China's facilitation").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.events import Ceasefire, CeasefireStatus, Fact
from monitor.extract import lexicon
from monitor.extract.analysis import Sentence, words
from monitor.watches import Watch

# Stems every ceasefire name starts with (the passage-level prefilter, see normalize.py).
TRIGGERS = words("cease cessation truce armistice pause")

_WORDS = lexicon.words_file("ceasefire_words.yaml")
_NAMES = lexicon.word_pattern(_WORDS["names"])
_TRIGGER = re.compile(_NAMES)
_STATUSES: tuple[CeasefireStatus, ...] = (
    "called_for",
    "proposed",
    "agreed",
    "violated",
    "collapsed",
)


def _cues(entry: dict) -> str:
    return "|".join(
        (lexicon.verb_pattern(entry.get("verbs", [])), lexicon.word_pattern(entry.get("words", [])))
    )


_STATUS_CUES: tuple[tuple[CeasefireStatus, re.Pattern[str]], ...] = tuple(
    (status, re.compile(_cues(_WORDS["status"][status]))) for status in _STATUSES
)
# Cues that count only beside a name: "the truce held", "the truce ended", "ending the truce".
_GAP = rf"(?:{lexicon.word_pattern(_WORDS['beside_gap'])} )*"
_NO_OBJECT = r"(?! (?:a|an|the|this|that|its|their|his|her|E\d+|N\d+|\S+'s)\b)"


def _beside(where: dict) -> re.Pattern[str]:
    after, before = where.get("after_verbs", []), where.get("before_verbs", [])
    parts = []
    if after:
        parts.append(rf"{_NAMES} {_GAP}{lexicon.verb_pattern(after)}{_NO_OBJECT}")
    if before:
        parts.append(
            rf"{lexicon.verb_pattern(before)} (?:the |a |an |this |that )?(?:\S+ )?{_NAMES}"
        )
    return re.compile("|".join(parts))


_BESIDE: tuple[tuple[CeasefireStatus, re.Pattern[str]], ...] = tuple(
    (status, _beside(where)) for status, where in _WORDS["beside_name"].items()
)
_IRREALIS = re.compile(rf"{lexicon.word_pattern(_WORDS['irrealis'])} (?:(?!have )\S+ )?$")
_EXEMPT = re.compile(lexicon.verb_pattern(_WORDS["irrealis_exempt_verbs"]))
_NEGATED_VIOLATION = re.compile(
    rf"(?:{lexicon.word_pattern(_WORDS['negated_violation']['negators'])}|\b\S+n't\b) "
    rf"(?:\S+ ){{0,2}}?{lexicon.verb_pattern(_WORDS['negated_violation']['verbs'])}"
)
_BG_VERBS = lexicon.verb_pattern(_WORDS["background"]["verbs"], ("VBN",))
_BG_WORDS = lexicon.word_pattern(_WORDS["background"]["words"])
_BACKGROUND = re.compile(rf"- {_BG_VERBS}|{_BG_VERBS} (?:\S+ )?by\b|{_BG_WORDS}")
_APPEAL = re.compile(lexicon.verb_pattern(_WORDS["appeal_verbs"]))
_ACCEPT = re.compile(lexicon.verb_pattern(_WORDS["acceptance_verbs"]))
_BOTH_SIDES = re.compile(lexicon.word_pattern(_WORDS["both_sides"]))
# Fighting again in a sentence about a truce: it is being violated (unless it collapsed).
_RESUMED = re.compile(
    r"\b(?:fighting|clashes|hostilities|shelling) (?:\S+ )?(?:resumed|resumes|erupted again|"
    r"broke out again|flared again)\b"
)
_DESPITE = re.compile(rf"\bdespite (?:a |the |an )?(?:(?!calls?\b)\S+ ){{0,4}}?{_NAMES}")
_NEGATED = re.compile(r"\b(?:no (?:violations?|breach(?:es)?)|without (?:any )?violations?)\b")
# Where an appeal's content ends: "urged them to agree to a truce, but fighting went on".
_CLAUSE_END = frozenset(words(". ; but while after although whereas which who when since"))
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


def _near(sent: Sentence, cue: re.Match[str], trigger_tokens: list[int]) -> bool:
    """Whether the cue is within the window of a ceasefire name (given by token index)."""
    ci = sent.token_at(cue.start())
    return any(abs(t - ci) <= _WINDOW for t in trigger_tokens)


# Words that end a list of brokers: "proposed by Qatar, but Sudan has yet to respond".
_LIST_END = frozenset(
    words(". ; : to that which who after in on but while although was were is are has had have")
)


def _actor_list(sent: Sentence, start_token: int, parties: frozenset[str]) -> list[str]:
    """Actors named in a list starting at a token: "Egypt, Qatar, and the United States"."""
    out: list[str] = []
    gap = 0
    for k in range(start_token, len(sent.tokens)):
        t = sent.tokens[k]
        if t.text in _LIST_END:
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


def _appeal_scopes(sent: Sentence) -> list[tuple[int, int, re.Match[str]]]:
    """Signature spans an appeal asks for: from the "to" after an appeal verb to the end of
    its clause ("urged both sides [to agree to a truce], ..."), with the appeal verb."""
    out: list[tuple[int, int, re.Match[str]]] = []
    toks = sent.tokens
    for m in _APPEAL.finditer(sent.sig):
        verb = sent.token_at(m.start())
        k = verb + 1
        while k < min(len(toks), verb + 10) and toks[k].text != "to":
            if toks[k].text in _CLAUSE_END:
                break
            k += 1
        if k >= len(toks) or toks[k].text != "to":
            continue
        end = k + 1
        while end < len(toks) and toks[end].text not in _CLAUSE_END:
            end += 1
        hi = sent.offsets[end] if end < len(toks) else len(sent.sig)
        out.append((sent.offsets[k], hi, m))
    return out


def _acceptance(sent: Sentence, cue: re.Match[str], parties: frozenset[str]) -> CeasefireStatus:
    """A plan accepted by both sides is agreed; by one watch party only, still a proposal."""
    ci = sent.token_at(cue.start())
    if _joint(sent, cue, parties) or _BOTH_SIDES.search(sent.words(max(0, ci - 6), ci)):
        return "agreed"
    for k in range(ci - 1, max(-1, ci - 10), -1):
        t = sent.tokens[k]
        if t.kind == "E" and sent.is_actor_token(k):
            return "proposed" if sent.mentions[t.ref].code in parties else "agreed"
    return "agreed"


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
    near = [sent.token_at(t.start()) for t in triggers]  # the names, as token indices
    scopes = _appeal_scopes(sent)

    def appealed(cue: re.Match[str], pattern: str) -> bool:
        """Part of an appeal's content, or an intent or hypothesis: not a report."""
        if any(lo <= cue.start() < hi for lo, hi, _ in scopes):
            sent.note(pattern, "vetoed", f"{sent.raw_match(cue)}: what an appeal asks for")
            return True
        if _IRREALIS.search(sig, max(0, cue.start() - 24), cue.start()) and not _EXEMPT.match(
            sig, cue.start()
        ):
            sent.note(pattern, "vetoed", f"{sent.raw_match(cue)}: an intent or a hypothesis")
            return True
        return False

    statuses: dict[CeasefireStatus, _Cue] = {}
    for lo, hi, verb in scopes:
        if any(lo <= t.start() < hi for t in triggers) or _near(sent, verb, near):
            statuses.setdefault("called_for", (verb, "ceasefire.appeal-to"))
    negated = [
        c
        for c in _NEGATED_VIOLATION.finditer(sig)
        if _near(sent, c, near) and not appealed(c, "ceasefire.not-respected")
    ]
    if negated:
        statuses["violated"] = (negated[0], "ceasefire.not-respected")
    background = [c for c in _BACKGROUND.finditer(sig) if _near(sent, c, near)]
    for status, cue_rx in _STATUS_CUES:
        far: re.Match[str] | None = None
        for cue in cue_rx.finditer(sig):
            if any(c.start() <= cue.start() < c.end() for c in negated + background):
                continue  # "failed to observe the truce": a violation, not a collapse
            if not _near(sent, cue, near):
                far = far or cue
                continue
            if status == "called_for" or not appealed(cue, _cue_id(status)):
                statuses.setdefault(status, (cue, _cue_id(status)))
                break
        if status not in statuses and far is not None:
            sent.note(_cue_id(status), "vetoed", f"{sent.raw_match(far)}: far from the name")
    for status, cue_rx in _BESIDE:
        name = f"ceasefire.{status}-beside-name"
        for cue in cue_rx.finditer(sig):
            if not appealed(cue, name):
                statuses.setdefault(status, (cue, name))
                break
    for cue in _ACCEPT.finditer(sig):
        if _near(sent, cue, near) and not appealed(cue, "ceasefire.accepted"):
            accepted = _acceptance(sent, cue, parties)
            statuses.setdefault(accepted, (cue, f"ceasefire.accepted-{accepted}"))
            break
    for cue_rx, name in ((_DESPITE, "ceasefire.despite-truce"), (_RESUMED, "ceasefire.resumed")):
        found_cue = cue_rx.search(sig)
        if found_cue and "collapsed" not in statuses:
            statuses.setdefault("violated", (found_cue, name))
    no_violation = _NEGATED.search(sig)
    if no_violation and "violated" in statuses:
        sent.note(statuses.pop("violated")[1], "vetoed", sent.raw_match(no_violation))
    for cue in background:
        if statuses.keys() - {"called_for"}:
            # Only a description of a truce made earlier: what else is said of it counts.
            sent.note(
                "ceasefire.described-as-agreed", "vetoed", f"{sent.raw_match(cue)}: said of it"
            )
            break
        if not appealed(cue, "ceasefire.described-as-agreed"):
            # Brokered or in force, and not said to be broken, ended or merely proposed.
            statuses["agreed"] = (cue, "ceasefire.described-as-agreed")
            break
    found = brokers(sent, parties)
    mediated = bool(found) and any(
        not _IRREALIS.search(sig, max(0, m.start() - 24), m.start())
        for m in re.finditer(r"\bmediat|\bbrokered|\bfacilitat|\bintermediar", sig)
    )  # "offered to mediate" mediates nothing yet
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
