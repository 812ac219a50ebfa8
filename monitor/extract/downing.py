"""Downings: a drone, aircraft, helicopter or missile shot down or intercepted, and by whom.

The asset is the object of the downing verb: after it in the active voice ("shot down an
Armenian drone"), before it in the passive ("a helicopter was shot down by a drone"), so the
weapon that did the shooting is never taken for the asset. A definite "the aircraft" after an
earlier downing refers back to it and adds nothing; with none before, "it" and "the drone" take
the asset and its owner from the sentence before ("A Turkish drone crossed the border. Armenia
said it shot it down"). The owner's denial, or another cause it gives for the loss (a
technical malfunction), is read with the words of `data/downing_words.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.events import Asset, Downing, Fact
from monitor.extract import lexicon
from monitor.extract.analysis import Sentence, words
from monitor.watches import Watch

# Stems every downing verb starts with (the passage-level prefilter, see normalize.py).
TRIGGERS = words("down intercept destroy")

_TRIGGER = re.compile(
    r"\b(?:shot down|shoot(?:s|ing)? down|shot (?P<pro>it|them|the \w+|(?:an? )?\w+) down|downed|"
    r"downing(?: of)?|brought down|bring down|intercept(?:ed|s|ing|ion|ions)?|destroyed|"
    r"destroy(?:s|ing)?)\b",
    re.IGNORECASE,
)
_PASSIVE_BEFORE = re.compile(
    r"\b(?:was|were|been|being|is|are|be|get|got)\s+(?:\w+\s+)?$",
    re.IGNORECASE,
)
# "aircraft that Ukraine claims to have shot down": a relative clause puts the object first.
_RELATIVE_BEFORE = re.compile(r"\b(?:that|which)\b[^.;,]{0,45}$", re.IGNORECASE)
_ASSETS: tuple[tuple[Asset, str], ...] = (
    (
        "drone",
        r"drones?|UAVs?|unmanned aerial vehicles?|unmanned aircraft|quadcopters?|"
        r"Bayraktars?|TB2s?|Shaheds?|Gerans?|Orlans?|Lancets?|Hermes(?: \d+)?|Herons?|"
        r"Reapers?|Predators?|MQ-\d+\w*|loitering munitions?",
    ),
    ("helicopter", r"helicopters?|choppers?|gunships?|Mi-\d+\w*|Ka-\d+\w*|Apaches?|Black Hawks?"),
    (
        "missile",
        r"(?:ballistic |cruise |surface-to-air |anti-ship )?missiles?|rockets?|"
        r"projectiles?",
    ),
    (
        "aircraft",
        r"aircraft|airplanes?|planes?|warplanes?|jets?|fighter-bombers?|bombers?|"
        r"Su-\d+\w*|SU-\d+\w*|Sukhoi(?:-\d+)?\w*|MiG-?\d*\w*|F-\d+\w*|A-50\w*|Il-\d+\w*|"
        r"Tu-\d+\w*|An-\d+\w*|Antonovs?(?:-\d+\w*)?|Cessna(?: \d+)?|Alpha Jets?|Tornados?|"
        r"Mirages?|Rafales?|airliners?|"
        r"fighters?(?= of| from)|(?<=Air Force )fighters?",
    ),
)
_ASSET = re.compile(
    "|".join(f"(?P<{name}>\\b(?:{pat})\\b)" for name, pat in _ASSETS), re.IGNORECASE
)
_STOP = re.compile(r"[.;:]|\b(?:with|using|by|after|while|but|and claimed|rather)\b", re.IGNORECASE)
_WORDS = lexicon.words_file("downing_words.yaml")
_CAUSE = (
    lexicon.word_pattern(_WORDS["cause_words"])
    + "|"
    + lexicon.word_pattern(_WORDS["cause_qualifiers"])[:-2]
    + r" "
    + lexicon.noun_pattern(_WORDS["cause_nouns"])[2:]
    + "|"
    + lexicon.verb_pattern(_WORDS["cause_verbs"])
)
_DENY_VERBS = lexicon.verb_pattern(_WORDS["denial_verbs"])
# The owner's dispute: a denial, or another cause given for the loss (CONVENTIONS.md).
_DENIAL = re.compile(
    "|".join((_DENY_VERBS, lexicon.word_pattern(_WORDS["denial_words"]), _CAUSE)), re.IGNORECASE
)
_DENY_VERB = re.compile(_DENY_VERBS, re.IGNORECASE)


def _stems() -> list[str]:
    """Trigger stems of the denial words: each single word, the longest word of each phrase
    ("malfunction", "failure" of "engine failure"), the cause qualifiers and every verb form."""
    out = {
        max(p.split(), key=len).lower()
        for key in ("denial_words", "cause_words", "cause_qualifiers")
        for p in _WORDS[key]
    }
    out |= {
        f
        for lemma in _WORDS["denial_verbs"] + _WORDS["cause_verbs"]
        for f in lexicon.verb_forms(lemma)
    }
    return sorted(out)


# Stems of the denials that `denied_by_owner` reads in the sentences after a downing.
DENIAL_TRIGGERS = _stems()
_OWNER_GENERIC = re.compile(
    r"\b(?:the|its) (?:military|army|armed forces|government|air force|defen[cs]e ministry)\b|"
    r"\bthe country['’]s armed forces\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DowningHit:
    asset: Asset
    owner: str | None
    claimed_by: str | None
    count: int
    sentence: Sentence
    definite: bool
    pattern: str


def _asset_kind(m: re.Match[str]) -> Asset:
    return next(name for name, _ in _ASSETS if m.group(name))


def _object_after(s: str, pos: int) -> list[re.Match[str]]:
    stop = _STOP.search(s, pos, pos + 110)  # past the 90 characters read, no stop matters
    end = min(stop.start() if stop else len(s), pos + 90)
    found: list[re.Match[str]] = []
    for m in _ASSET.finditer(s, pos, end):
        if found and not re.fullmatch(
            r"[\s\w\"“”'-]*\band\b[\s\w\"“”'-]*|[\s\"“”'-]*", s[found[-1].end() : m.start()]
        ):
            break
        if found and _asset_kind(m) == _asset_kind(found[-1]) and m.start() - found[-1].end() < 3:
            found[-1] = m  # "aircraft ... fighter jet": one noun phrase
            continue
        found.append(m)
        if len(found) >= 3:
            break
    return _one_phrase(s, found)


def _one_phrase(s: str, found: list[re.Match[str]]) -> list[re.Match[str]]:
    """Merge assets of one noun phrase ("MQ-9 aircraft", "Su-25 jet"), keeping the first kind
    that is more specific than plain "aircraft"."""
    out: list[re.Match[str]] = []
    for m in found:
        if out and not re.search(r"\band\b|,", s[out[-1].end() : m.start()]):
            if _asset_kind(out[-1]) == "aircraft" and _asset_kind(m) != "aircraft":
                out[-1] = m
            continue
        out.append(m)
    return out


def _object_before(s: str, pos: int, lo: int) -> list[re.Match[str]]:
    found = [m for m in _ASSET.finditer(s, max(lo, pos - 110), pos)]
    if not found:
        return []
    last = found[-1]
    group = [last]
    for m in reversed(found[:-1]):
        gap = s[m.end() : group[0].start()]
        if re.fullmatch(r"[^.;]{0,60}\band\b[^.;]{0,30}", gap) and not re.search(
            r"\b(?:by|with|from)\b", gap
        ):
            group.insert(0, m)
        elif len(gap.strip()) < 3:
            continue
        else:
            break
    return _one_phrase(s, group)


def _count_before(sent: Sentence, pos: int) -> int | None:
    """The nearest count right before the asset phrase: "five Indian warplanes", "some 20
    drones", "98 drones and six missiles" (six for the missiles)."""
    for q in reversed(sent.quantities):
        if q.end <= pos and pos - q.end <= 40 and q.value is not None and q.value < 1000:
            between = sent.text[q.end : pos]
            if not re.search(r"[.;,]|\b(?:of|in|on|at)\b", between):
                return q.value
    return None


def _mention_code_in(sent: Sentence, lo: int, hi: int) -> str | None:
    for i, m in enumerate(sent.mentions):
        if lo <= m.start and m.end <= hi and m.is_actor and i not in sent.location:
            return m.code
    return None


def _owner(sent: Sentence, asset: re.Match[str], floor: int) -> str | None:
    """Whose asset: a name in its noun phrase ("an Armenian drone"), else one after it
    ("drones launched by the RSF"). The phrase never reaches back past `floor`, the end of
    the downing verb when the asset is its object: the subject before the verb is the
    shooter ("the army intercepted three drones"), not the owner."""
    s = sent.text
    lo = max(sent.start, floor, asset.start() - 45)
    head = s[lo : asset.start()]
    cut = max(
        head.rfind(","),
        head.rfind(" by "),
        head.rfind(" the "),
        head.rfind(" a "),
        head.rfind(" an "),
        head.rfind("down "),
    )
    code = _mention_code_in(sent, lo + max(cut, 0), asset.end())
    if code:
        return code
    tail = s[asset.end() : min(sent.end, asset.end() + 50)]
    m = re.match(
        r"\s*(?:of|from|belonging to|launched by|fired by|operated by|launched from)"
        r"\s+(?:the\s+)?(?:its\s+)?",
        tail,
    )
    if m:
        if re.match(r"\s*(?:from|of)\s+its\b", tail):
            return _asserter(sent, asset.start())
        # From the start of the tail: a name may begin with the "the" just read past.
        return _mention_code_in(sent, asset.end(), asset.end() + m.end() + 40)
    return None


_ASSERT = re.compile(
    r"(?:['’]s)?\s*(?:(?:officials?|ministry|defen[cs]e|foreign|forces|army|military|"
    r"spokes(?:man|woman|person)|government|authorities|media|sources|has|have|had|also|on|"
    r"earlier|later|today|continued|to|that|which|who|the|\w+day)\s+){0,5}?"
    r"(?:said|says|say|claimed|claims|claiming|claim|announced|confirmed|confirming|reported|"
    r"alleged|alleging|allege|insisted|stated|declared|released)\b",
    re.IGNORECASE,
)


def _asserter(sent: Sentence, trigger_pos: int) -> str | None:
    """Who asserts the downing: an actor right before a claim verb ("Armenia claiming that",
    "the Azeri forces that confirmed the downing"), else the sentence's speaker."""
    for i in range(len(sent.mentions) - 1, -1, -1):
        m = sent.mentions[i]
        if m.end > trigger_pos or not m.is_actor or i in sent.location:
            continue
        verb = _ASSERT.match(sent.text, m.end)
        if verb and verb.end() <= trigger_pos:
            return m.code
    return sent.speaker_code


def _claimant(sent: Sentence, trigger_pos: int) -> str | None:
    found = _asserter(sent, trigger_pos)
    if found:
        return found
    best = None
    for i, m in enumerate(sent.mentions):
        if m.end <= trigger_pos and m.is_actor and i not in sent.location:
            owned = _QUALIFIES_ASSET.match(sent.text, m.end)
            if owned and owned.end() <= trigger_pos:
                continue  # "a Russian helicopter was shot down": the owner, not a claimant
            best = m.code
    return best


_QUALIFIES_ASSET = re.compile(r"\s+(?:[\w-]+\s+){0,2}?(?:" + _ASSET.pattern + ")", re.IGNORECASE)


def _assets_in(sent: Sentence) -> list[re.Match[str]]:
    """The assets a sentence names, in order (what "it" or "the drone" may refer back to)."""
    return list(_ASSET.finditer(sent.text, sent.start, sent.end))


_PRONOUN_OBJECT = re.compile(r"\s+(?:it|them)\b", re.IGNORECASE)
_PRONOUN_SUBJECT = re.compile(r"\b(?:it|they)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)


def read_sentence(sent: Sentence, previous: Sentence | None = None) -> list[DowningHit]:
    """Downings in one sentence; `previous` is the sentence before, where "it" or a definite
    "the drone" may have been named with its owner."""
    s = sent.text
    out: list[DowningHit] = []
    for t in _TRIGGER.finditer(s, sent.start, sent.end):
        before = s[max(sent.start, t.start() - 30) : t.start()]
        negation = re.search(
            r"\b(?:rather than|not|no|never|failed to|attempt(?:ed)? to)\s+(?:\S+\s+){0,3}$",
            before,
            re.IGNORECASE,
        )
        if negation:
            sent.note("downing.verb", "vetoed", f"{negation.group(0)}{t.group(0)}: negated")
            continue
        word = t.group(0).lower()
        # The auxiliary and at most one word before the verb: a short window is enough.
        lead = s[max(sent.start, t.start() - 60) : t.start()]
        passive = bool(_PASSIVE_BEFORE.search(lead)) or bool(t.group("pro"))
        if word.startswith("downing") or (word.startswith("intercept") and not passive):
            passive = False
        if (bool(t.group("pro")) and t.group("pro").lower() in ("it", "them")) or (
            passive and not word.startswith("downing")
        ):
            pattern = "downing.object-before-passive-verb"
            assets = _object_before(s, t.start(), sent.start)
        else:
            pattern = "downing.object-after-verb"
            object_first = word.startswith("intercept") or _RELATIVE_BEFORE.search(
                s, max(sent.start, t.start() - 50), t.start()
            )
            assets = _object_after(s, t.end())
            if not assets and object_first:
                pattern = "downing.object-before-verb"
                assets = _object_before(s, t.start(), sent.start)
        pronoun = (
            (bool(t.group("pro")) and t.group("pro").lower() in ("it", "them"))
            or (passive and bool(_PRONOUN_SUBJECT.search(lead)))
            or (not passive and bool(_PRONOUN_OBJECT.match(s, t.end())))
        )
        earlier: list[re.Match[str]] = []
        if not assets and pronoun and previous is not None:
            earlier = _assets_in(previous)[-1:]
            pattern = "downing.pronoun-refers-back"
        if not assets and not earlier:
            sent.note(pattern, "vetoed", f"{t.group(0)}: no drone, aircraft or missile")
            continue
        claimant = _claimant(sent, t.start())
        for a in earlier:
            assert previous is not None
            sent.note(pattern, "fired", f"{t.group(0)} / {a.group(0)} (the sentence before)")
            out.append(
                DowningHit(
                    _asset_kind(a),
                    _owner(previous, a, previous.start),
                    claimant,
                    _count_before(previous, a.start()) or 1,
                    sent,
                    False,
                    pattern,
                )
            )
        for a in assets:
            sent.note(pattern, "fired", f"{t.group(0)} / {a.group(0)}")
            count = _count_before(sent, a.start()) or 1
            head = s[max(sent.start, a.start() - 40) : a.start()].lower()
            definite = bool(re.search(r"\bthe\s+(?:\w+\s+){0,3}$", head))
            owner = _owner(sent, a, t.end() if a.start() >= t.end() else sent.start)
            if owner is None and definite and previous is not None:
                owner = _owner_earlier(previous, _asset_kind(a))
            out.append(
                DowningHit(
                    _asset_kind(a),
                    owner,
                    claimant,
                    count,
                    sent,
                    definite,
                    pattern,
                )
            )
    return _dedupe(out)


def _owner_earlier(previous: Sentence, kind: Asset) -> str | None:
    """The owner of "the drone" named in the sentence before: "A Turkish drone crossed the
    border. Armenia said it shot down the drone." """
    for a in reversed(_assets_in(previous)):
        if _asset_kind(a) == kind:
            return _owner(previous, a, previous.start) or _launcher(previous, a)
    return None


_LAUNCH = re.compile(
    r"\s*(?:['’]s\s+)?(?:\w+\s+){0,2}?" + lexicon.verb_pattern(_WORDS["launch_verbs"], ("VBD",)),
    re.IGNORECASE,
)


def _launcher(sent: Sentence, asset: re.Match[str]) -> str | None:
    """Who sent the asset: the actor right before a launching verb ahead of it ("Armenian
    forces launched a drone")."""
    for i in range(len(sent.mentions) - 1, -1, -1):
        m = sent.mentions[i]
        if m.end > asset.start() or not m.is_actor or i in sent.location:
            continue
        launch = _LAUNCH.match(sent.text, m.end)
        if launch and launch.end() <= asset.start():
            return m.code
    return None


def _dedupe(hits: list[DowningHit]) -> list[DowningHit]:
    seen: set[tuple[str, str | None, int]] = set()
    out: list[DowningHit] = []
    for h in hits:
        key = (h.asset, h.owner, h.count)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def denied_by_owner(
    sentences: Sequence[Sentence], index: int, owner: str | None, claimant: str | None
) -> bool:
    """Whether the owner disputes the downing in this or one of the next two sentences."""
    if owner is None or owner == claimant:
        return False
    for k, sent in enumerate(sentences[index : index + 3]):
        if not _DENIAL.search(sent.quote):
            continue
        if k and not _about_a_downing(sent.quote):
            continue  # "... denied the RSF claim that it bombed a market": another claim
        if sent.speaker_code == owner:
            return True
        codes = {m.code for m in sent.mentions}
        first = next((m.code for m in sent.mentions if m.is_actor), None)
        if owner in codes and (
            _DENY_VERB.search(sent.quote)
            or re.search(_CAUSE, sent.quote, re.IGNORECASE)
            or first == owner  # "Ukraine called the report a lie"
        ):
            return True
        if _OWNER_GENERIC.search(sent.quote) and (
            claimant is None or claimant not in codes or sent.speaker_code != claimant
        ):
            return True
    return False


# A later sentence's denial concerns the downing only when it speaks of one (an aircraft, a
# loss, a crash) or denies bare: "denied it", "dismissed the claim as propaganda".
_DOWNING_WORDS = re.compile(
    r"\b(?:down\w*|intercept\w*|lost|lose|losing|loss|losses|crash\w*|malfunction\w*|"
    r"technical|engine|accident\w*|wreck\w*|debris)\b",
    re.IGNORECASE,
)
_BARE_DENIAL = re.compile(
    r"\b(?:denied|denies|deny|dismissed|rejected|refuted)\s+(?:it|this|that|the\s+"
    r"(?:claims?|reports?|allegations?))\s*(?:$|[.,;:]|as\b|outright\b)",
    re.IGNORECASE,
)


# "the claim from Baku was false" refers back to the downing; "the claim that its jets bombed
# a market" says what it denies, and that is a downing only if it says so.
_CLAIM = r"\b(?:claims?|reports?|allegations?|assertions?)\b"
_CLAIM_REFERENCE = re.compile(_CLAIM + r"(?!\s+(?:that|of|about)\b)", re.IGNORECASE)
_CLAIM_CONTENT = re.compile(_CLAIM + r"\s+(?:that|of|about)\b", re.IGNORECASE)


def _about_a_downing(quote: str) -> bool:
    content = _CLAIM_CONTENT.search(quote)
    if content:
        return bool(_DOWNING_WORDS.search(quote, content.end()))
    return any(rx.search(quote) for rx in (_ASSET, _DOWNING_WORDS, _BARE_DENIAL, _CLAIM_REFERENCE))


class DowningReader:
    """Downings of one text: one per (asset, owner, claimant); a definite "the drone" after
    an earlier downing refers back to it. The owner's denial may come in the next sentences,
    which is why denial stems are among the triggers."""

    topic = "downing"
    triggers = TRIGGERS + DENIAL_TRIGGERS

    def facts(self, sentences: Sequence[Sentence], watch: Watch | None) -> list[Fact]:
        out: list[Fact] = []
        seen: set[tuple[str, str | None, str | None]] = set()
        for i, sent in enumerate(sentences):
            if self.topic not in sent.topics:
                continue
            for hit in read_sentence(sent, sentences[i - 1] if i else None):
                if hit.definite and out:
                    sent.note(hit.pattern, "vetoed", f"the {hit.asset}: refers to one before")
                    continue
                key = (hit.asset, hit.owner, hit.claimed_by)
                if key in seen:
                    sent.note(hit.pattern, "vetoed", f"{hit.asset}: the same downing again")
                    continue
                seen.add(key)
                denied = denied_by_owner(sentences, i, hit.owner, hit.claimed_by)
                if denied:
                    sent.note("downing.denied-by-owner", "fired", f"{hit.owner} {hit.asset}")
                out.append(
                    Downing(
                        **sent.provenance(hit.pattern),
                        stance="denied" if denied else "claimed" if hit.claimed_by else "reported",
                        asset=hit.asset,
                        owner=hit.owner,
                        claimed_by=hit.claimed_by,
                        denied=denied,
                        count=hit.count,
                    )
                )
        return out


READER = DowningReader()
