"""Third parties: outside actors drawn into a watched conflict, how, and on whose side.

Only actors that are not the watch's parties (nor the states those parties belong to) qualify,
and only when a cue ties them to the war: backing ("Iran-backed", "backed by Russia and
China"), arms ("sending missiles to"), fighters ("Syrian fighters have arrived"), troops and
strikes, peacekeepers, mediation and aid. Places ("talks in Washington") and reporters are
never third parties, nor is a name that only qualifies ("Iranian-made drones", "the
UN-recognised government"). Each rule is a regex over the sentence signature (see analysis.py)
built from the words in `data/involvement_words.yaml`: weapons by head word, verbs of
supplying, backing and hostile acts as lemmas, so that every inflection is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.events import Fact, InvolvementKind, Stance, ThirdParty
from monitor.extract import ceasefire, lexicon
from monitor.extract.analysis import Sentence, contains_any, words
from monitor.extract.gazetteer import home_parties, home_states, trie_pattern, watch_key, word_start
from monitor.watches import Watch

_W = lexicon.words_file("involvement_words.yaml")


def _without_b(pattern: str) -> str:
    """A lexicon pattern without its outer word boundaries, to embed in a larger one."""
    return pattern.removeprefix(r"\b").removesuffix(r"\b")


# Weapons by head word ("sniper rifles"), some only after a qualifier ("armoured vehicles").
_ARMS_NOUNS = (
    "(?:"
    + "|".join(
        (
            _without_b(
                lexicon.noun_pattern([n for n in _W["arms_nouns"] if n not in _W["arms_qualified"]])
            ),
            rf"{_without_b(lexicon.word_pattern(_W['arms_qualifiers']))} "
            rf"{_without_b(lexicon.noun_pattern(_W['arms_qualified']))}",
            _without_b(lexicon.word_pattern(_W["arms_words"])),
        )
    )
    + ")"
)
_SUPPLY = (
    "(?:"
    + _without_b(lexicon.verb_pattern(_W["supply_verbs"]))
    + "|"
    + _without_b(lexicon.word_pattern(_W["supply_words"]))
    + ")"
)
_SUPPLY_RX = re.compile(rf"\b{_SUPPLY}\b")
_PROCESS = re.compile(lexicon.noun_pattern(_W["process_nouns"]))
# Whether a weapon is named: every phrase `_ARMS_NOUNS` matches, as one trie that starts on
# a literal (see `word_start`), since this gate runs on every sentence naming an outsider.
_ARMS_RX = re.compile(
    trie_pattern(
        sorted(
            {
                *(
                    form
                    for noun in _W["arms_nouns"]
                    if noun not in _W["arms_qualified"]
                    for form in lexicon.noun_forms(noun)
                ),
                *(
                    f"{qualifier} {form}"
                    for qualifier in _W["arms_qualifiers"]
                    for noun in _W["arms_qualified"]
                    for form in lexicon.noun_forms(noun)
                ),
                *_W["arms_words"],
            }
        ),
        after_first=r"(?<!\w.)",
    )
    + r"\b"
)
_ARMED = re.compile(lexicon.verb_pattern(["arm"]))
_RECEIVE = _without_b(lexicon.verb_pattern(_W["receive_verbs"]))
_STOPPED = re.compile(lexicon.verb_pattern(_W["stopping_verbs"]) + r" (?:\S+ ){0,3}$")
_SENT_BY = _without_b(lexicon.verb_pattern(_W["sending_verbs"], ("VBN",)))
_BACKING_VERBS = _without_b(lexicon.verb_pattern(_W["backing_verbs"]))
_SUPPORT_NOUNS = _without_b(lexicon.noun_pattern(_W["support_nouns"]))
_BACKER = (
    rf"(?:{_without_b(lexicon.word_pattern(_W['backer_adjectives']))} )*(?:military )?"
    rf"{_without_b(lexicon.noun_pattern(_W['backer_nouns']))}"
)
_HOSTILE = _without_b(lexicon.verb_pattern(_W["hostile_verbs"]))
_RELEASE_VERBS = _without_b(lexicon.verb_pattern(_W["release_verbs"]))
_RELEASE_NOUNS = _without_b(lexicon.noun_pattern(_W["release_nouns"]))
_FREED = _without_b(lexicon.verb_pattern(_W["freed_verbs"], ("VBD", "VBN")))
_INTERMEDIARY = _without_b(lexicon.word_pattern(_W["intermediary_words"]))
_QUALIFIER_AFTER_NAME = re.compile(
    rf"\s*-\s*{_without_b(lexicon.word_pattern(_W['name_qualifiers']))}\b", re.IGNORECASE
)
_MILITARY_NOUNS = (
    r"(?:air ?strikes?|airstrikes?|strikes?|troops|forces|soldiers|military|jets?|warplanes?|"
    r"fighter jets?|drones?|planes?|aircraft|air force|armed forces|special forces|navy|army|"
    r"coalition|servicemen|f - \S+|units|artillery|marines|air defen[cs]es?|"
    r"defen[cs]e systems?)"
)
# The word-list patterns below are `word_start` alternations: the same matches as
# `\b(?:...)`, several times faster to scan for (most are gates run on many sentences).
_COMBAT_CUE = re.compile(
    word_start(
        r"kill\w*|struck|strikes?|fight\w*|fought|battl\w*|attack\w*|deploy\w*|shot|used|using|"
        r"involv\w*|enter\w*|crossed|support\w*|help\w*|defen[cs]e|withdraw\w*|backing|"
        r"operat\w*|sent|send\w*|bomb\w*|raid\w*|clash\w*|intervention|intervene\w*|secure|"
        r"destroy\w*|intercept\w*"
    )
    + r"\b"
)
# Stems of the denials that `deniers` reads (the passage-level prefilter, see normalize.py).
DENIAL_TRIGGERS = words("deni deny dismiss reject refut knowledge")
_DENY = re.compile(
    word_start(
        r"denied|denies|deny|dismissed|dismisses|rejected|rejects|refuted|refutes|"
        r"claims? no knowledge|has no knowledge|had no knowledge"
    )
    + r"\b"
)
_ALLEGE = re.compile(
    word_start(r"claim\w*|accus\w*|alleg\w*|charges?|charged|propaganda|suspected") + r"\b"
)
_CONFIRM_VERBS = re.compile(lexicon.verb_pattern(_W["confirm_verbs"], ("VBD", "VBZ")))
_NEGATED_ROLE = re.compile(
    word_start(r"no role|rejected the idea|not (?:a |the )?(?:broker|mediator)") + r"\b"
)
_HUMANITARIAN = re.compile(
    word_start(
        r"humanitarian|relief|airdrop\w*|air-drop\w*|food aid|aid convoys?|medical supplies|"
        r"airlift|aid (?:to|for)"
    )
    + r"\b"
)


# Peacekeeping missions named as such: naming one is naming a peacekeeping presence.
_MISSIONS = frozenset(
    words("UNIFIL MONUSCO UNMISS MINUSMA MINUSCA UNAMID AMISOM ATMIS EACRF SAMIDRC KFOR UNFICYP")
)


@dataclass(frozen=True, slots=True)
class Involvement:
    actor: str
    kind: InvolvementKind
    supports: str | None
    stance: Stance
    sentence: Sentence
    pattern: str


@dataclass(frozen=True, slots=True)
class Scope:
    """What a watch says about who is inside the conflict."""

    parties: frozenset[str]
    home: frozenset[str]  # parties plus the states they belong to
    # A party's own state, read as that party when it is the side helped ("Malian forces").
    home_party: Mapping[str, str] = field(default_factory=dict)


def _matches(
    rx: re.Pattern[str], sent: Sentence, actors: Sequence[int] | None = None
) -> Iterator[re.Match[str]]:
    """Matches of a signature pattern (compiled once, at import: building a long pattern
    string on every call and hashing it to find its compiled form cost more than many
    matches); patterns that start at an actor are tried at every actor, so that a
    non-matching first actor cannot hide a later one. `actors`: the actor tokens worth
    trying (`_outsiders`, for rules that read nothing from a match whose first actor is not
    an eligible third party); by default every actor."""
    if rx.pattern.startswith(r"\b(E\d+)"):
        for k in sent.actor_tokens if actors is None else actors:
            m = rx.match(sent.sig, sent.offsets[k])
            if m:
                yield m
    else:
        yield from rx.finditer(sent.sig)


def _outsiders(sent: Sentence, scope: Scope) -> list[int]:
    """The actor tokens that `_eligible` accepts, in order (kept in the sentence's memo: most
    rules start their patterns at one of them)."""
    memo = sent.memo.get("third_party.outsiders")
    if memo is None or memo[0] is not scope:
        memo = (scope, [k for k in sent.actor_tokens if _eligible(sent, sent.tokens[k].ref, scope)])
        sent.memo["third_party.outsiders"] = memo
    return memo[1]


def _ref(m: re.Match[str], group: int | str) -> int:
    return int(m.group(group)[1:])


def _eligible(sent: Sentence, ref: int, scope: Scope) -> str | None:
    """The code of mention `ref` if it can be a third party here."""
    mention = sent.mentions[ref]
    if not mention.is_actor or ref in sent.location or ref in sent.modifier:
        return None
    if ref in sent.accuser:
        return None
    if mention.party or mention.code in scope.home:
        return None
    if _QUALIFIER_AFTER_NAME.match(sent.text, mention.end):
        return None  # "Iranian-made drones", "the UN-recognised government"
    return mention.code


def _party(sent: Sentence, ref: int, scope: Scope) -> str | None:
    mention = sent.mentions[ref]
    if mention.code in scope.parties:
        return mention.code
    return scope.home_party.get(mention.code)


def _party_near(sent: Sentence, tok: int, scope: Scope, before: bool, span: int = 10) -> str | None:
    rng = range(tok - 1, max(-1, tok - span), -1) if before else range(tok + 1, tok + span)
    for k in rng:
        if k >= len(sent.tokens):
            break
        t = sent.tokens[k]
        if t.text in (".", ";") or (before and t.text == "by"):
            break
        if t.kind == "E":
            code = _party(sent, t.ref, scope)
            if code:
                return code
    return None


_HELPS = re.compile(
    r"\b(?:help(?:s|ed|ing)?|support(?:s|ed|ing)?|backing|defen[cs]e|alongside|behalf|for|to|"
    r"with|siding)"
    r" (?:of |with |for |to )?(?:the |a |an )?(?:\S+ ){0,3}?(E\d+)"
)


def _supports_after(sent: Sentence, tok: int, scope: Scope) -> str | None:
    """The side helped: "to help Azerbaijan", "in support of the federal government"."""
    for found in _HELPS.finditer(sent.sig, sent.offsets[min(tok, len(sent.offsets) - 1)]):
        code = _party(sent, _ref(found, 1), scope)
        if code:
            return code
    return None


def _actors_in_list(sent: Sentence, start_tok: int, scope: Scope) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    gap = 0
    for k in range(start_tok, len(sent.tokens)):
        t = sent.tokens[k]
        if t.text in (".", ";", ":", "that", "which", "who", "has", "have", "had"):
            break
        if t.kind == "E":
            gap = 0
            nxt = sent.tokens[k + 1].text if k + 1 < len(sent.tokens) else ""
            nxt2 = sent.tokens[k + 2].kind if k + 2 < len(sent.tokens) else ""
            if nxt == "'s" and nxt2 == "W":
                continue  # "Turkey's regional rivals, the UAE and Egypt"
            code = _eligible(sent, t.ref, scope)
            if code:
                out.append((k, code))
            continue
        gap += 1
        if gap > 6:
            break
    return out


# --- rules: each yields (token of actor, actor code, kind, supports, pattern id) -------------

# (token of the actor, actor code, kind, side supported, pattern id)
Hit = tuple[int, str, InvolvementKind, str | None, str]
_SENDS = "third_party.sends-fighters"


# Gates: a sentence without one of these substrings cannot match the rule's patterns
# (substring tests: about twice as fast as one regex alternation over the signature).
_POLITICAL_GATE = [
    *words(
        "back ally allies supporter patron stand stood support recogni pact alliance arm "
        "solidarity sympath sponsor guarantor protector fund financ"
    ),
    *("pro -", "side with", "sided with", "sides with", "siding with"),
]
_MEDIATION_GATE = words(
    "mediat broker intermediar facilitat guarantor co-chair auspices envoy meet host talks "
    "consultations negotiat ceasefire cease-fire truce cessation resolution resolve role"
)
_MET = re.compile(word_start("met") + r"\b")


_X_BACKED = re.compile(r"\b(E\d+) - backed (?:\S+ ){0,3}?(E\d+)?")
_BACKED_BY = re.compile(r"\b(?:backed|supported|armed) by\b|\bbacking of\b")
_LED_OR_FORCES = re.compile(rf"\S+ (?:- led coalition|(?:\S+ )?{_MILITARY_NOUNS}\b)")
_BACKER_OF = re.compile(
    r"\b(E\d+) (?:, )?(E\d+) 's (?:\S+ ){0,2}?(?:backer|ally|allies|supporter|patron)\b"
)
_KEY_BACKER = re.compile(rf"\b(E\d+) (?:'s )?{_BACKER} (E\d+)")
_PRO_X = re.compile(r"\bpro - (E\d+) (E\d+)")
_SIDES_WITH = re.compile(
    r"\b(E\d+) (?:[^.;]{0,60}?)(?:siding|sided|sides|stand|stood|stands) (?:with|by) "
    r"(?:its |the )?(?:\S+ ){0,2}?(E\d+)"
)
_DESCRIBED_AS_BACKER = re.compile(
    rf"\b(E\d+) (?:, |is |was |remains |has been |has long been )(?:a |an |the |its |their )?"
    rf"{_BACKER} (?:of|to) (?:the )?(E\d+)"
)


def _political(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    if not contains_any(sig, _POLITICAL_GATE):
        return
    for m in _matches(_X_BACKED, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            sup = _party(sent, _ref(m, 2), scope) if m.group(2) else None
            tok = sent.token_at(m.start())
            # "UN-backed talks": backing a process between the sides is mediation.
            process = _PROCESS.match(sig, m.start() + len(m.group(1)) + len(" - backed "))
            yield (
                tok,
                code,
                "mediation" if process else "political",
                sup or _party_near(sent, tok, scope, False, 5),
                "third_party.x-backed",
            )
    for m in _matches(_BACKED_BY, sent) if " by" in sig or "backing of" in sig else ():
        tok = sent.token_at(m.start())
        sup = _party_near(sent, tok, scope, before=True)
        for k, code in _actors_in_list(sent, sent.token_at(m.end()) + 1, scope):
            kind: InvolvementKind = (
                "military" if _LED_OR_FORCES.match(sent.sig[sent.offsets[k] :]) else "political"
            )
            yield k, code, kind, sup, "third_party.backed-by"
    for m in _matches(_BACKER_OF, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            yield (
                sent.token_at(m.start()),
                code,
                "political",
                _party(sent, _ref(m, 2), scope),
                "third_party.backer-of",
            )
    for m in _matches(_KEY_BACKER, sent):
        code = _eligible(sent, _ref(m, 2), scope)
        if code:
            yield (
                sent.token_at(m.start(2)),
                code,
                "political",
                _party(sent, _ref(m, 1), scope),
                "third_party.key-backer",
            )
    for m in _matches(_PRO_X, sent) if "pro - " in sig else ():
        code = _eligible(sent, _ref(m, 2), scope)
        if code:
            yield (
                sent.token_at(m.start(2)),
                code,
                "political",
                _party(sent, _ref(m, 1), scope),
                "third_party.pro-x",
            )
    for m in _matches(_SIDES_WITH, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            yield (
                sent.token_at(m.start()),
                code,
                "political",
                _party(sent, _ref(m, 2), scope),
                "third_party.sides-with",
            )
    for m in _matches(_DESCRIBED_AS_BACKER, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            kind = "military" if " military " in m.group(0) else "political"
            yield (
                sent.token_at(m.start()),
                code,
                kind,
                _party(sent, _ref(m, 2), scope),
                "third_party.described-as-backer",
            )
    for name, pattern in _BACKING:
        for m in _matches(pattern, sent, _outsiders(sent, scope)):
            code = _eligible(sent, _ref(m, 1), scope)
            sup = _party(sent, _ref(m, 2), scope)
            if code and sup:
                # "Turkey armed Azerbaijan": backing with weapons.
                backing: InvolvementKind = "arms" if _ARMED.search(m.group(0)) else "political"
                yield sent.token_at(m.start()), code, backing, sup, name


# An outsider (group 1) backing a named party (group 2): "Turkey's support for Azerbaijan",
# "Iran, which has long backed the Houthis", "a military pact with Armenia", "has been
# supporting the government since", "expressed solidarity with Armenia".
_AUX = r"(?:(?:has|have|had|is|are|was|were|been|being|long|openly|also|firmly|strongly) )*"
# A statement about the backing that the backing rules read through: "has denied arming".
_ABOUT = r"(?:(?:denied|denies|deny|denying|admitted|admits|acknowledged|acknowledges) )?"
_BACKING = (
    (
        "third_party.backs",
        re.compile(
            rf"\b(E\d+) (?:, which |, who |of )?{_AUX}{_ABOUT}{_BACKING_VERBS} "
            rf"(?:the |its |their )?(E\d+)"
        ),
    ),
    (
        "third_party.support-for",
        re.compile(
            rf"\b(E\d+) (?:'s )?(?:[^.;]{{0,80}}?)\b{_SUPPORT_NOUNS} (?:to|for|with) (?:the )?"
            rf"(?:\S+ )?(E\d+)"
        ),
    ),
    (
        "third_party.recognises-or-allied",
        re.compile(
            r"\b(E\d+) (?:\S+ ){0,4}?(?:recogni[sz]e[sd]?|military pact with|alliance with) "
            r"(?:the )?(E\d+)"
        ),
    ),
)


_ACCUSED_OF_ATTACK = re.compile(
    rf"\b(?:accus\w*|blam\w*) (?:the )?(E\d+) (?:of|for) (?:having |being |\S+ly )?{_HOSTILE}\b"
)
_FORCES_OF = re.compile(rf"\b(E\d+) (?:'s )?(?:\S+ ){{0,3}}?{_MILITARY_NOUNS}\b")
_ITS_FORCES = re.compile(
    r"\b(?:its|our) (?:\S+ ){0,2}?(?:troops|forces|soldiers|units|army|military)\b"
)
_INVOLVED_IN = re.compile(r"\b(E\d+) (?:'s )?(?:\S+ ){0,12}?involve(?:d|ment) in\b")
_ACCUSED_OF_INVOLVEMENT = re.compile(r"\baccused (?:the )?(E\d+) of (?:\S+ ){0,3}?involved\b")


def _military(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    if "accus" in sig or "blam" in sig:
        for m in _matches(_ACCUSED_OF_ATTACK, sent):
            code = _eligible(sent, _ref(m, 1), scope)
            if code:
                tok = sent.token_at(m.start(1))
                yield (
                    tok,
                    code,
                    "military",
                    _supports_after(sent, tok, scope),
                    "third_party.accused-of-attack",
                )
    if not _COMBAT_CUE.search(sig):
        return
    for m in _matches(_FORCES_OF, sent, _outsiders(sent, scope)):
        ref = _ref(m, 1)
        code = _eligible(sent, ref, scope)
        if not code or sent.mentions[ref].kind in ("igo", "ngo"):
            continue
        rest = sig[m.end() : m.end() + 30]
        if "peacekeep" in rest or "peacekeep" in sig[m.start() : m.end()]:
            continue
        if _SUPPLY_RX.search(sig, m.start(), m.end()) and _ARMS_RX.search(sig, m.start(), m.end()):
            continue  # "Iran is sending drones to ...": weapons supplied, read by _arms
        tok = sent.token_at(m.start())
        yield tok, code, "military", _supports_after(sent, tok, scope), "third_party.forces-of"
    for m in _matches(_ITS_FORCES, sent) if "its " in sig or "our " in sig else ():
        tok = sent.token_at(m.start())
        code = _owner_of_pronoun(sent, tok, scope)
        if code:
            yield tok, code, "military", _supports_after(sent, tok, scope), "third_party.its-forces"
    if "involve" not in sig:
        return
    for m in _matches(_INVOLVED_IN, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            tok = sent.token_at(m.start())
            yield (
                tok,
                code,
                "military",
                _supports_after(sent, tok, scope),
                "third_party.involved-in",
            )
    for m in _matches(_ACCUSED_OF_INVOLVEMENT, sent) if "accused" in sig else ():
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            yield (
                sent.token_at(m.start(1)),
                code,
                "military",
                None,
                "third_party.accused-of-involvement",
            )


def _owner_of_pronoun(sent: Sentence, tok: int, scope: Scope) -> str | None:
    """Whose "its troops": the speaker if an outsider, else the first outside actor before."""
    if sent.speaker_code and sent.speaker_code not in scope.home:
        return sent.speaker_code
    for k in range(tok):
        t = sent.tokens[k]
        if t.kind == "E":
            code = _eligible(sent, t.ref, scope)
            if code:
                return code
    return None


_ARMS_DELIVERIES = re.compile(
    rf"\b(E\d+) (?:'s )?(?:\S+ ){{0,3}}?{_ARMS_NOUNS} (?:sales?|deliver\w*|suppl\w*|shipments?)\b"
)
_ARMS_RECEIVED_FROM = re.compile(
    rf"\b{_RECEIVE} (?:\S+ ){{0,5}}?{_ARMS_NOUNS} (?:\S+ ){{0,3}}?from (?:the )?(E\d+)"
)
_RECEIVED = re.compile(
    word_start("received|receive|receives|delivered|delivery|deliveries") + r"\b"
)
_ACTOR_ARMS = re.compile(rf"\b(E\d+) (?:\S+ ){{0,3}}?{_ARMS_NOUNS}\b")


def _arms(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    if not _ARMS_RX.search(sig):
        return
    for m in _matches(_SUPPLY_RX, sent):
        verb = sent.token_at(m.start())
        actor = _subject_before(sent, verb, scope)
        if actor is None:
            continue
        tok, supplier = actor
        if _STOPPED.search(sig, sent.offsets[tok], m.start()):
            continue  # "suspended exports of drones to ...": no supply
        lo = sent.offsets[max(0, tok - 14)]
        hi = sent.offsets[min(verb + 14, len(sent.offsets) - 1)]
        if not _ARMS_RX.search(sig[lo:hi] if hi > lo else sig[lo:]):
            continue
        yield (
            tok,
            supplier,
            "arms",
            _party_near(sent, verb, scope, before=False, span=14),
            "third_party.supplies-arms",
        )
    for m in _matches(_ARMS_DELIVERIES, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            tok = sent.token_at(m.start())
            yield (
                tok,
                code,
                "arms",
                _party_near(sent, tok, scope, before=False, span=14),
                "third_party.arms-deliveries",
            )
    for m in _matches(_ARMS_RECEIVED_FROM, sent) if "from" in sig else ():
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            verb = sent.token_at(m.start())
            yield (
                sent.token_at(m.start(1)),
                code,
                "arms",
                _party_near(sent, verb, scope, before=True, span=14),
                "third_party.arms-received-from",
            )
    if _RECEIVED.search(sig):
        for m in _matches(_ACTOR_ARMS, sent, _outsiders(sent, scope)):
            ref = _ref(m, 1)
            code = _eligible(sent, ref, scope)
            if code and sent.mentions[ref].form == "adj":
                tok = sent.token_at(m.start())
                yield (
                    tok,
                    code,
                    "arms",
                    _party_near(sent, tok, scope, before=True, span=14),
                    "third_party.arms-received",
                )


def _subject_before(sent: Sentence, verb: int, scope: Scope) -> tuple[int, str] | None:
    """The outside actor doing `verb`: the nearest eligible actor before it in the clause."""
    for k in range(verb - 1, max(-1, verb - 14), -1):
        t = sent.tokens[k]
        if t.text in (".", ";", "but", "while"):
            return None
        if t.kind == "E":
            prev = sent.tokens[k - 1].text if k > 0 else ""
            nxt = sent.tokens[k + 1].text if k + 1 < len(sent.tokens) else ""
            if prev == "-" or nxt == "-":
                continue  # "Israel-made": the maker is not a supplier
            code = _eligible(sent, t.ref, scope)
            if code:
                return k, code
            if sent.mentions[t.ref].party:
                return None
    return None


_FIGHTER_NOUNS = (
    r"(?:mercenaries|fighters|jihadists|militants|paramilitar(?:y|ies)|contractors|volunteers)"
)
# The fighter nouns as substrings (a cheaper test than the pattern, and the same).
_FIGHTERS = words(
    "mercenaries fighters jihadists militants paramilitary paramilitaries contractors volunteers"
)
_SENDS_FIGHTERS = re.compile(
    r"\b(?:send(?:s|ing)?|sent|recruit(?:s|ed|ing)?|transferr?(?:ed|ing)?|deploy(?:s|ed|ing)?|"
    rf"dispatch(?:ed|es|ing)?|mov(?:ed|ing)) (?:\S+ ){{0,4}}?{_FIGHTER_NOUNS}\b"
)
_FIGHTERS_SENT_BY = re.compile(rf"\b{_FIGHTER_NOUNS} (?:\S+ ){{0,2}}?{_SENT_BY} by (?:the )?(E\d+)")
_FIGHTERS_CUE = re.compile(
    word_start(
        r"arriv\w*|deploy\w*|sent|send\w*|recruit\w*|fight\w*|fought|join\w*|"
        r"take part|took part|killed|being|reli\w*|rel(?:y|ies)|hir\w*|employ\w*|"
        r"us(?:e|es|ed|ing)|backed|alongside|assist\w*|help\w*"
    )
    + r"\b"
)
_ACTOR_FIGHTERS = re.compile(rf"\b(E\d+) (?:\S+ ){{0,2}}?{_FIGHTER_NOUNS}\b")
_FIGHTERS_FROM = re.compile(rf"\b{_FIGHTER_NOUNS} from\b")


def _fighters(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    if not contains_any(sig, _FIGHTERS):
        return
    senders = _SENDS_FIGHTERS.finditer(sig)
    sent_by: list[Hit] = []
    for m in senders:
        verb = sent.token_at(m.start())
        actor = _subject_before(sent, verb, scope)
        if actor:
            tok, sender = actor
            sent_by.append(
                (tok, sender, "fighters", _party_near(sent, verb, scope, False, 16), _SENDS)
            )
    for m in _matches(_FIGHTERS_SENT_BY, sent):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            tok = sent.token_at(m.start(1))
            sent_by.append(
                (tok, code, "fighters", _helped(sent, tok, scope), "third_party.sent-by")
            )
    yield from sent_by
    if sent_by:
        return
    if not _FIGHTERS_CUE.search(sig):
        return
    for m in _matches(_ACTOR_FIGHTERS, sent, _outsiders(sent, scope)):
        ref = _ref(m, 1)
        code = _eligible(sent, ref, scope)
        if code and sent.mentions[ref].form in ("adj", "org"):
            tok = sent.token_at(m.start())
            yield tok, code, "fighters", _helped(sent, tok, scope), "third_party.foreign-fighters"
    for m in _matches(_FIGHTERS_FROM, sent):
        start = sent.token_at(m.end()) + 1
        for k in range(start, min(start + 6, len(sent.tokens))):
            t = sent.tokens[k]
            if t.kind == "E" and sent.mentions[t.ref].kind == "group":
                code = _eligible(sent, t.ref, scope)
                if code:
                    yield (
                        k,
                        code,
                        "fighters",
                        _helped(sent, k, scope),
                        "third_party.fighters-from-group",
                    )


def _helped(sent: Sentence, tok: int, scope: Scope) -> str | None:
    """The party that foreign fighters serve: named after them ("... in Azerbaijan"), else the
    one that hires or relies on them, named before ("Mali's junta has relied on ...")."""
    return _party_near(sent, tok, scope, False, 14) or _party_near(sent, tok, scope, True, 14)


_PEACEKEEPERS = (
    re.compile(r"\b(E\d+) (?:\( E\d+ \) )?(?:\S+ ){0,5}?peacekeep\w*"),
    re.compile(r"\bpeacekeep\w* (?:\S+ ){0,3}?(?:of|from) (?:the )?(E\d+)"),
)


def _peacekeeping(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    for k in sent.actor_tokens:
        t = sent.tokens[k]
        if sent.text[t.start : t.end].upper() in _MISSIONS:
            code = _eligible(sent, t.ref, scope)
            if code:
                yield k, code, "peacekeeping", None, "third_party.peacekeeping-mission"
    if "peacekeep" not in sig:
        return
    for pat in _PEACEKEEPERS:
        for m in _matches(pat, sent, _outsiders(sent, scope)):
            ref = _ref(m, 1)
            code = _eligible(sent, ref, scope)
            if code:
                yield (
                    sent.token_at(m.start(1)),
                    code,
                    "peacekeeping",
                    None,
                    "third_party.peacekeepers",
                )


_PROCESS_WORDS = re.compile(
    word_start("talks|negotiations|deal|meeting|consultations|agreement|accord") + r"\b"
)
# (id, word every match contains, pattern): the substring test spares most regex scans.
_MEDIATES = (
    (
        "third_party.acts-as-mediator",
        ("act", "serv", "playing"),
        re.compile(
            r"\b(E\d+) (?:\S+ ){0,3}?(?:acted|acting|act|served|serving|serves|playing) (?:as )?"
            r"(?:an? |the )?(?:same )?(?:intermediary|mediator|broker|guarantor|host|role)"
        ),
    ),
    (
        "third_party.envoy-mediator",
        ("mediator",),
        re.compile(r"\b(E\d+) (?:\S+ ){0,2}?(?:envoy|mediators?) , (?:\S+ )?mediator"),
    ),
    (
        "third_party.mediates",
        ("mediat", "resol"),
        re.compile(
            r"\b(E\d+) (?:\S+ ){0,10}?(?:to mediate|mediat(?:ed|es|ing)|to find a resolution|"
            r"to resolve)"
        ),
    ),
)


def _mediation(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    if not (contains_any(sig, _MEDIATION_GATE) or _MET.search(sig)) or _NEGATED_ROLE.search(sig):
        return
    if ceasefire._TRIGGER.search(sig) or _PROCESS_WORDS.search(sig):
        for broker in ceasefire.brokers(sent, scope.parties):
            if broker not in scope.home:
                tok = _first_token_of(sent, broker)
                if tok is not None and sent.is_actor_token(tok):
                    yield tok, broker, "mediation", None, "third_party.ceasefire-broker"
    for name, cues, pat in _MEDIATES:
        if not contains_any(sig, cues):
            continue
        for m in _matches(pat, sent, _outsiders(sent, scope)):
            code = _eligible(sent, _ref(m, 1), scope)
            if code:
                yield sent.token_at(m.start(1)), code, "mediation", None, name
    if "co-chair" in sig or "guarantor" in sig:
        yield from _co_chairs(sent, scope)
    yield from _meeting(sent, scope)


_CO_CHAIRS = re.compile(r"\b(?:co-chairs?|co-chair(?:ed)?|guarantor countries|guarantors)\b")


def _co_chairs(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    """States named as co-chairs or guarantors of a peace process."""
    for m in _matches(_CO_CHAIRS, sent):
        tok = sent.token_at(m.start())
        for k in range(max(0, tok - 12), tok):
            t = sent.tokens[k]
            if t.kind == "E":
                code = _eligible(sent, t.ref, scope)
                if code and sent.mentions[t.ref].kind == "state":
                    yield k, code, "mediation", None, "third_party.co-chair"
        for k, code in _actors_in_list(sent, tok + 1, scope):
            if sent.mentions[sent.tokens[k].ref].kind == "state":
                yield k, code, "mediation", None, "third_party.co-chair"


_BOTH_SIDES = re.compile(
    r"\b(?:between|with) (?:the |both |all )?(?:N\d+ |warring |rival |opposing |"
    r"conflicting |fighting )*(?:sides|parties|factions|belligerents|camps|delegations)\b"
)


_MEETS = re.compile(r"\b(?:met|meet|meets|hosted|hosts|host)\b")
_TALKS_BETWEEN = re.compile(r"\b(?:consultations|talks|negotiations) (?:between|with)\b")


def _meeting(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    """An outsider meeting or hosting both sides ("Pompeo met the ministers of Armenia and
    Azerbaijan", "Egypt hosted talks between the warring parties"), named or not."""
    sig = sent.sig
    sides = {sent.mentions[sent.tokens[k].ref].code for k in sent.actor_tokens} & scope.parties
    if len(sides) < 2 and not _BOTH_SIDES.search(sig):
        return
    m = _MEETS.search(sig) or _TALKS_BETWEEN.search(sig)
    if not m:
        return
    verb = sent.token_at(m.start())
    for k in range(max(0, verb - 14), min(len(sent.tokens), verb + 14)):
        t = sent.tokens[k]
        if t.kind == "E":
            code = _eligible(sent, t.ref, scope)
            if code and sent.mentions[t.ref].kind in ("state", "igo"):
                yield k, code, "mediation", None, "third_party.meets-both-sides"
                return


# Text every match of _HUMANITARIAN holds: a substring test spares most scans.
_HUMANITARIAN_WORDS = (
    "humanitarian",
    "relief",
    "airdrop",
    "air-drop",
    "food aid",
    "aid convoy",
    "medical supplies",
    "airlift",
    "aid to",
    "aid for",
)
_MILITARY_AID = re.compile(r"\bmilitary aid\b")
_AID_FOR = re.compile(
    r"\b(?:aid|assistance|supplies|relief|food)\b(?: \S+){0,6}? (?:for|to) (?:the )?(E\d+)"
)


def _humanitarian(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    sig = sent.sig
    if (
        not contains_any(sig, _HUMANITARIAN_WORDS)
        or not _HUMANITARIAN.search(sig)
        or _MILITARY_AID.search(sig)
    ):
        return
    sup_m = _AID_FOR.search(sig)
    supports = sent.mentions[_ref(sup_m, 1)].code if sup_m else None
    for k, t in enumerate(sent.tokens):
        if t.kind != "E":
            continue
        code = _eligible(sent, t.ref, scope)
        if code and not (sup_m and t.ref == _ref(sup_m, 1)):
            yield k, code, "humanitarian", supports, "third_party.aid"


_ARRANGED_RELEASE = re.compile(
    rf"\b(E\d+) (?:\S+ ){{0,3}}?{_RELEASE_VERBS} (?:the |a )?{_RELEASE_NOUNS} of\b"
)
_RELEASE_THROUGH = re.compile(
    rf"\b{_FREED} (?:\S+ ){{0,4}}?(?:after|following|thanks to|through|with|under|by) "
    rf"(?:the )?(?:(E\d+) (?:'s )?)?{_INTERMEDIARY}(?: (?:of|by|from) (?:the )?(E\d+))?"
)


def _release(sent: Sentence, scope: Scope) -> Iterator[Hit]:
    """An outsider arranging a release of captives: humanitarian help to the side whose
    people are freed ("Qatar brokered the release of 12 Sudanese soldiers", "five soldiers
    were freed after Egyptian mediation")."""
    sig = sent.sig
    for m in _matches(_ARRANGED_RELEASE, sent, _outsiders(sent, scope)):
        code = _eligible(sent, _ref(m, 1), scope)
        if code:
            of = sent.token_at(m.end() - 2)
            yield (
                sent.token_at(m.start()),
                code,
                "humanitarian",
                _party_near(sent, of, scope, before=False, span=8),
                "third_party.arranged-release",
            )
    through = contains_any(sig, _W["intermediary_words"])  # words every match holds
    for m in _RELEASE_THROUGH.finditer(sig) if through else ():
        ref = m.group(1) or m.group(2)
        if ref is None:
            continue
        code = _eligible(sent, int(ref[1:]), scope)
        if code:
            verb = sent.token_at(m.start())
            yield (
                sent.token_at(m.start(1) if m.group(1) else m.start(2)),
                code,
                "humanitarian",
                _captives_side(sent, verb, scope),
                "third_party.release-through",
            )


def _captives_side(sent: Sentence, verb: int, scope: Scope) -> str | None:
    """The side whose people were freed: the first party named before the verb that is not
    their captor ("soldiers held by Eritrea")."""
    for k in range(verb):
        t = sent.tokens[k]
        if t.kind == "E" and (k == 0 or sent.tokens[k - 1].text not in ("by", "from")):
            code = _party(sent, t.ref, scope)
            if code:
                return code
    return None


_RULES: tuple[Callable[[Sentence, Scope], Iterator[Hit]], ...] = (
    _political,
    _military,
    _arms,
    _fighters,
    _peacekeeping,
    _mediation,
    _humanitarian,
    _release,
)


def _first_token_of(sent: Sentence, code: str) -> int | None:
    for k, t in enumerate(sent.tokens):
        if t.kind == "E" and sent.mentions[t.ref].code == code and sent.is_actor_token(k):
            return k
    return None


# --- stance -----------------------------------------------------------------------------------


def deniers(sent: Sentence) -> set[str]:
    """Codes of actors that deny something in this sentence ("Turkey and Azerbaijan denied")."""
    if "deniers" not in sent.memo:
        sent.memo["deniers"] = _deniers(sent)
    return sent.memo["deniers"]


def _deniers(sent: Sentence) -> set[str]:
    out: set[str] = set()
    for m in _DENY.finditer(sent.sig):
        verb = sent.token_at(m.start())
        for k in range(verb - 1, max(-1, verb - 9), -1):
            t = sent.tokens[k]
            if t.text in (".", ";", "that"):
                break
            if t.kind == "E" and sent.mentions[t.ref].is_actor:
                out.add(sent.mentions[t.ref].code)
        if sent.speaker_code and sent.speaker_end >= 0 and sent.speaker_end <= verb + 1:
            out.add(sent.speaker_code)
    return out


# Open kinds of involvement (backing, mediation, aid, peacekeeping) are rarely what a nearby
# denial is about; covert kinds (troops, arms, fighters) are what actors typically deny.
OPEN_KINDS: frozenset[InvolvementKind] = frozenset(
    {"political", "mediation", "humanitarian", "peacekeeping"}
)


_ACKNOWLEDGE = re.compile(word_start(r"acknowledg\w*"))
_WE = re.compile(word_start("our|we") + r"\b")


def _stance(
    sent: Sentence, tok: int, code: str, supports: str | None, kind: InvolvementKind
) -> Stance:
    denial = code in deniers(sent) or (supports and supports in deniers(sent))
    if denial and kind in OPEN_KINDS:
        first = _DENY.search(sent.sig)
        denial = first is not None and sent.token_at(first.start()) < tok
    if denial:
        return "denied"
    described = sent.words(tok + 1, tok + 3) in (", a", ", an", ", the")
    if described:
        # "Qatar, a key backer of Sudan, said ...": the outlet describes it; Qatar's own words
        # are about something else.
        return "alleged" if _ALLEGE.search(sent.sig) else "reported"
    if sent.speaker_code == code or (
        supports and sent.speaker_code == supports and (_ACKNOWLEDGE.search(sent.sig))
    ):
        return "confirmed"
    if sent.speaker_code == code and _WE.search(sent.sig):
        return "confirmed"
    allegation = _first_allegation(sent)
    if tok < len(sent.tokens):
        alleged_before = allegation is not None and allegation < tok
        if (
            not alleged_before
            and tok in _leading_subjects(sent)
            and _CONFIRM_VERBS.search(sent.words(tok + 1, tok + 8))
        ):
            return "confirmed"
    if allegation is not None:
        return "alleged"
    return "reported"


def _first_allegation(sent: Sentence) -> int | None:
    """The token of the sentence's first allegation word, or None (kept in its memo: every
    involvement read from the sentence asks)."""
    if "allegation" not in sent.memo:
        m = _ALLEGE.search(sent.sig)
        sent.memo["allegation"] = sent.token_at(m.start()) if m else None
    return sent.memo["allegation"]


def _leading_subjects(sent: Sentence) -> set[int]:
    """The actor tokens the sentence opens with, coordinated ("Greece and Cyprus voiced")."""
    out: set[int] = set()
    for k, t in enumerate(sent.tokens):
        if sent.is_actor_token(k):
            out.add(k)
        elif not (t.text == "the" or (out and t.text in ("and", ",", "both"))):
            break
    return out


def read_sentence(sent: Sentence, scope: Scope) -> list[Involvement]:
    if not _outsiders(sent, scope):
        return []  # only the parties themselves are named: nobody else to be involved
    out: list[Involvement] = []
    for rule in _RULES:
        for tok, code, kind, supports, pattern in rule(sent, scope):
            if code in scope.home:
                sent.note(pattern, "vetoed", f"{code}: a party to the conflict")
                continue
            if supports is not None and supports == code:
                sent.note(pattern, "vetoed", f"{code}: would help itself")
                continue
            stance = _stance(sent, tok, code, supports, kind)
            sent.note(pattern, "fired", f"{code} {kind}" + (f" for {supports}" if supports else ""))
            out.append(Involvement(code, kind, supports, stance, sent, pattern))
    return out


# --- the reader -----------------------------------------------------------------------------

# Where one report of an involvement has several stances, the first in this order wins.
_STANCE_RANK: dict[Stance, int] = {
    "denied": 0,
    "confirmed": 1,
    "alleged": 2,
    "claimed": 3,
    "reported": 4,
}
_Key = tuple[str, InvolvementKind, str | None]
_Found = tuple[Stance, Sentence, str]  # stance, first sentence, pattern


class ThirdPartyReader:
    """Outside actors of one text: one per (actor, kind, side helped). A covert kind
    (troops, arms, fighters) denied by the actor, or by the side it helps, within a sentence
    before or two after, is denied. The rules run on every sentence naming an outsider;
    `triggers` are the denial stems."""

    topic = "third_party"
    triggers = DENIAL_TRIGGERS

    def facts(self, sentences: Sequence[Sentence], watch: Watch | None) -> list[Fact]:
        if watch is None:
            return []  # an outsider is only an outsider to some conflict
        key = watch_key(watch)
        scope = Scope(frozenset(watch.parties), home_states(key), home_parties(key))
        denials = [deniers(s) if self.topic in s.topics else set() for s in sentences]
        merged: dict[_Key, _Found] = {}
        for i, sent in enumerate(sentences):
            for hit in read_sentence(sent, scope):
                stance = hit.stance
                window = set().union(*denials[max(0, i - 1) : i + 3])
                covert = hit.kind not in OPEN_KINDS
                if covert and (hit.actor in window or (hit.supports and hit.supports in window)):
                    sent.note("third_party.denied-nearby", "fired", f"{hit.actor} {hit.kind}")
                    stance = "denied"
                k = (hit.actor, hit.kind, hit.supports)
                if k in merged:
                    old_stance, old_sent, old_pattern = merged[k]
                    if _STANCE_RANK[stance] < _STANCE_RANK[old_stance]:
                        merged[k] = (stance, old_sent, old_pattern)
                    continue
                merged[k] = (stance, sent, hit.pattern)
        merged = _drop_unsupported_duplicates(merged)
        return [
            ThirdParty(**sent.provenance(pattern), stance=stance, actor=a, kind=kind, supports=sup)
            for (a, kind, sup), (stance, sent, pattern) in merged.items()
        ]


def _drop_unsupported_duplicates(merged: dict[_Key, _Found]) -> dict[_Key, _Found]:
    """(TUR, military, None) adds nothing beside (TUR, military, AZE) from the same text."""
    out = dict(merged)
    for (actor, kind, sup), (stance, sent, pattern) in merged.items():
        if sup is None and any(a == actor and k == kind and s for a, k, s in merged):
            richer = next(v for (a, k, s), v in merged.items() if a == actor and k == kind and s)
            if _STANCE_RANK[stance] >= _STANCE_RANK[richer[0]]:
                out.pop((actor, kind, sup), None)
                sent.note(pattern, "vetoed", f"{actor} {kind}: said with the side it helps")
    return out


READER = ThirdPartyReader()
