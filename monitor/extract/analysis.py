"""One sentence, prepared for the fact rules: tokens, actor roles, counts and the speaker.

Every rule module works on the same `Sentence`: a token list in which actor names and counts
are single tokens, plus a "signature" string (one item per token, words lower-cased, actors
as E<i>, counts as N<i>) so that rules can be regexes over tokens rather than characters.
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal, NamedTuple

from monitor.extract.gazetteer import Mention, group_codes
from monitor.extract.numbers import Quantity
from monitor.extract.sentences import lowered


def words(text: str) -> list[str]:
    """A word list written as one string: keeps the lexicons compact and readable."""
    return text.split()


def contains_any(text: str, needles: Iterable[str]) -> bool:
    """Whether any of `needles` occurs in `text`: the cheap gate before a costly scan, for
    words that every match of a pattern holds (`map` over `in`: no Python step per word)."""
    return any(map(text.__contains__, needles))


# A token: "'s", a word, a figure, or any other single character. Possessive quantifiers: a
# token ends where its run of letters or digits ends, so nothing is ever given back, and the
# regex engine keeps no state to give it back (twice as fast). Every character is either
# space or part of a token, so the spaces before each token and the token itself tile the
# text. A word or figure falls in the second group (so does any other single letter or digit:
# `[^\W_]` is exactly `str.isalnum` of one character), punctuation in the third: `findall`
# then tells words from punctuation with no Python call per token.
_SPACED_WORD = re.compile(
    r"(\s*+)(?:(['’]s\b|[A-Za-z]++(?:(?:-|['’](?!s\b))[A-Za-z]++)*+|\d++(?:[.,]\d++)*+|[^\W_])"
    r"|(\S))"
)
MONTHS = frozenset(
    words(
        "january february march april may june july august september october november december "
        "jan feb mar apr jun jul aug sep sept oct nov dec"
    )
)
_LOC_PREPS = frozenset(
    words(
        "in at near into inside outside across throughout toward towards through via within around"
    )
)
_SPEECH = frozenset(
    words(
        "said says say told announced reported reports claimed claims claim stated added "
        "confirmed confirms denied denies insisted alleged alleges accused charge charged "
        "acknowledged declared noted warned"
    )
)
_SPEAKER_NOUNS = frozenset(
    words(
        "ministry minister officials official spokesman spokeswoman spokesperson army military "
        "forces government authorities sources source president command office agency media "
        "commander chief governor mayor police service services department secretary ombudsman "
        "statement defense defence foreign interior press mod general leader leaders prime and of "
        "the for its his her their air force navy aide adviser advisor envoy security health "
        "local regional provincial state medics medical doctors hospital witnesses residents "
        "activists monitors rescuers paramedics observers spokesmen television radio state-run "
        "diplomats diplomat analysts analyst experts investigators lawmakers researchers "
    )
)
# Nouns that can head a speaker phrase on their own, without a capitalised name: "police
# said", "according to the health ministry", "security sources said".
_SPEAKER_HEADS = frozenset(
    words(
        "ministry minister officials official spokesman spokeswoman spokesperson spokesmen army "
        "military government authorities sources source command office agency commander chief "
        "governor mayor police department secretary ombudsman medics doctors hospital witnesses "
        "residents activists monitors rescuers paramedics observers envoy aide adviser advisor "
        "media television radio diplomats diplomat analysts analyst experts investigators "
        "lawmakers researchers"
    )
)


# What a token is: E an actor name, N a count, W a word, P punctuation. One letter each,
# because a sentence's signature spells actors and counts as E<i> and N<i>.
TokenKind = Literal["E", "N", "W", "P"]


Verdict = Literal["fired", "vetoed"]


@dataclass(frozen=True, slots=True)
class Note:
    """One step of the explanation of a sentence: a pattern that matched and produced a
    candidate fact (fired), or a candidate that a check rejected (vetoed), and why."""

    pattern: str
    verdict: Verdict
    detail: str = ""


class Token(NamedTuple):
    """One token: kind E (actor), N (count), W (word) or P (punctuation). A named tuple:
    an article makes hundreds, and a tuple is the cheapest object Python makes."""

    kind: TokenKind
    text: str  # lower-cased for words; the sig item for E/N
    start: int  # absolute offsets into the article text
    end: int
    ref: int = -1  # index into Sentence.mentions / Sentence.quantities


@dataclass(slots=True)
class Sentence:
    """A sentence with its tokens and the roles of the actors it names."""

    text: str  # the article text (not just this sentence)
    start: int
    end: int
    index: int
    mentions: list[Mention]
    quantities: list[Quantity]
    tokens: list[Token] = field(default_factory=list)
    sig: str = ""
    offsets: list[int] = field(default_factory=list)
    location: set[int] = field(default_factory=set)  # mention indices used as places
    modifier: set[int] = field(default_factory=set)  # mention indices that only qualify
    accuser: set[int] = field(default_factory=set)  # "allegations from France and Iran"
    speaker: str | None = None
    speaker_code: str | None = None
    speaker_end: int = -1  # token index after the speaker phrase (-1: none)
    speaker_at: int = -1  # offset of the speaker phrase in the text (-1: none)
    actor_tokens: list[int] = field(default_factory=list)  # indices of E tokens
    memo: dict = field(default_factory=dict)  # per-sentence results shared by rule modules
    # Rule modules whose trigger stems occur here (normalize.py): the others skip the sentence.
    topics: frozenset[str] = frozenset()
    # The year the article was published, when known: a year from then on is this report's own
    # time, not an earlier war's.
    report_year: int | None = None
    # Patterns that fired or were vetoed here, kept only when explaining (normalize.explain).
    trace: list[Note] | None = None

    @property
    def quote(self) -> str:
        return self.text[self.start : self.end]

    def note(self, pattern: str, verdict: Verdict, detail: str = "") -> None:
        """Record that a pattern fired or was vetoed here (a no-op unless explaining)."""
        if self.trace is not None:
            self.trace.append(Note(pattern, verdict, detail))

    def provenance(self, pattern: str) -> dict[str, Any]:
        """The fields every fact takes from its sentence (quote, span, speaker) and the
        pattern that read it."""
        return {
            "quote": self.quote,
            "span": (self.start, self.end),
            "attributed_to": self.speaker,
            "pattern": pattern,
        }

    def token_at(self, sig_pos: int) -> int:
        """The token index at a position of the signature string."""
        return max(0, bisect.bisect_right(self.offsets, sig_pos) - 1)

    def raw(self, i: int, j: int) -> str:
        """The text of tokens i..j-1 as written (names and figures spelt out)."""
        i, j = max(0, i), min(j, len(self.tokens))
        return self.text[self.tokens[i].start : self.tokens[j - 1].end] if j > i else ""

    def raw_match(self, m: re.Match[str]) -> str:
        """The text as written under a match of a signature pattern."""
        return self.raw(self.token_at(m.start()), self.token_at(max(m.start(), m.end() - 1)) + 1)

    def words(self, i: int, j: int) -> str:
        return " ".join(t.text for t in self.tokens[max(0, i) : max(0, j)])

    def mention(self, token: Token) -> Mention:
        return self.mentions[token.ref]

    def is_actor_token(self, i: int) -> bool:
        """An E token that names an actor in this sentence (not a place or a modifier)."""
        t = self.tokens[i]
        return (
            t.kind == "E"
            and self.mentions[t.ref].is_actor
            and t.ref not in self.location
            and t.ref not in self.modifier
        )


def build_sentence(
    text: str,
    start: int,
    end: int,
    index: int,
    mentions: list[Mention],
    quantities: list[Quantity],
    folded: str | None = None,
) -> Sentence:
    """Tokenise one sentence and work out the roles of its actor names and its speaker.
    `folded` is `fold(text)`, passed in so that a passage folds its text only once."""
    sent = Sentence(text, start, end, index, mentions, quantities)
    _tokenise(sent, fold(text) if folded is None else folded)
    _mark_roles(sent)
    _find_speaker(sent)
    return sent


def fold(text: str) -> str:
    """The text as word tokens spell it: lower case, typographic apostrophes made plain,
    every offset kept."""
    return lowered(text).replace("’", "'")


def _tokenise(sent: Sentence, folded: str) -> None:
    spans: list[tuple[int, int, TokenKind, int]] = [
        (m.start, m.end, "E", i) for i, m in enumerate(sent.mentions)
    ]
    taken = [(m.start, m.end) for m in sent.mentions]
    for i, q in enumerate(sent.quantities):
        if not any(s < q.end and q.start < e for s, e in taken):
            spans.append((q.start, q.end, "N", i))
    spans.sort()
    tokens: list[Token] = []
    actors: list[int] = []
    cursor = sent.start
    for s, e, kind, ref in spans:
        if s > cursor:
            _plain_tokens(folded, cursor, s, tokens)
        if kind == "E":
            actors.append(len(tokens))
        tokens.append(Token(kind, f"{kind}{ref}", s, e, ref))
        cursor = e
    _plain_tokens(folded, cursor, sent.end, tokens)
    sent.tokens = tokens
    texts = [t.text for t in tokens]
    # Token k starts after the k earlier items and the k spaces between them.
    sent.offsets = list(
        map(operator.add, accumulate(map(len, texts), initial=0), range(len(texts)))
    )
    sent.sig = " ".join(texts)
    sent.actor_tokens = actors


def _plain_tokens(folded: str, start: int, end: int, out: list[Token]) -> None:
    """Words and punctuation between actor names and counts, from the folded text (a hot
    loop, kept flat: `findall` with the spaces before each token gives the offsets at a
    fraction of the cost of match objects, and each token is made by `tuple.__new__` rather
    than the named tuple's own constructor, a Python function)."""
    append = out.append
    punct = _PUNCT_MAP
    new = tuple.__new__
    pos = start
    for space, word, mark in _SPACED_WORD.findall(folded, start, end):
        a = pos + len(space)
        if word:
            pos = a + len(word)
            append(new(Token, ("W", word, a, pos, -1)))
        else:
            pos = a + 1  # punctuation is one character
            append(new(Token, ("P", punct.get(mark, mark), a, pos, -1)))


_PUNCT_MAP = {"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-"}


_ACCUSATIONS = frozenset(
    words(
        "allegations allegation accusations accusation claims claim charges reports criticism "
        "condemnation calls call appeals pressure"
    )
)
_PLACE_ADJECTIVES = frozenset(
    words(
        "the southern northern eastern western central south north east west neighbouring "
        "neighboring occupied war-torn rebel-held government-held upper lower greater"
    )
)
_HEAD_FOLLOWERS = frozenset(
    words(
        "and or to on as for where which that after before with while when from in at by since "
        "during near over under into amid until who whose"
    )
)


_SKIPPED_BEFORE_NAME = _PLACE_ADJECTIVES | {'"'}


def _prev_word(sent: Sentence, i: int) -> str:
    j = i - 1
    while j >= 0 and sent.tokens[j].text in _SKIPPED_BEFORE_NAME:
        j -= 1
    return sent.tokens[j].text if j >= 0 else ""


def _mark_roles(sent: Sentence) -> None:
    """Places ("in Riga, Latvia") and modifiers ("Russian paramilitary group Wagner",
    "Armenian Cypriots", "Russia's RIA agency") are names but not actors here."""
    toks = sent.tokens
    last_loc_token = -10
    accusing = -10
    sig = sent.sig
    # Only names are marked, so only they are visited, unless an accusation ("allegations
    # from France") may be in the sentence: then every word is, to follow where it ends.
    accusation = ("from" in sig or "by" in sig) and contains_any(sig, _ACCUSATIONS)
    for i in range(len(toks)) if accusation else sent.actor_tokens:
        t = toks[i]
        if (
            t.kind == "W"
            and t.text in ("from", "by")
            and i > 0
            and toks[i - 1].text in _ACCUSATIONS
        ):
            accusing = i
        if t.kind == "W" and t.text in ("that", "of", ".", ";") and accusing >= 0:
            accusing = -10
        if t.kind != "E":
            continue
        if 0 <= accusing < i:
            sent.accuser.add(t.ref)
        m = sent.mentions[t.ref]
        prev = _prev_word(sent, i)
        nxt = toks[i + 1].text if i + 1 < len(toks) else ""
        nxt2 = toks[i + 2].text if i + 2 < len(toks) else ""
        heads = nxt in _HEAD_FOLLOWERS or not nxt or toks[i + 1].kind in ("P", "E", "N")
        if (prev in _LOC_PREPS and heads) or (prev == "," and last_loc_token == i - 2):
            sent.location.add(t.ref)
            last_loc_token = i
            continue
        if nxt in ("capital", "state", "border", "time", "airspace", "territory", "soil") or (
            nxt == "'s" and nxt2 in ("capital", "airspace", "territory", "soil")
        ):
            sent.location.add(t.ref)
            continue
        if m.form in ("adj", "people", "name") and _qualifies_following_org(sent, i):
            sent.modifier.add(t.ref)
            continue
        if m.form in ("adj", "people") and i > 0 and toks[i - 1].kind == "E":
            before = sent.mentions[toks[i - 1].ref]
            if before.form == "adj":
                sent.modifier.add(t.ref)  # a diaspora ("Armenian Cypriots")


def _qualifies_following_org(sent: Sentence, i: int) -> bool:
    """Whether the name at token i only qualifies an organisation named right after it."""
    for j in range(i + 1, min(i + 5, len(sent.tokens))):
        t = sent.tokens[j]
        if t.kind == "E":
            m = sent.mentions[t.ref]
            return m.kind in ("group", "media", "ngo", "igo") and not m.party
        if (t.kind == "P" and t.text not in ("'s", "-")) or t.text in ("and", "or"):
            return False  # "Qatar and the UN": a coordination, not a qualifier
    return False


def _find_speaker(sent: Sentence) -> None:
    toks = sent.tokens
    n = len(toks)
    # Each walk below looks for a word: where the signature lacks it, the walk is skipped.
    for i, t in enumerate(toks if "according to" in sent.sig else ()):
        if t.text == "according" and i + 1 < n and toks[i + 1].text == "to":
            j = i + 2
            k = j
            while k < n and toks[k].text not in (",", ".", ";", "on", "in", "that", "who"):
                k += 1
            _set_speaker(sent, j, k)
            if sent.speaker:
                return
    for i, t in enumerate(toks if "quoted" in sent.sig else ()):
        if t.text == "quoted":
            k = i + 1
            while k < n and toks[k].text not in ("as", ",", "."):
                k += 1
            _set_speaker(sent, i + 1, k)
            if sent.speaker:
                return
    for i, t in enumerate(toks):
        if t.kind == "W" and t.text in _SPEECH:
            end = i  # "the UAE has flatly denied": the phrase ends before the auxiliaries
            while end > 0 and toks[end - 1].text in _BEFORE_SPEECH:
                end -= 1
            j = end
            while j > 0 and (_speaker_like(sent, j - 1) or _modifier_gap(sent, j - 1)):
                j -= 1
            if j < end:
                _set_speaker(sent, j, end)
                if sent.speaker:
                    return
            lead = end  # ", Western diplomats said": the clause of the verb starts at a comma
            while lead > 0 and toks[lead - 1].text not in _CLAUSE_MARKS:
                lead -= 1
            while lead < end and toks[lead].text in ("and", "but", "while", "whereas"):
                lead += 1  # ", and the group said"
            opened = lead > 0 or toks[0].text == "the"  # "..., the group said"; "The group said"
            if opened and lead < end and _speaker_phrase(sent, lead, end, i):
                # Its subject is the speaker, named or not ("the group"); the sentence's first
                # actor ("The army shelled ..., the group said") is the one it speaks of.
                sent.speaker = sent.text[toks[lead].start : toks[end - 1].end]
                sent.speaker_end = end
                sent.speaker_at = toks[lead].start
                return
            k = 0
            while k < i and _speaker_like(sent, k):
                k += 1
            if k > 0:
                _set_speaker(sent, 0, k, need_actor=True)
                if sent.speaker:
                    return
            return


# Auxiliaries and adverbs between a speaker and its verb: never part of the speaker's name.
_BEFORE_SPEECH = frozenset(
    words(
        "has have had also again previously repeatedly flatly strongly categorically reportedly "
        "later earlier already will would did does not publicly officially firmly"
    )
)


def _modifier_gap(sent: Sentence, i: int) -> bool:
    """A lower-case modifier inside a speaker phrase ("Yemen's health ministry"): a word
    with a possessive, a name or a capitalised word right before it."""
    t = sent.tokens[i]
    if t.kind != "W" or t.text in ("that", "but", "and", "which", "who", "as", "it", "they"):
        return False
    return i > 0 and (sent.tokens[i - 1].text == "'s" or sent.tokens[i - 1].kind == "E")


def _speaker_like(sent: Sentence, i: int) -> bool:
    t = sent.tokens[i]
    if t.kind == "E":
        return True
    if t.kind == "P":
        return t.text in ("'s", "-", "(", ")")
    if t.kind != "W":
        return False
    if t.text in _PRONOUNS:
        return False  # "He said": no name to attribute to
    raw = sent.text[t.start : t.end]
    return t.text in _SPEAKER_NOUNS or t.text == "'s" or raw[:1].isupper()


_PRONOUNS = frozenset(words("i he she it we they you"))
_CLAUSE_MARKS = frozenset([",", ";", ":", '"'])


# Words that show a clause is more than a short noun phrase before its speech verb.
_NOT_IN_SPEAKER = frozenset(
    words(
        "who which that when while after before as where whose but and or if because were "
        "was is are be been being have has had not no"
    )
)


# Words after which a speech verb is an adjective: "an alleged gang member", "by alleged".
_BEFORE_ADJECTIVE = frozenset(words("a an the by of for to in on at from with its their his her"))


def _speaker_phrase(sent: Sentence, i: int, j: int, verb: int) -> bool:
    """Whether tokens i..j, a clause opened by a comma or quote and closed by the active
    speech verb at `verb`, are a short noun phrase without a name ("the group", "the
    statement", "two officials"): the speaker, kept verbatim so that nobody else is
    credited. A pronoun is not: "he said" may well mean the actor the sentence opened with."""
    toks = sent.tokens[i:j]
    if len(toks) > 5 or all(t.text in _PRONOUNS for t in toks):
        return False
    if sent.tokens[verb - 1].text in _NOT_IN_SPEAKER | _BEFORE_ADJECTIVE:
        return False  # "were reported", "as reported by", "by alleged": no speaking subject
    return all(
        t.kind != "N" and t.text not in _NOT_IN_SPEAKER and not t.text.endswith("ing") for t in toks
    )


def _set_speaker(sent: Sentence, i: int, j: int, need_actor: bool = False) -> None:
    toks = sent.tokens
    while i < j and toks[i].text in ("the", "and", "of", "'s", ",", '"', "(", ")"):
        i += 1
    while j > i and toks[j - 1].text in ("the", "and", "of", ",", "'s", '"', "("):
        j -= 1
    if j <= i:
        return
    has_name = any(
        t.kind == "E"
        or (
            not need_actor
            and (sent.text[t.start : t.start + 1].isupper() or t.text in _SPEAKER_HEADS)
        )
        for t in toks[i:j]
    )
    if not has_name:
        return
    sent.speaker = sent.text[toks[i].start : toks[j - 1].end]
    sent.speaker_end = j
    sent.speaker_at = toks[i].start
    for t in toks[i:j]:
        if t.kind == "E" and sent.mentions[t.ref].is_actor:
            sent.speaker_code = sent.mentions[t.ref].code
            break


# Heads of a speaker phrase that refer back to an armed group: "the group said".
_GROUP_HEADS = frozenset(
    words(
        "group militia paramilitary paramilitaries movement rebels insurgents militants "
        "faction organisation organization"
    )
)


def resolve_group_speakers(sentences: Sequence[Sentence]) -> None:
    """ "The group said 150 of its fighters were killed": the speaker is the armed group
    named last before the phrase (in its sentence or the two before), so that "its
    fighters" are that group's and the figure joins that group's toll."""
    for n, sent in enumerate(sentences):
        if sent.speaker is None or sent.speaker_code is not None:
            continue
        head = sent.speaker.lower().rstrip(".,;:'\"").split()[-1:]
        if not head or head[0] not in _GROUP_HEADS:
            continue
        sent.speaker_code = _last_group(sentences, n, sent.speaker_at)


def _last_group(sentences: Sequence[Sentence], n: int, before: int) -> str | None:
    groups = group_codes()
    for sent in reversed(sentences[max(0, n - 2) : n + 1]):
        for m in reversed(sent.mentions):
            if m.end <= before and m.is_actor and (m.kind == "group" or m.code in groups):
                return m.code
    return None
