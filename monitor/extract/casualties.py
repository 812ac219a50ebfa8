"""Casualty reports: who was killed, wounded, missing or captured, how many, and how sure.

Each count in a sentence is read as a small noun phrase ("at least 84 servicemen", "dozens of
its soldiers", "46") and linked to an outcome by three rules, strongest first: an outcome noun
right after it ("14 dead", "10 civilian injuries"), an outcome verb right before it ("killed
10 militants", "injuring ten others"), or an outcome participle later in the same clause
("Nine civilians, including four women, were killed"). Totals, increments and earlier wars
are recognised from cue words around the count (see CONVENTIONS.md for their meaning).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from monitor.events import Casualties, Category, Fact, Outcome, Qualifier
from monitor.extract import lexicon
from monitor.extract.analysis import MONTHS, Sentence, Token, TokenKind, contains_any, words
from monitor.extract.gazetteer import trie_pattern
from monitor.watches import Watch

CIVILIAN: Final = "civilian"
MILITARY: Final = "military"
UNKNOWN: Final = "unknown"
# What a count's context says before it is settled: an outcome, "casualties" (deaths only
# when the text speaks of deaths), or "lumped" (killed and wounded in one figure: no report).
Reading = Outcome | Literal["casualties", "lumped"]

# People nouns by category, singular and plural (data/casualty_words.yaml, plurals generated).
_PLURAL_NOUNS: dict[str, Category] = lexicon.PEOPLE_PLURAL
_SINGULAR_NOUNS: dict[str, Category] = lexicon.PEOPLE_SINGULAR
# Nouns that carry their outcome: "bodies" are dead, "hostages" are captured.
_INHERENT: dict[str, Outcome] = {
    **dict.fromkeys(["bodies", "corpses", "body", "lives"], "killed"),
    **dict.fromkeys(
        ["hostages", "prisoners", "captives", "abductees", "pows", "detainees"], "captured"
    ),
}
_OUTCOME_WORDS: dict[str, Outcome] = {
    # Participles of killing verbs that need no particle ("slain", "beheaded"), every form of
    # a verb of dying, and the words that say death on their own.
    **dict.fromkeys(
        [f for f, ps in lexicon.KILL_PASSIVE.items() if () in ps]
        + sorted(lexicon.DEATH_ANY)
        + words("dead deceased lost fatally"),
        "killed",
    ),
    **dict.fromkeys(["wounded", "injured", "hurt"], "wounded"),
    "missing": "missing",
    **dict.fromkeys(
        words("captured abducted kidnapped detained hostage prisoner prisoners captive custody"),
        "captured",
    ),
}
_OUTCOME_NOUNS: dict[str, Reading] = {
    **dict.fromkeys(
        ["deaths", "death", "fatalities", "fatality", "dead", "killed", "bodies", "lives"], "killed"
    ),
    **dict.fromkeys(["injuries", "injured", "wounded"], "wounded"),
    "missing": "missing",
    **dict.fromkeys(["hostages", "prisoners", "captives", "abductees", "pows"], "captured"),
    "casualties": "casualties",
}
_VERBS_BEFORE: dict[str, Outcome] = {
    **dict.fromkeys(
        [f for f, ps in lexicon.KILL_ACTIVE.items() if () in ps]
        + words("dead lost losing lose loses neutralized neutralised neutralizing"),
        "killed",
    ),
    **dict.fromkeys(
        ["wounded", "wounding", "wound", "wounds", "injured", "injuring", "injure", "injures"],
        "wounded",
    ),
    **dict.fromkeys(
        words(
            "captured capturing capture captures abducted abducting abduct kidnapped kidnapping "
            "kidnap detained detaining detain"
        ),
        "captured",
    ),
}
_OF_NOUNS: dict[str, Outcome] = {
    **dict.fromkeys(
        ["deaths", "death", "bodies", "body", "lives", "killing", "killings", "remains", "corpses"],
        "killed",
    ),
    **dict.fromkeys(["abduction", "abductions", "kidnapping"], "captured"),
}
_AUX = frozenset(
    words(
        "were was have has had been be are is being reportedly also all both later allegedly "
        "reported believed feared confirmed thought presumed to remain remained remains still now "
        "since then subsequently eventually among those considered listed declared presumed "
        "officially initially"
    )
)
_CLAUSE_STOP = frozenset(
    [".", ";", ":", "but", "while", "whereas", "after", "before", "when", "as", "because"]
)
_FUNCTION = frozenset(
    words(
        "and or in on at by from with for to the a an that which who were was is are have has had "
        "been be said says told after before during when while as than into"
    )
)
_QUALIFIERS: tuple[tuple[tuple[str, ...], Qualifier], ...] = (
    (("at", "least"), "at_least"),
    (("more", "than"), "at_least"),
    (("upwards", "of"), "at_least"),
    (("in", "excess", "of"), "at_least"),
    (("no", "fewer", "than"), "at_least"),
    (("no", "less", "than"), "at_least"),
    (("over",), "at_least"),
    (("surpassed",), "at_least"),
    (("exceeded",), "at_least"),
    (("an", "estimated"), "about"),
    (("estimated",), "about"),
    (("about",), "about"),
    (("around",), "about"),
    (("some",), "about"),
    (("roughly",), "about"),
    (("nearly",), "about"),
    (("almost",), "about"),
    (("approximately",), "about"),
    (("close", "to"), "about"),
    (("up", "to"), "about"),
    (("as", "many", "as"), "about"),
)
_INCREMENT_BEFORE = (("another",), ("an", "additional"), ("additional",), ("a", "further"))
_UNIT_AFTER = frozenset(
    words(
        "percent % per km kilometres kilometers miles mile square sq metres meters feet tons "
        "tonnes kg kilograms pounds barrels hours hour days day weeks week months month years "
        "year minutes seconds dollars euros am pm a.m p.m"
    )
)

_TOTAL_BEFORE = re.compile(
    r"(?:toll|total|tally|number|figure|count)\b.{0,130}?\b(?:to|at|of|is|was|"
    r"reached|hit|surpassed|exceeded|passed|as|be|stands at|stood at|now) "
    r"(?:(?:at least|more than|over|about|some|around|nearly|almost|roughly|an estimated|"
    r"between) )?$"
)
_BRINGING = re.compile(r"\b(?:bringing|raising|pushing|taking) (?:it )?to $")
_TOTAL_OF = re.compile(r"\b(?:a total of|total of|in all|altogether) $")
_INCREASE = re.compile(
    r"\b(?:increased|rose|risen|grew|climbed|jumped|went up|gone up|increase|rise) by (N\d+)"
    r"(?: to| , (?:bringing|raising|taking) (?:the |its )?(?:total|toll|tally|number)"
    r"(?: \w+){0,4} to) (?:(?:at least|more than|over|about|some|nearly) )?(N\d+)"
)
_CUMULATIVE_CUES = re.compile(
    r"\b(?:since|so far|to date|in total|overall|as of|this year|this month|this week|"
    r"over the (?:past|last|previous)|in the (?:past|last)|has claimed|have claimed|"
    r"(?:days|weeks|months|years) of (?:fighting|clashes|conflict|war|violence|hostilities)|"
    r"death toll|total|cumulative|(?:war|conflict|fighting|insurgency|violence|hostilities|"
    r"offensive|invasion|clashes) (?:\w+ ){0,8}?(?:has|have) (?:so far )?(?:killed|left|"
    r"claimed))\b"
)
_HISTORICAL_CUES = re.compile(
    r"\b(?:last year|years ago|decades ago|(?:in|of|during) (?:the )?(?:late |early |mid )?"
    r"(?:(?:" + "|".join(sorted(MONTHS)) + r") )?N\d+(?: s)?|"
    r"previous war|earlier war|last war)\b"
)
_DECADE = re.compile(r"\b((?:19|20)\d0)s\b")
# "the 1988-1991 war", "the 2008 conflict": a war named by its years is an earlier one.
_WAR_YEARS = re.compile(
    r"\b(?:19|20)\d\d (?:- (?:19|20)\d\d )?(?:civil )?(?:war|conflict|genocide|insurgency)\b"
)
_LUMPED = re.compile(
    r"^(?:killed|dead|wounded|injured)(?: ,)? (?:and|or|,) (?:killed|dead|wounded|injured)"
)


@dataclass(slots=True)
class Report:
    """One casualty figure as read from one sentence (before passage-level merging)."""

    sentence: Sentence
    token: int
    outcome: Outcome
    count: int | None
    qualifier: Qualifier
    acled: int | None
    category: Category
    party: str | None
    cumulative: bool
    increment: int | None = None
    historical: bool = False
    subset: bool = False
    definite: bool = False  # "the victim": refers back to a figure given elsewhere
    claimed: bool = False
    pattern: str = ""  # the id of the pattern that read it ("casualties.outcome-before")
    place: str | None = None  # the city or region it is for ("in El Fasher")


# --- helpers over tokens ----------------------------------------------------------------------


def _text(sent: Sentence, i: int) -> str:
    return sent.tokens[i].text if 0 <= i < len(sent.tokens) else ""


def _ends_with(sent: Sentence, i: int, words: tuple[str, ...]) -> bool:
    """Whether the tokens ending just before index i spell `words`."""
    n = len(words)
    if i - n < 0 or sent.tokens[i - 1].text != words[-1]:
        return False  # the last word decides most calls: checked alone first
    return tuple(t.text for t in sent.tokens[i - n : i]) == words


def _qualifier(sent: Sentence, i: int) -> tuple[Qualifier, int]:
    """The qualifier before the count at token i, and the index where the phrase starts."""
    found: Qualifier = "exact"
    start = i
    for phrase, qual in _QUALIFIERS:
        if _ends_with(sent, i, phrase):
            found, start = qual, i - len(phrase)
            break
    if found != "exact":
        for phrase, qual in _QUALIFIERS:  # "at least some 1,000": the outer qualifier wins
            if qual == "at_least" and _ends_with(sent, start, phrase):
                return qual, start - len(phrase)
    if _text(sent, i - 1) == "between" and _text(sent, i + 1) in ("and", "to"):
        return "at_least", i - 1
    if (
        _text(sent, i + 1) in ("to", "-")
        and sent.tokens[min(i + 2, len(sent.tokens) - 1)].kind == "N"
    ):
        return "at_least", start
    return found, start


def _is_excluded_number(sent: Sentence, i: int) -> bool:
    """Dates, times, years and measurements are not counts of people."""
    tok = sent.tokens[i]
    q = sent.quantities[tok.ref]
    raw = sent.text[tok.start : tok.end]
    prev, nxt = _text(sent, i - 1), _text(sent, i + 1)
    if prev in MONTHS or nxt in MONTHS or nxt in _UNIT_AFTER or nxt == ":" or prev == ":":
        return True
    if prev in ("$", "€", "£", "no", "number", "no.", "page", "article", "resolution"):
        return True
    if q.vague is None and not q.is_word and re.fullmatch(r"(?:19|20)\d\d", raw):
        return _person_after(sent, i) is None
    return False


def _person_after(sent: Sentence, i: int) -> tuple[int, Category] | None:
    """The person noun heading the phrase after token i: (index, category), or None."""
    toks = sent.tokens
    free = 0
    single = toks[i].kind == "N" and sent.quantities[toks[i].ref].value == 1
    j = i + 1
    while j < len(toks) and j <= i + 12:
        t = toks[j]
        if t.kind == "E":
            m = sent.mentions[t.ref]
            if m.form == "people":
                return j, UNKNOWN
            j += 1
            continue
        if t.kind == "N":
            return None
        if t.kind == "P":
            if t.text in ("-", "'s", '"', "(", ")", "/", "&"):
                j += 1
                continue
            return None
        w = t.text
        if single and w in _SINGULAR_NOUNS:
            return j, _SINGULAR_NOUNS[w]
        if sent.text[t.start : t.start + 1].isupper() and w not in _PLURAL_NOUNS:
            j += 1
            continue
        if w in _PLURAL_NOUNS:
            if _text(sent, j + 1) in _PLURAL_NOUNS and _text(sent, j + 1) not in _FUNCTION:
                j += 1  # "police officers", "army officers": the last noun heads the phrase
                continue
            return j, _PLURAL_NOUNS[w]
        if w in ("of", "the", "its", "their", "his", "her", "our", "other", "more", "whom"):
            j += 1
            continue
        if w in _FUNCTION or w in _OUTCOME_WORDS or w in _OUTCOME_NOUNS or w in _AUX:
            return None
        object_of_killing = (
            (j == i + 1 or (j == i + 2 and toks[i + 1].text == "of"))
            and i > 0
            and toks[i - 1].text in lexicon.KILL_ACTIVE
            and _plural_people(w)
        )  # "gunmen killed 17 electricians", "killed scores of midwives"
        if not single and (object_of_killing or _unlisted_people(sent, j)):
            # "three surgeons were ...": people the lexicon does not list, by their ending
            return j, lexicon.unlisted_category(w)
        if not sent.text[t.start : t.start + 1].isupper():
            free += 1
        if free > 3:
            return None
        j += 1
    return None


def _category_in(sent: Sentence, i: int, j: int, default: Category) -> Category:
    words = {t.text for t in sent.tokens[i:j]}
    if "civilian" in words or "civilians" in words:
        return CIVILIAN
    if words & {"military", "army", "security", "police", "militia", "armed"}:
        return MILITARY
    return default


def _party_in(sent: Sentence, i: int, j: int) -> str | None:
    """The actor qualifying a noun phrase: "Armenian soldiers", "its servicemen"."""
    found: str | None = None
    for k in range(i, j + 1):
        t = sent.tokens[k] if k < len(sent.tokens) else None
        if t is None:
            break
        if t.kind == "E" and sent.mentions[t.ref].is_actor and t.ref not in sent.location:
            found = sent.mentions[t.ref].code
        elif t.text in ("its", "our", "their", "his") and found is None:
            found = sent.speaker_code
    return found


def _party_after(sent: Sentence, j: int) -> str | None:
    """An actor given after the noun: "of the Armenian Air Force", "on its side"."""
    toks = sent.tokens
    k = j + 1
    if k < len(toks) and toks[k].text in ("of", "from") and k + 1 < len(toks):
        k2 = k + 1 + (toks[k + 1].text == "the")
        if k2 < len(toks) and sent.is_actor_token(k2):
            return sent.mentions[toks[k2].ref].code
    m = re.search(r"\bon (?:the |its |their )?(?:(E\d+) )?(?:[\w-]+ )?(?:'s )?side\b", sent.sig)
    if m:
        if m.group(1):
            return sent.mentions[int(m.group(1)[1:])].code
        if re.match(r"on (?:its|their) side", m.group(0)):
            return sent.speaker_code
    return None


# --- outcome linking ----------------------------------------------------------------------------


def _outcome_direct(sent: Sentence, j: int) -> tuple[Reading, int] | None:
    """An outcome noun or participle right after the phrase ending at token j."""
    k = j + 1
    while _text(sent, k) in (
        '"',
        "'",
        "civilian",
        "military",
        "other",
        "more",
        "confirmed",
        "reported",
        "additional",
        "further",
        "new",
    ):
        k += 1
    if _text(sent, k) in _SINGULAR_NOUNS and _text(sent, k + 1) in _OUTCOME_NOUNS:
        k += 1  # "6 rebel fatalities", "two soldier deaths"
    w = _text(sent, k)
    if w in _OUTCOME_NOUNS:
        return _OUTCOME_NOUNS[w], k
    if w in ("killed", "died", "dead", "wounded", "injured", "missing"):
        return _OUTCOME_WORDS[w], k
    return None


def _outcome_before(sent: Sentence, start: int, end: int | None = None) -> Outcome | None:
    """An outcome verb right before the phrase: "killed at least 10", "deaths of four",
    "hacked two farmers to death" (the particle after the phrase ending at `end`)."""
    k = start - 1
    if (
        _text(sent, k) in ("were", "are")
        and _text(sent, k - 1) in ("victims", "dead", "killed", "deceased", "fatalities")
        and _text(sent, k - 3) == "among"
    ):
        return "killed"
    while k >= 0 and sent.tokens[k].text in (
        "also",
        "reportedly",
        "allegedly",
        "a",
        "total",
        "of",
        "the",
        "all",
    ):
        if sent.tokens[k].text == "of" and _text(sent, k - 1) in _OF_NOUNS:
            return _OF_NOUNS[_text(sent, k - 1)]
        if sent.tokens[k].text == "of" and _text(sent, k - 1) != "total":
            return None
        k -= 1
    w = _text(sent, k)
    if k >= 0 and _hypothetical(sent, k):
        return None
    if w in _VERBS_BEFORE:
        if w == "dead" and _text(sent, k - 1) != "shot":
            return None
        return _VERBS_BEFORE[w]
    texts = _texts(sent)
    if k >= 0 and lexicon.phrase_ending(texts, k, lexicon.KILL_ACTIVE):
        return "killed"  # "gunned down 5 villagers", "shot dead two policemen"
    for particle in lexicon.needs_particle(w, lexicon.KILL_ACTIVE):
        if end is not None and tuple(texts[end + 1 : end + 1 + len(particle)]) == particle:
            return "killed"  # "hacked two farmers to death"
    if w == "of" and _text(sent, k - 1) in _OF_NOUNS:
        return _OF_NOUNS[_text(sent, k - 1)]
    return None


def _outcome_forward(sent: Sentence, j: int, strict: bool) -> tuple[Outcome, int] | None:
    """An outcome participle later in the clause; `strict` allows only auxiliaries between."""
    toks = sent.tokens
    k = j + 1
    limit = min(len(toks), j + (6 if strict else 22))
    while k < limit:
        t = toks[k]
        w = t.text
        if w not in _OUTCOME_WORDS:
            phrase_end = lexicon.phrase_at(_texts(sent), k, lexicon.KILL_PASSIVE)
            if phrase_end is not None:  # "were gunned down", "was hacked to death"
                if _active_use(sent, k, phrase_end) or _hypothetical(sent, k):
                    return None
                return "killed", k
        if w in _OUTCOME_WORDS:
            if w == "lost" and _text(sent, k + 2) not in ("lives", "life"):
                return None
            if w != "lost" and _active_use(sent, k):
                return None
            if _hypothetical(sent, k):
                return None
            if w in ("hostage", "prisoner", "prisoners", "captive", "custody") and not (
                _text(sent, k - 1) in ("taken", "held", "into", "in", "as", "a", "took")
                or _text(sent, k - 2) in ("taken", "held", "took")
            ):
                return None
            return _OUTCOME_WORDS[w], k
        if w in _CLAUSE_STOP and not (w == "as" and _text(sent, k + 1) == "well"):
            return None
        if w == "shot" and _text(sent, k - 1) not in _AUX:
            return None
        if w in ("who", "whom", "which") and k > j + 1:
            return None  # "20 friends of a man who died": the clause is another noun's
        if w in ("went", "gone", "go") and _text(sent, k + 1) == "missing":
            k += 1  # "went missing"
            continue
        if w in _STOP_VERBS:
            return None
        if w == "(":
            close = next(
                (x for x in range(k + 1, min(k + 14, len(toks))) if toks[x].text == ")"), None
            )
            k = (close if close is not None else k) + 1
            continue
        if strict and w == "including":
            aux = next(
                (
                    x
                    for x in range(k + 1, min(k + 12, len(toks)))
                    if toks[x].text in ("were", "was", "are", "have", "had")
                ),
                None,
            )
            if aux is None:
                return None
            k = aux
            continue
        if strict:
            if w == ",":
                close = next(
                    (x for x in range(k + 1, min(k + 8, len(toks))) if toks[x].text == ","), None
                )
                k = (close if close is not None else k) + 1
                continue
            if w in _AUX or (t.kind == "P" and w in ('"', "'")):
                k += 1
                continue
            return None
        if t.kind == "N":
            prev = _text(sent, k - 1)
            if prev not in ("including", "among", "and", ",", "of", "some", "about", "least", "as"):
                return None
        if (
            t.kind == "W"
            and w.endswith("ed")
            and w not in _AUX
            and w
            not in (
                "armed",
                "based",
                "backed",
                "led",
                "linked",
                "affiliated",
                "aged",
                "alleged",
                "suspected",
                "unidentified",
                "reported",
                "stationed",
                "deployed",
                "named",
            )
        ):
            return None
        if w in ("said", "says", "told", "say", "fled", "are", "were") and k > j + 1:
            if w in ("are", "were"):
                k += 1
                continue
            return None
        k += 1
    return None


_STOP_VERBS = frozenset(
    words(
        "broke fled stole went came took threw ran gave told set sent began fought struck made "
        "kept brought left stormed opened fired arrested seized burnt raided attacked ambushed "
        "clashed targeted entered abandoned retreated looted torched"
    )
)
_OBJECT_START = frozenset(
    ["a", "an", "the", "his", "her", "their", "its", "one", "two", "both", "him", "them"]
)


def _active_use(sent: Sentence, k: int, after: int | None = None) -> bool:
    """ "Gunmen killed a civilian", "gunmen shot dead a civilian": the outcome verb has an
    object (at `after`, the token past the verb's particle), so the phrase before it is the
    perpetrator, not the victim."""
    w = sent.tokens[k].text
    if (w not in _VERBS_BEFORE and w not in lexicon.KILL_ACTIVE) or _text(sent, k - 1) in _AUX:
        return False
    after = k + 1 if after is None else after
    nxt = sent.tokens[after] if after < len(sent.tokens) else None
    return nxt is not None and (nxt.kind in ("N", "E") or nxt.text in _OBJECT_START)


_BASE_FORMS = frozenset(
    [f for f, ps in lexicon.KILL_ACTIVE.items() if f in lexicon.BASE_FORMS]
    + [f for f in lexicon.DEATH_ANY if f in lexicon.BASE_FORMS]
    + words("kill die wound injure kidnap abduct")
)
_MODALS = frozenset(words("could would might may can will shall should must cannot"))


def _hypothetical(sent: Sentence, k: int) -> bool:
    """ "Threatened to kill", "could have killed", "may die": a death that did not happen."""
    prev = _text(sent, k - 1)
    if prev in _MODALS or (prev == "to" and sent.tokens[k].text in _BASE_FORMS):
        return True
    return prev in ("have", "be", "not") and _text(sent, k - 2) in _MODALS


def _texts(sent: Sentence) -> list[str]:
    """The sentence's token texts, computed once (the lexicon matches phrases over them)."""
    texts = sent.memo.get("casualty_texts")
    if texts is None:
        texts = sent.memo["casualty_texts"] = [t.text for t in sent.tokens]
    return texts


def _is_casualties_death(sent: Sentence, context_death: bool) -> bool:
    """ "Casualties" reads as deaths only when the text speaks of deaths and not of wounds."""
    sig = sent.sig
    if re.search(r"\b(?:injur|wound|hurt)", sig):
        return False
    return context_death or bool(re.search(r"\b(?:death|dead|killed|died|fatalit)", sig))


# --- reading one count --------------------------------------------------------------------------


def _read_count(sent: Sentence, i: int, previous: Report | None, death_ctx: bool) -> Report | None:
    tok = sent.tokens[i]
    q = sent.quantities[tok.ref]
    figure = sent.text[tok.start : tok.end]
    if _is_excluded_number(sent, i):
        sent.note("casualties.not-a-count-of-people", "vetoed", figure)
        return None
    if _is_range_end(sent, i):
        sent.note("casualties.range-upper-bound", "vetoed", figure)
        return None
    qualifier, start = _qualifier(sent, i)
    if q.vague is not None:
        qualifier = "vague"
    if (
        qualifier == "at_least"
        and _text(sent, i + 1) in ("and", "to", "-")
        and i + 2 < len(sent.tokens)
        and sent.tokens[i + 2].kind == "N"
    ):
        i_phrase = i + 2  # "between 200 and 400 people": the phrase follows the upper bound
    else:
        i_phrase = i
    noun = _person_after(sent, i_phrase)
    end = noun[0] if noun else _name_run(sent, i_phrase)
    category = noun[1] if noun else UNKNOWN
    partitive = noun is not None and sent.words(i + 1, end + 1).startswith(
        ("of the ", "of them", "of those", "of these", "of whom")
    )
    subset = (
        _text(sent, start - 1) in ("including", "among", "(")
        or _ends_with(sent, start, ("among", "them"))
        or _ends_with(sent, start, ("of", "whom"))
        or (partitive and previous is not None)
    )
    coordinated = _text(sent, start - 1) in ("and", "alongside", "with") or _ends_with(
        sent, start, ("as", "well", "as")
    )
    if coordinated and previous is not None and previous.subset and previous.sentence is sent:
        subset = True  # "including one policeman and four army personnel"
    outcome, pattern = _link_outcome(sent, i, start, end, noun)
    if outcome == "lumped":
        sent.note(pattern, "vetoed", figure)
        return None
    if (
        outcome is None
        and (subset or coordinated)
        and previous is not None
        and previous.sentence is sent
        and _bare_count(sent, end)
        and not (coordinated and _text(sent, start - 1) == "with")
    ):
        outcome, pattern = previous.outcome, "casualties.shares-outcome"
    if outcome is None:
        sent.note(pattern, "vetoed", figure)
        return None
    if outcome == "casualties":
        if not _is_casualties_death(sent, death_ctx):
            sent.note("casualties.casualties-not-deaths", "vetoed", figure)
            return None
        outcome = "killed"
    sent.note(pattern, "fired", figure)
    category = _category_in(sent, start, end + 2, category)
    party = _party_in(sent, start, end) or _party_after(sent, end)
    generic = noun is None or sent.tokens[end].text in ("others", "people", "them", "whom")
    if generic and previous is not None and (noun is None or category == UNKNOWN):
        if category == UNKNOWN and (noun is None or sent.tokens[end].text in ("others", "them")):
            category = previous.category
        party = party or previous.party
    if _text(sent, start - 1) in ("lost", "losing") and party is None:
        party = _subject_party(sent, start - 1)
    increment = any(_ends_with(sent, start, w) for w in _INCREMENT_BEFORE) or (
        _text(sent, i + 1) == "more"
    )
    return Report(
        sentence=sent,
        token=i,
        outcome=outcome,
        count=q.value,
        qualifier=qualifier,
        acled=q.acled,
        category=category,
        party=party,
        cumulative=False,
        increment=q.value if increment else None,
        subset=subset,
        # "One was burnt alive and the other stoned": a lone "one" opening the sentence
        # is one of the people counted before, not one more
        definite=noun is None and i == 0 and q.value == 1 and end == i,
        pattern=pattern,
    )


_LUMPED_ID = "casualties.killed-and-wounded-lumped"


def _link_outcome(
    sent: Sentence, i: int, start: int, end: int, noun: tuple[int, Category] | None
) -> tuple[Reading | None, str]:
    """The outcome of the count at token i, strongest cue first ("lumped" for "killed and
    wounded" read together), and the id of the pattern that decided it (or of the check
    that found none)."""
    before = _outcome_before(sent, start, end)
    if before is not None and _text(sent, start - 1) in ("of", "the"):
        return before, "casualties.outcome-noun-of"  # "the bodies of the eleven missing soldiers"
    direct = _outcome_direct(sent, end)
    if direct:
        if _LUMPED.match(sent.words(direct[1], direct[1] + 3)):
            return "lumped", _LUMPED_ID
        return direct[0], "casualties.outcome-after"
    if before is not None:
        if noun is None and _counts_a_thing(sent, end):
            return None, "casualties.count-of-things"  # "killed 15 livestock"
        return before, "casualties.outcome-before"
    if noun is None and _text(sent, i + 1) == "of":
        return None, "casualties.part-of-a-thing"  # "one of the attackers' cars"
    if _text(sent, start - 1) == "by":
        # "abducted by four men and stabbed to death": the agents, not victims
        return None, "casualties.agents-not-victims"
    fwd = _outcome_forward(sent, end, strict=noun is None)
    if fwd:
        if _LUMPED.match(sent.words(fwd[1], fwd[1] + 3)):
            return "lumped", _LUMPED_ID
        return fwd[0], "casualties.outcome-later"
    if noun and sent.tokens[noun[0]].text in _INHERENT:
        return _INHERENT[sent.tokens[noun[0]].text], "casualties.inherent-noun"
    return None, "casualties.no-outcome"


def _name_run(sent: Sentence, i: int) -> int:
    """The end of a short run of names after a bare count ("One Mayi Mayi", "3 Fulani"), so
    that "was killed" after it still reads as the count's outcome."""
    j = i
    for k in range(i + 1, min(i + 4, len(sent.tokens))):
        t = sent.tokens[k]
        raw = sent.text[t.start : t.start + 1]
        if t.kind == "E" or (t.kind == "W" and raw.isupper() and t.text not in _FUNCTION):
            j = k
        else:
            break
    return j


def _counts_a_thing(sent: Sentence, end: int) -> bool:
    """Whether a lower-case noun that names no people follows the count ("15 livestock")."""
    if end + 1 >= len(sent.tokens) or _bare_count(sent, end):
        return False
    t = sent.tokens[end + 1]
    raw = sent.text[t.start : t.start + 1]
    if _plural_people(t.text):
        return False  # "killed 12 electricians": people the lexicon does not list
    return t.kind == "W" and raw.islower() and t.text not in _AUX and t.text not in _FUNCTION


def _bare_count(sent: Sentence, end: int) -> bool:
    """Whether a count stands alone, so that it shares the outcome of the phrase it is
    coordinated with ("14 killed and 46 wounded", "and 3 from Al Tilan")."""
    nxt = _text(sent, end + 1)
    return nxt in ("", ",", ".", ";", "and", "others", "from", "in", "on", "at", ")")


def _is_range_end(sent: Sentence, i: int) -> bool:
    """The upper bound of "between 2 and 4" or "2 to 4" is not a report of its own."""
    prev = _text(sent, i - 1)
    return (
        prev in ("and", "to", "-")
        and i >= 2
        and sent.tokens[i - 2].kind == "N"
        and (prev != "and" or _text(sent, i - 3) == "between")
    )


def _subject_party(sent: Sentence, verb: int) -> str | None:
    """The actor that "lost" soldiers: the subject before the verb, or the speaker for "it"."""
    for k in range(verb - 1, max(-1, verb - 6), -1):
        t = sent.tokens[k]
        if t.kind == "E" and sent.mentions[t.ref].is_actor:
            return sent.mentions[t.ref].code
        if t.text in ("it", "they", "we"):
            return sent.speaker_code
    return None


_PASSIVE_OUT: dict[Outcome, str] = {
    "killed": r"(?:(?:\w+ and (?:later )?)?(?:"
    + lexicon.alternation(lexicon.KILL_PASSIVE)
    + r"|shot and died|found (?:dead|killed)|"
    r"fatally (?:shot|wounded|injured|stabbed|assaulted|attacked)|among (?:those|the) "
    r"(?:killed|dead)))",
    "wounded": r"(?:wounded|injured|hurt|shot and (?:wounded|injured))",
    "captured": r"(?:abducted|kidnapped|detained|captured|taken (?:hostage|captive|prisoner))",
    "missing": r"(?:missing|reported missing)",
}
_ACTIVE_OUT: dict[Outcome, str] = {
    "killed": r"(?:(?:\w+ and )?(?:"
    + lexicon.alternation(lexicon.KILL_FINITE)
    + ")"
    + r"|fatally (?:shot|stabbed|wounded|injured))",
    "wounded": r"(?:wounded|wounding|injured|injuring)",
    "captured": r"(?:kidnapped|kidnapping|abducted|abducting|captured|capturing)",
}
_ADVERBS = r"(?:(?:reportedly|allegedly|also|later|then|subsequently|eventually|initially) )*"
_NP = r"(?P<np>(?:\S+ ){0,9}?)"
# (outcome, pattern id, pattern) for one person (or a pair) named without a count.
_SINGLE_PATTERNS: tuple[tuple[Outcome, str, re.Pattern[str]], ...] = tuple(
    [
        (
            out,
            "casualties.one-person-passive",
            re.compile(
                rf"\b(?P<det>a|an|the|another) {_NP}(?:, (?:\S+ ){{1,5}}?, )?"
                rf"(?:who |that )?(?:was|has been|"
                rf"had been|is|got|were) {_ADVERBS}{pat}\b"
            ),
        )
        for out, pat in _PASSIVE_OUT.items()
    ]
    + [
        (
            "killed",
            "casualties.one-person-died",
            re.compile(
                rf"\b(?P<det>a|an|the|another) {_NP}(?:who |that )?{_ADVERBS}"
                r"(?:died|dies|succumbed|was dead)\b"
            ),
        ),
        (  # "a man was shot in the head and later died", "was injured ... and died"
            "killed",
            "casualties.hurt-then-died",
            re.compile(
                rf"\b(?P<det>a|an|the|another) {_NP}(?:who |that )?(?:was|had been) "
                rf"{_ADVERBS}(?:shot|stabbed|wounded|injured|hit|beaten)\b(?: \S+){{0,6}}? "
                r"and (?:later |subsequently |eventually )?(?:died|succumbed)\b"
            ),
        ),
        (  # "a man's body was found"
            "killed",
            "casualties.body-found",
            re.compile(
                r"\b(?P<det>a|an|the|another) (?P<np>(?:\S+ ){0,3}?)'s (?:body|corpse|remains) "
                r"(?:was|were|has been) (?:found|recovered|discovered)\b"
            ),
        ),
        (
            "killed",
            "casualties.death-of-one-person",
            re.compile(
                r"\b(?:death|killing|murder|assassination|lynching) of "
                r"(?P<det>a|an|the|another) (?P<np>)"
            ),
        ),
        (
            "killed",
            "casualties.killed-him-or-her",
            re.compile(r"\b(?:killing|killed|shot) (?P<det>him|her)(?: dead)?\b(?P<np>)"),
        ),
        (
            "killed",
            "casualties.body-of-one-person",
            re.compile(r"\b(?:body|corpse|remains) of (?P<det>a|an|the|another) (?P<np>)"),
        ),
        (
            "killed",
            "casualties.one-person-to-death",
            re.compile(
                r"\b(?:stabbed|beat|beaten|shot|hacked|burned|burnt|stoned|tortured|"
                r"clubbed|strangled) (?P<det>a|an|the|another) "
                r"(?P<np>(?:\S+ ){0,5}?)to death\b"
            ),
        ),
    ]
    + [
        (
            out,
            "casualties.one-person-object",
            re.compile(rf"\b{pat} (?P<det>a|an|the|another) (?P<np>)"),
        )
        for out, pat in _ACTIVE_OUT.items()
    ]
)
# Text that every match of a pattern above contains, by pattern id: a substring test spares
# the costly scan (which tries each determiner with up to ten words after it).
_SINGLE_NEEDS: dict[str, tuple[str, ...]] = {
    "casualties.one-person-died": ("died", "dies", "succumbed", "was dead"),
    "casualties.hurt-then-died": ("died", "succumbed"),
    "casualties.body-found": ("'s body", "'s corpse", "'s remains"),
    "casualties.death-of-one-person": (
        "death of",
        "killing of",
        "murder of",
        "assassination of",
        "lynching of",
    ),
    "casualties.killed-him-or-her": ("killing h", "killed h", "shot h"),
    "casualties.body-of-one-person": ("body of", "corpse of", "remains of"),
    "casualties.one-person-to-death": ("to death",),
}
# The tail of each outcome's one-person-passive pattern ("was later killed"): where it is
# not found, the whole pattern cannot match.
_PASSIVE_TAILS: dict[Outcome, re.Pattern[str]] = {
    out: re.compile(rf"(?:was|been|is|got|were) {_ADVERBS}{pat}\b")
    for out, pat in _PASSIVE_OUT.items()
}
# A word that every pattern of an outcome above contains (checked first: one cheap scan).
_SINGLE_CUES = re.compile(
    r"\b(?:(?P<killed>dead|death|shot (?:him|her)\b|fatal|body|corpse|remains|"
    + trie_pattern(lexicon.trigger_words())
    + r")|"
    r"(?P<wounded>wound|injur|hurt)|(?P<captured>abduct|kidnap|detain|captur|taken)|"
    r"(?P<missing>missing))"
)
_NP_STOP = frozenset(
    words(
        ", . ; : and or but was were is are has had have who that which by with after while when "
        "during as than"
    )
)
_NOT_PERSON = frozenset(
    words(
        "family group number total convoy vehicle car truck bus house home building checkpoint "
        "position base post village town city camp patrol attack explosion drone plane aircraft "
        "helicopter tank mine bomb device shell rocket missile ship boat vessel clash clashes "
        "fight fighting battle operation raid protest demonstration mob crowd series few handful "
        "lot couple dozen"
    )
)


def _singulars(sent: Sentence) -> list[Report]:
    """ "A civilian was killed", "killed a drug suspect", "the pilot was detained", "died":
    one person, whatever the noun (the class of people is open)."""
    out: list[Report] = []
    taken: set[int] = set()
    outcomes = {m.lastgroup for m in _SINGLE_CUES.finditer(sent.sig)}
    sig = sent.sig
    for outcome, pattern, rx in _SINGLE_PATTERNS:
        if outcome not in outcomes:
            continue  # each pattern needs a word of its outcome: skip the costly scan
        needs = _SINGLE_NEEDS.get(pattern)
        if needs is not None and not contains_any(sig, needs):
            continue
        if pattern == "casualties.one-person-passive" and not _PASSIVE_TAILS[outcome].search(sig):
            continue
        inside = -1  # the end of the last phrase read as people: its inner "a" is no one new
        for m in _matches(rx, sent.sig):
            det_tok = sent.token_at(m.start("det"))
            if det_tok in taken or det_tok < inside:
                continue
            np_tokens = sent.tokens[det_tok + 1 : det_tok + 1 + len(m.group("np").split())]
            if m.group("np") == "":
                np_tokens = _np_after(sent, det_tok + 1)
            people = _people_count(np_tokens)
            phrase = sent.raw(det_tok, det_tok + 1 + len(np_tokens))
            if people == 0:
                sent.note(pattern, "vetoed", f"{phrase}: not a person")
                continue
            sent.note(pattern, "fired", phrase)
            taken.add(det_tok)
            inside = sent.token_at(m.end() - 1)
            det = m.group("det")
            heads = [t.text for t in np_tokens if t.kind == "W"]
            category: Category = next(
                (_SINGULAR_NOUNS[w] for w in heads if w in _SINGULAR_NOUNS),
                lexicon.unlisted_category(heads[-1]) if heads else UNKNOWN,
            )
            # "the police chief", "an army officer": the force the person serves in decides.
            category = _category_in(sent, det_tok + 1, det_tok + 1 + len(np_tokens), category)
            out.append(
                Report(
                    sentence=sent,
                    token=det_tok,
                    outcome=outcome,
                    count=people,
                    qualifier="exact",
                    acled=None,
                    category=category,
                    party=_party_in(sent, det_tok, det_tok + len(np_tokens)),
                    cumulative=False,
                    subset=_text(sent, det_tok - 1) in ("including",)
                    or (
                        _text(sent, det_tok - 1) == "and"
                        and "including" in sent.words(det_tok - 6, det_tok)
                    ),
                    # "the mayor along with three guards": a person of its own, not a
                    # reference back to a figure given elsewhere
                    definite=det in ("the", "him", "her")
                    and len(_head(np_tokens)) == len(np_tokens),
                    pattern=pattern,
                )
            )
    return out


def _matches(rx: re.Pattern[str], sig: str) -> list[re.Match[str]]:
    """Every match, each searched from just past the previous one's determiner: a phrase
    that names no person ("an intense shoot-out broke out and a suspect") must not hide the
    one inside it ("a suspect was shot")."""
    out: list[re.Match[str]] = []
    pos = 0
    while (m := rx.search(sig, pos)) is not None:
        out.append(m)
        pos = m.start("det") + 1
        # Inside a phrase that names a person the later determiners are its own ("a
        # supporter of a party member"): those are skipped by the caller (see `inside`).
    return out


def _np_after(sent: Sentence, k: int) -> list[Token]:
    out: list[Token] = []
    while k < len(sent.tokens) and len(out) < 6:
        t = sent.tokens[k]
        if t.text == "and" and _text(sent, k + 1) in _PAIR_SECOND and out:
            out.append(t)  # "a commander and his son": a pair, read by _people_count
            k += 1
            continue
        if t.text in _NP_STOP or t.text in ("in", "on", "at", "near", "from", "of", "to", "for"):
            break
        out.append(t)
        k += 1
    return out


_PAIR_SECOND = frozenset(words("his her their a an another the its"))


def _people_count(np_tokens: list[Token]) -> int:
    """How many people a phrase after "a"/"the" names: one ("a farmer"), two when two
    people nouns are joined ("a farmer and his brother"), else none. Only the head counts:
    "the mayor of a town", "the chief, his nephews and ...", "a commander along with three
    of his guards" name one person here (the others are counts of their own)."""
    np_tokens = _head(np_tokens)
    texts = [t.text for t in np_tokens]
    if texts.count("and") == 1:
        k = texts.index("and")
        first, second = texts[:k], texts[k + 2 :]
        if (
            first
            and second
            and texts[k + 1] in _PAIR_SECOND
            and _person_noun(first[-1], agentive=True)
            and _person_noun(second[-1], agentive=True)
            and all(w not in _NP_STOP for w in first + second)
        ):
            return 2
    return 1 if _single_person(np_tokens) else 0


def _head(np_tokens: list[Token]) -> list[Token]:
    """The phrase up to where it leaves its head person noun: a comma, "along with",
    "together with", or "of" right after it."""
    for k, t in enumerate(np_tokens):
        w = t.text
        nxt = np_tokens[k + 1].text if k + 1 < len(np_tokens) else ""
        if (
            k
            and (w in (",", "of") or (w in ("along", "together") and nxt == "with"))
            and _person_noun(np_tokens[k - 1].text, agentive=True)
        ):
            return np_tokens[:k]
    return np_tokens


def _person_noun(word: str, agentive: bool = False) -> bool:
    """A singular noun of a person; with `agentive`, also any agent noun ("commissioner",
    "governor", "economist"), for places where only a person can stand."""
    if word in _SINGULAR_NOUNS:
        return True
    return agentive and len(word) > 5 and word.endswith(_AGENT_SUFFIXES)


_AGENT_SUFFIXES = ("er", "or", "ist", "ian", "man", "ant", "ent")


def _unlisted_people(sent: Sentence, j: int) -> bool:
    """A plural noun the lexicon lacks (token j), right before a verb that people undergo
    ("46 surgeons were killed", "9 midwives died", "12 electricians killed", "went
    missing") or before another victim phrase it is coordinated with ("20 electricians and
    a child were ...")."""
    nxt, after = _text(sent, j + 1), _text(sent, j + 2)
    verb = nxt in _AUX or nxt in _OUTCOME_WORDS or nxt in lexicon.KILL_ACTIVE
    went = nxt == "went" and after == "missing"
    coordinated = nxt == "and" and (
        after in ("a", "an", "the", "his", "her", "their")
        or (j + 2 < len(sent.tokens) and sent.tokens[j + 2].kind == "N")
    )
    return (verb or went or coordinated) and _plural_people(sent.tokens[j].text)


def _plural_people(word: str) -> bool:
    """A plural that may name people: not an animal or a thing (`not_people` in
    data/casualty_words.yaml, or a thing noun the reader knows)."""
    plural = word.endswith("men") or (len(word) > 3 and word.endswith("s"))
    return plural and word not in lexicon.NOT_PEOPLE and word.rstrip("s") not in _NOT_PERSON


def _single_person(np_tokens: list[Token]) -> bool:
    """Whether a phrase after "a"/"the" can name one person (no count, no plural people,
    no object such as "a vehicle")."""
    if not np_tokens and np_tokens is not None:
        return True
    for t in np_tokens:
        if t.kind == "N" or t.text in _NP_STOP:
            return False
        if t.text in _PLURAL_NOUNS and t.text not in ("police", "militia", "army", "crew"):
            return False
    words_only = [t for t in np_tokens if t.kind == "W"]
    return not (words_only and words_only[-1].text in _NOT_PERSON)


_BOTH_ID = "casualties.both-people"


def _both(sent: Sentence) -> list[Report]:
    """ "Both victims died", "both pilots were captured": two people."""
    out: list[Report] = []
    for i, t in enumerate(sent.tokens):
        if t.text != "both":
            continue
        noun = _person_after(sent, i)
        if noun is None or sent.tokens[noun[0]].text in ("sides", "countries"):
            continue
        fwd = _outcome_forward(sent, noun[0], strict=False)
        if fwd is None:
            continue
        sent.note(_BOTH_ID, "fired", sent.raw(i, noun[0] + 1))
        party = _party_in(sent, i, noun[0])
        out.append(
            Report(sent, i, fwd[0], 2, "exact", None, noun[1], party, False, pattern=_BOTH_ID)
        )
    return out


# --- totals, increments, earlier wars ---------------------------------------------------------


_INCREASE_ID = "casualties.increase-to-total"
_TOTAL_ID = "casualties.toll-total"


def _increase_reports(sent: Sentence, death_ctx: bool) -> tuple[list[Report], set[int]]:
    """ "The number killed increased by 36, bringing the total to 963": one total with its
    increment riding on it."""
    out: list[Report] = []
    used: set[int] = set()
    for m in _INCREASE.finditer(sent.sig):
        inc_ref, tot_ref = int(m.group(1)[1:]), int(m.group(2)[1:])
        inc_tok = _token_of_ref(sent, "N", inc_ref)
        tot_tok = _token_of_ref(sent, "N", tot_ref)
        if inc_tok is None or tot_tok is None:
            continue
        outcome = _sentence_outcome(sent, death_ctx)
        if outcome is None:
            sent.note(_INCREASE_ID, "vetoed", f"{sent.raw_match(m)}: no outcome in the sentence")
            continue
        sent.note(_INCREASE_ID, "fired", sent.raw_match(m))
        qualifier, _ = _qualifier(sent, tot_tok)
        noun_party = _party_in(sent, 0, tot_tok)
        category = _sentence_category(sent)
        out.append(
            Report(
                sentence=sent,
                token=tot_tok,
                outcome=outcome,
                count=sent.quantities[tot_ref].value,
                qualifier=qualifier,
                acled=None,
                category=category,
                party=noun_party,
                cumulative=True,
                increment=sent.quantities[inc_ref].value,
                pattern=_INCREASE_ID,
            )
        )
        used.update((inc_tok, tot_tok))
    return out, used


def _token_of_ref(sent: Sentence, kind: TokenKind, ref: int) -> int | None:
    for i, t in enumerate(sent.tokens):
        if t.kind == kind and t.ref == ref:
            return i
    return None


def _sentence_outcome(sent: Sentence, death_ctx: bool) -> Outcome | None:
    sig = sent.sig
    if re.search(r"\b(?:killed|dead|death|deaths|died|fatalities|lives)\b", sig):
        return "killed"
    if re.search(r"\b(?:wounded|injured|injuries)\b", sig):
        return "wounded"
    if re.search(r"\bmissing\b", sig):
        return "missing"
    if "casualties" in sig and death_ctx:
        return "killed"
    return None


def _sentence_category(sent: Sentence) -> Category:
    for t in sent.tokens:
        if t.text in _PLURAL_NOUNS and _PLURAL_NOUNS[t.text] != UNKNOWN:
            return _PLURAL_NOUNS[t.text]
    return UNKNOWN


def _total_reports(sent: Sentence, death_ctx: bool, used: set[int]) -> list[Report]:
    """ "The death toll rose to 28", "bringing to 13 the number of soldiers who have died"."""
    out: list[Report] = []
    for i, t in enumerate(sent.tokens):
        if t.kind != "N" or i in used or _is_excluded_number(sent, i):
            continue
        q = sent.quantities[t.ref]
        qualifier, start = _qualifier(sent, i)
        before = sent.sig[: sent.offsets[i]]
        after = sent.sig[sent.offsets[i] :]
        window = before[-170:]
        if not (
            _TOTAL_BEFORE.search(window)
            or (_BRINGING.search(window) and re.match(r"N\d+ the (?:number|toll|total)", after))
        ):
            continue
        if not re.search(
            r"\b(?:toll|dead|death|deaths|killed|died|wounded|injured|casualties|"
            r"fatalities|missing|lives|victims|abductees|hostages|captives|"
            r"detainees)\b",
            sent.sig,
        ):
            continue
        outcome = _toll_outcome(before, after, sent, death_ctx)
        figure = sent.text[t.start : t.end]
        if outcome is None:
            sent.note(_TOTAL_ID, "vetoed", f"{figure}: no outcome near the total")
            continue
        sent.note(_TOTAL_ID, "fired", figure)
        if q.vague is not None:
            qualifier = "vague"
        out.append(
            Report(
                sentence=sent,
                token=i,
                outcome=outcome,
                count=q.value,
                qualifier=qualifier,
                acled=q.acled,
                category=_toll_category(sent, i, before),
                party=_party_in(sent, max(0, start - 12), i),
                cumulative=True,
                pattern=_TOTAL_ID,
            )
        )
        used.add(i)
    return out


# The people a toll counts, named on the toll itself: "the death toll among civilians", "the
# number of soldiers killed" (the words after "among"/"of"), "the civilian death toll".
_TOLL_OF = re.compile(r"\b(?:toll|number|total|tally|count) (?:among|of) (?:the )?(\S+)(?: (\S+))?")
_TOLL_ADJECTIVE = re.compile(r"(\S+) (?:death )?toll\b")


def _word_category(word: str) -> Category | None:
    if word in ("civilian", "military"):
        return CIVILIAN if word == "civilian" else MILITARY
    found = _PLURAL_NOUNS.get(word) or _SINGULAR_NOUNS.get(word)
    return found if found != UNKNOWN else None


def _toll_category(sent: Sentence, i: int, before: str) -> Category:
    """Whose toll: the people named right after the figure ("rose to 134 civilians"), else on
    the toll itself ("the death toll among civilians"), else anywhere in the sentence unless
    it is a plain death toll (whose other nouns rarely say whom it counts)."""
    noun = _person_after(sent, i)
    if noun is not None and noun[0] <= i + 2 and noun[1] != UNKNOWN:
        return noun[1]
    for rx in (_TOLL_OF, _TOLL_ADJECTIVE):
        for m in reversed(list(rx.finditer(before[-120:]))):
            for word in m.groups():
                found = _word_category(word) if word else None
                if found is not None:
                    return found
    return _sentence_category(sent) if "death toll" not in before[-60:] else UNKNOWN


def _toll_outcome(before: str, after: str, sent: Sentence, death_ctx: bool) -> Outcome | None:
    tail = before[-90:] + " " + after[:60]
    if re.search(r"\b(?:wounded|injured|injuries)\b", tail) and not re.search(
        r"\bdeath toll\b", before[-90:]
    ):
        return "wounded"
    if re.search(r"\b(?:death toll|dead|deaths|killed|died|fatalities|lives|toll)\b", tail):
        return "killed"
    if re.search(r"\babductees|hostages|captives\b", tail):
        return "captured"
    if "missing" in tail:
        return "missing"
    if "casualties" in tail and death_ctx:
        return "killed"
    return None


def _mark_cumulative(sent: Sentence, reports: list[Report]) -> None:
    """Sentence cues: "since", "so far", "pushing the toll to"; or an earlier war."""
    sig = sent.sig
    has_total = any(r.cumulative for r in reports)
    historical = not re.search(r"\bsince\b", sig) and (
        any(_before_report(sent, int(m.group(1)) + 9) for m in _DECADE.finditer(sent.quote))
        or any(_before_report(sent, _war_end(m.group(0))) for m in _WAR_YEARS.finditer(sig))
        or (bool(_HISTORICAL_CUES.search(sig)) and _historical_year(sent))
    )
    cue = not historical and not has_total and bool(_CUMULATIVE_CUES.search(sig))
    for r in reports:
        if historical:
            r.historical = True
            r.cumulative = True
            continue
        if r.increment is not None and not r.cumulative:
            continue
        if cue and not has_total:
            r.cumulative = True


def _historical_year(sent: Sentence) -> bool:
    """A year or decade cue counts only when it is not the date of this very report."""
    sig = sent.sig
    if re.search(r"\b(?:last year|years ago|decades ago|previous war|earlier war|last war)\b", sig):
        return True
    for m in re.finditer(r"\b(?:in|of|during) (?:the )?(?:late |early |mid )?(?:\w+ )?N(\d+)", sig):
        q = sent.quantities[int(m.group(1))]
        if q.value is not None and 1900 <= q.value <= 2100 and _before_report(sent, int(q.value)):
            return True
    return False


def _before_report(sent: Sentence, year: int) -> bool:
    """A year (the last of a span) ends before the article's own; with no publication date,
    any year named this way is taken as an earlier one."""
    return sent.report_year is None or year < sent.report_year


def _war_end(named: str) -> int:
    """The last year in "the 1988-1991 war" (the signature spells years as digits)."""
    return max(int(y) for y in re.findall(r"\b(?:19|20)\d\d\b", named))


# --- passage level ------------------------------------------------------------------------------


# Word stems without which no casualty can be read: the cheap test that lets the passage
# skip a sentence (normalize.py scans the whole text for every module's stems at once).
TRIGGERS = sorted(
    {
        *words(
            "kill dead die death wound injur hurt abduct kidnap detain captur missing body "
            "bodies corpse shot casualt fatal toll lives hostage prisoner captive pows victim "
            "lost neutrali"
        ),
        *lexicon.trigger_words(),  # every form of every killing and dying verb
    }
)
_ANY_OUTCOME = re.compile(r"\b(?:" + trie_pattern(TRIGGERS) + ")")


def read_sentence(sent: Sentence, death_ctx: bool) -> list[Report]:
    """Every casualty report in one sentence, in token order."""
    if not _ANY_OUTCOME.search(sent.sig):
        return []
    reports, used = _increase_reports(sent, death_ctx)
    reports += _total_reports(sent, death_ctx, used)
    previous: Report | None = None
    for i, t in enumerate(sent.tokens):
        if t.kind != "N" or i in used:
            continue
        r = _read_count(sent, i, previous, death_ctx)
        if r is not None:
            reports.append(r)
            previous = r
    taken = {r.token for r in reports}
    reports += [r for r in _singulars(sent) + _both(sent) if r.token not in taken]
    reports += [extra for r in reports for extra in _coordinated_outcome(sent, r)]
    reports = [split for r in reports for split in _per_side(sent, r)]
    reports.sort(key=lambda r: r.token)
    if not reports:
        return reports
    claimed = bool(re.search(r"\bclaim(?:s|ed)?\b", sent.sig))
    for r in reports:
        r.claimed = claimed
        r.place = _place_near(sent, r.token)
    _mark_cumulative(sent, reports)
    return reports


_PLACE_PREPS = frozenset(words("in at near outside around"))
_PLACE_NOUNS = frozenset(words("city town village region province state district area camp"))
_WEEKDAYS = frozenset(words("monday tuesday wednesday thursday friday saturday sunday"))


def _place_near(sent: Sentence, i: int) -> str | None:
    """The city or region a figure is for: the place phrase ("in El Fasher", "in the town of
    Nyala", "near Khartoum") nearest to it in its clause, within a dozen tokens. States and
    the watch's parties are not places here: a country's toll is the watch's own."""
    best: tuple[int, str] | None = None
    for k in range(max(0, i - 14), min(len(sent.tokens), i + 14)):
        t = sent.tokens[k]
        if t.kind != "W" or t.text not in _PLACE_PREPS:
            continue
        j = k + 1
        if (
            _text(sent, j) == "the"
            and _text(sent, j + 1) in _PLACE_NOUNS
            and _text(sent, j + 2) == "of"
        ):
            j += 3
        name = _place_name(sent, j)
        lo, hi = min(k, i), max(k, i)
        if name is None or any(x.text in (";", ".", ":") for x in sent.tokens[lo:hi]):
            continue
        if best is None or abs(k - i) < best[0]:
            best = (abs(k - i), name)
    return best[1] if best else None


def _place_name(sent: Sentence, j: int) -> str | None:
    """A run of up to four capitalised words (or a capital city) starting at token j."""
    end = j
    while end < len(sent.tokens) and end - j < 4:
        t = sent.tokens[end]
        if t.kind == "E":
            m = sent.mentions[t.ref]
            if m.party or m.form != "capital":
                break
        elif (
            t.kind != "W"
            or not sent.text[t.start].isupper()
            or t.text in MONTHS
            or t.text in _WEEKDAYS
            or t.text in _FUNCTION
        ):
            break
        end += 1
    if end == j:
        return None
    return sent.text[sent.tokens[j].start : sent.tokens[end - 1].end]


_TAKEN = frozenset(words("kidnapped abducted captured seized detained"))
_THEN = frozenset(words("later then subsequently eventually"))


def _coordinated_outcome(sent: Sentence, r: Report) -> list[Report]:
    """ "Were kidnapped and killed", "abducted and killed five": the same people were
    captured and killed, so the figure is a report of each."""
    texts = _texts(sent)
    if r.outcome == "captured":
        for k in range(r.token + 1, min(len(texts) - 2, r.token + 14)):
            if texts[k] in _CLAUSE_STOP:
                break
            if texts[k] in _TAKEN and texts[k + 1] == "and":
                m = k + 2 + (texts[k + 2] in _THEN)
                if m < len(texts) and (
                    lexicon.phrase_at(texts, m, lexicon.KILL_PASSIVE) is not None
                ):
                    return [dataclasses.replace(r, outcome="killed")]
                break
    elif r.outcome == "killed":
        for k in range(r.token - 1, max(1, r.token - 5), -1):
            start = next(
                (
                    b
                    for b in range(k, max(-1, k - 3), -1)
                    if lexicon.phrase_at(texts, b, lexicon.KILL_ACTIVE) == k + 1
                ),
                None,
            )
            if start is None:
                continue
            back = start - 1
            while back > 1 and texts[back] in _THEN:
                back -= 1
            if back > 0 and texts[back] == "and" and texts[back - 1] in _TAKEN:
                return [dataclasses.replace(r, outcome="captured")]
            break
    return []


_EACH_SIDE = re.compile(r"^(?:\S+ ){0,4}?(?:from|on|of) (?:each|either) side\b")


def _per_side(sent: Sentence, r: Report) -> list[Report]:
    """ "Russia and Ukraine exchanged 115 prisoners from each side": one figure per side
    named in the sentence, each with its party (two reports of 115)."""
    if r.count is None or not _EACH_SIDE.match(sent.sig[sent.offsets[r.token] :]):
        return [r]
    codes = list(
        dict.fromkeys(
            sent.mentions[sent.tokens[k].ref].code
            for k in sent.actor_tokens
            if sent.is_actor_token(k)
        )
    )
    if len(codes) < 2:
        return [r]
    return [dataclasses.replace(r, party=code) for code in codes[:2]]


def merge_passage(reports: list[Report]) -> list[Report]:
    """One report per distinct figure; totals whose parts are listed become cumulative."""
    out: list[Report] = []
    seen: dict[tuple, Report] = {}
    has_other = {r.outcome for r in reports if not r.definite}
    increments = {(r.outcome, r.increment) for r in reports if r.increment is not None}
    for r in reports:
        if r.increment is None and (r.outcome, r.count) in increments:
            r.sentence.note("casualties.increment-of-a-total", "vetoed", f"{r.count} {r.outcome}")
            continue
        if r.definite and r.count == 1 and r.outcome in has_other:
            r.sentence.note("casualties.refers-back", "vetoed", f"one {r.outcome}")
            continue
        vague = r.qualifier == "vague"
        key = (r.outcome, r.count, r.historical, vague, r.category if vague else "")
        first = seen.get(key)
        if first is not None and first.sentence is r.sentence and first.token != r.token:
            first = None  # "his two cousins and two others": two figures, not one repeated
        if first is not None and (first.party is None or r.party is None or first.party == r.party):
            if first.party is None and r.party is not None:
                first.party = r.party
            r.sentence.note("casualties.repeated-figure", "vetoed", f"{r.count} {r.outcome}")
            continue
        seen[key] = r
        out.append(r)
    _summary_totals(out)
    _totals_of_parts(out)
    return out


_SUMMARY = re.compile(r"^N\d+ (?:fatalities|fatality|deaths|dead|killed|people killed)\b")


def _summary_totals(reports: list[Report]) -> None:
    """A closing "3 fatalities." sums up the passage: the figures before it are its parts."""
    for r in reports:
        if r.count is None or not _SUMMARY.match(r.sentence.sig) or r.sentence.sig.count(" N") > 2:
            continue
        for other in reports:
            if (
                other is not r
                and other.outcome == r.outcome
                and not other.cumulative
                and other.sentence.index < r.sentence.index
                and (other.count or 0) <= r.count
            ):
                other.subset = True


def _totals_of_parts(reports: list[Report]) -> None:
    """A figure equal to the sum of two or more other figures is their total."""
    by_outcome: dict[str, list[Report]] = {}
    for r in reports:
        if r.count is not None and not r.cumulative and not r.historical and not r.subset:
            by_outcome.setdefault(r.outcome, []).append(r)
    for group in by_outcome.values():
        for r in group:
            # The total is given before its parts ("8 killed, 5 from A and 3 from B"); a
            # figure after them is one more part ("the chief, two aides and three others").
            parts = [
                p
                for p in group
                if p is not r
                and p.increment is None
                and (p.sentence.index, p.token) > (r.sentence.index, r.token)
            ]
            if len(parts) >= 2 and sum(p.count or 0 for p in parts) == r.count:
                r.cumulative = True


# --- the reader -----------------------------------------------------------------------------

# Words that make "casualties" mean deaths in this sentence or the one after it.
_DEATH_WORDS = re.compile(r"\b(?:death|deaths|dead|killed|died|fatalit\w*|toll)\b")


class CasualtyReader:
    """Casualty figures of one text: each sentence's reports, merged over the passage."""

    topic = "casualties"
    triggers = TRIGGERS

    def facts(self, sentences: Sequence[Sentence], watch: Watch | None) -> list[Fact]:
        reports: list[Report] = []
        for i, sent in enumerate(sentences):
            if self.topic not in sent.topics:
                continue
            ctx = bool(_DEATH_WORDS.search(sent.quote.lower())) or (
                i > 0 and bool(_DEATH_WORDS.search(sentences[i - 1].quote.lower()))
            )
            reports += read_sentence(sent, ctx)
        return [_fact(r, watch) for r in merge_passage(reports)]


def _fact(r: Report, watch: Watch | None) -> Casualties:
    return Casualties(
        **r.sentence.provenance(r.pattern or "casualties"),
        stance="claimed" if r.claimed else "reported",
        party=r.party,
        side=watch.side_of(r.party) if watch else None,
        category=r.category,
        outcome=r.outcome,
        count=r.count,
        qualifier=r.qualifier,
        cumulative=r.cumulative,
        increment=r.increment if r.increment != r.count else None,
        historical=r.historical,
        acled_count=r.acled if r.qualifier == "vague" else None,
        place=r.place,
        subset=r.subset,
    )


READER = CasualtyReader()
