"""Actor names in text: states, organisations, armed groups, and a watch's own parties.

The gazetteer is data (data/*.tsv) compiled once into a trie-shaped regex, so that matching
thousands of names costs one pass over the text. A watch's parties and aliases are matched
first and win every overlap: "separatist" is the watch's NKR, whatever the gazetteer says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from operator import itemgetter
from typing import NamedTuple

from monitor.watches import Watch

_BOUNDARY_L = r"(?<![\w])"
_BOUNDARY_R = r"(?![\w])"


@dataclass(frozen=True, slots=True)
class Entry:
    """One surface form and what it names."""

    code: str
    kind: str  # state | igo | ngo | group | media | block | party
    form: str  # name | adj | people | capital | org | alias


class Mention(NamedTuple):
    """An actor name found in text, with offsets into that text. (A named tuple: an article
    has scores of them, and a tuple is made several times faster than a frozen dataclass.)"""

    start: int
    end: int
    code: str
    kind: str
    form: str
    party: bool = False

    @property
    def is_actor(self) -> bool:
        """Media and blocked phrases are names, never actors."""
        return self.kind not in ("media", "block")


def _rows(name: str) -> list[list[str]]:
    text = resources.files("monitor.extract").joinpath("data", name).read_text(encoding="utf-8")
    return [
        line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]


def _split(cell: str) -> list[str]:
    return [] if cell.strip() in ("", "-") else [p.strip() for p in cell.split("|") if p.strip()]


def _plural(adjective: str) -> str | None:
    """Regular people-plurals of demonyms: Armenian -> Armenians, Pakistani -> Pakistanis."""
    if adjective.endswith(("an", "i")) and " " not in adjective.strip("."):
        return adjective + "s"
    return None


def _country_entries() -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for row in _rows("countries.tsv"):
        code, names, adjectives, people, capitals = (row + ["-"] * 5)[:5]
        for form in _split(capitals):
            out.setdefault(form, Entry(code, "state", "capital"))
        for form in _split(people):
            out.setdefault(form, Entry(code, "state", "people"))
        for form in _split(adjectives):
            out.setdefault(form, Entry(code, "state", "adj"))
            plural = _plural(form)
            if plural:
                out.setdefault(plural, Entry(code, "state", "people"))
        for form in _split(names):
            out[form] = Entry(code, "state", "name")
    return out


def _organisation_entries() -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for row in _rows("organisations.tsv"):
        code, kind, names = (row + ["-"] * 3)[:3]
        form = "name" if kind == "state" else "org"
        for name in _split(names):
            out[name] = Entry(code, kind, form)
    return out


def trie_pattern(words: list[str], after_first: str = "") -> str:
    """A regex matching any of `words`, shaped as a trie so that matching is one pass.
    `after_first`: inserted after each word's first character (a lookbehind there, in place
    of one before the word, leaves the pattern starting on a literal, which lets the regex
    engine skip ahead to the next character that can start a word)."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        ends = "" in node
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    if after_first:
        firsts = [re.escape(ch) + after_first + emit(child) for ch, child in sorted(trie.items())]
        if "" in trie:
            raise ValueError("after_first needs words of one character or more")
        return firsts[0] if len(firsts) == 1 else "(?:" + "|".join(firsts) + ")"
    return emit(trie)


def word_start(alternation: str) -> str:
    r"""The regex `\b(?:alternation)`, for an alternation whose every branch opens on a literal
    letter or digit, in a shape that starts on a literal: the branches grouped by that first
    character, each group then checking the boundary as a lookbehind (no word character
    before the first one). A scan then skips straight to the next character that can start a
    branch instead of trying every position (several times faster). Branches with different
    first characters never match at one place and the order within a group is kept, so every
    match is the one the plain alternation finds."""
    groups: dict[str, list[str]] = {}
    for branch in _top_branches(alternation):
        first, rest = branch[:1], branch[1:]
        if not (first.isascii() and first.isalnum()) or rest[:1] in ("?", "*", "+", "{"):
            raise ValueError(f"word_start: {branch!r} does not open on a literal character")
        groups.setdefault(first, []).append(rest)
    parts = [f"{ch}(?<!\\w.)(?:{'|'.join(rests)})" for ch, rests in groups.items()]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _top_branches(alternation: str) -> list[str]:
    """The branches of a regex alternation: split at each `|` outside groups and classes."""
    out: list[str] = []
    depth, start, i, in_class = 0, 0, 0, False
    while i < len(alternation):
        ch = alternation[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if alternation[i + 1 : i + 2] == "]":
                i += 1  # "[]...]": a leading "]" is a member
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(alternation[start:i])
            start = i + 1
        i += 1
    out.append(alternation[start:])
    return out


@cache
def gazetteer() -> dict[str, Entry]:
    """Every surface form of the gazetteer; organisations override clashing country forms."""
    table = _country_entries()
    table.update(_organisation_entries())
    return table


@cache
def _gazetteer_regex() -> re.Pattern[str]:
    """Every gazetteer form, word-bounded. The left boundary is checked after the first
    character (no word character before it), so the scan jumps from one possible first
    character to the next, mostly capitals, instead of trying every position."""
    if any(form[:1] in ("", "\n") for form in gazetteer()):
        raise ValueError("a gazetteer form is empty or starts with a line break")
    return re.compile(trie_pattern(list(gazetteer()), after_first=r"(?<!\w.)") + _BOUNDARY_R)


@cache
def _display_names() -> dict[str, str]:
    """Code -> the name a reader expects: each row's first name, with "the" where English
    uses it (organisations of states; "United ...", "... Republic", "... Islands"; names the
    data also lists as "The ...")."""
    names: dict[str, str] = {}
    for row in _rows("countries.tsv"):
        forms = _split([*row, "-"][1])
        if forms:
            first = forms[0]
            the = (
                first.startswith("United ")
                or "Republic" in first
                or first.endswith(("Islands", "Emirates"))
                or f"The {first}" in forms
            )
            names[row[0]] = f"the {first}" if the else first
    for row in _rows("organisations.tsv"):
        code, kind, cell = (row + ["-"] * 3)[:3]
        forms = _split(cell)
        if forms and code not in names:  # a state's ministries do not rename the state
            first = forms[0]
            the = kind == "igo" or (kind == "ngo" and first.startswith("International"))
            names[code] = f"the {first}" if the else first
    return names


def display_name(code: str) -> str | None:
    """The readable name of an actor code ("SAU" -> "Saudi Arabia", "MINSK" -> "the OSCE
    Minsk Group"), or None for a code the gazetteer does not know (a watch's own party)."""
    return _display_names().get(code)


@cache
def group_codes() -> frozenset[str]:
    """Codes of the armed groups the gazetteer knows (a watch may name one as a party)."""
    return frozenset(e.code for e in gazetteer().values() if e.kind == "group")


def lookup(surface: str) -> Entry | None:
    """The entry of an exact surface form ("Turkish", "Ankara", "OSCE"), or None."""
    return gazetteer().get(surface)


# --- watch parties ----------------------------------------------------------------------------

WatchKey = tuple[tuple[str, tuple[str, ...]], ...]


def watch_key(watch: Watch | None) -> WatchKey:
    """A hashable summary of a watch's names, so compiled patterns can be cached per watch."""
    if watch is None:
        return ()
    return _forms_of(
        tuple((code, p.name, tuple(p.aliases)) for code, p in sorted(watch.parties.items()))
    )


@lru_cache(maxsize=256)
def _forms_of(parties: tuple[tuple[str, str, tuple[str, ...]], ...]) -> WatchKey:
    """The forms of each party (code, name, aliases): worked out once per set of parties,
    since every text read for a watch asks for them several times."""
    return tuple(
        (code, tuple(_party_forms(name, list(aliases)))) for code, name, aliases in parties
    )


def _party_forms(name: str, aliases: list[str]) -> list[str]:
    """The name without its parenthetical, capitalised parenthetical parts, and the aliases."""
    forms = [re.sub(r"\s*\(.*?\)\s*", " ", name).strip()]
    for inner in re.findall(r"\((.*?)\)", name):
        for part in re.split(r"[,/]", inner):
            part = part.strip()
            if part and part[0].isupper():
                forms.append(part)
    forms.extend(a.strip() for a in aliases if a.strip())
    return [f for f in dict.fromkeys(forms) if f]


def _form_pattern(form: str) -> str:
    """Lower-case aliases match any case; capitalised ones only with a capital first letter
    ("IS" must not match "is"), and aliases starting lower-case also match capitalised."""
    escaped = re.escape(form)
    if form[0].islower():
        return (
            "(?i:" + escaped + ")"
            if form.islower()
            else f"[{form[0]}{form[0].upper()}]" + (re.escape(form[1:]))
        )
    return escaped


@cache
def _watch_regex(key: WatchKey) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    forms: dict[str, str] = {}
    for code, names in key:
        for form in names:
            forms.setdefault(form, code)
    if not forms:
        return None, {}
    ordered = sorted(forms, key=len, reverse=True)
    body = "|".join(_form_pattern(f) for f in ordered)
    return re.compile(_BOUNDARY_L + "(?:" + body + ")" + _BOUNDARY_R), forms


def _watch_code(forms: dict[str, str], surface: str) -> str | None:
    if surface in forms:
        return forms[surface]
    low = surface.lower()
    for form, code in forms.items():
        if form.lower() == low:
            return code
    return None


@cache
@cache
def _institution() -> re.Pattern[str]:
    """ "army", "government", "security forces": an alias ending in one, after a state's name
    ("Malian army"), names that state's own forces (data/involvement_words.yaml)."""
    from monitor.extract import lexicon  # the word files; imported late, used once per watch

    nouns = lexicon.words_file("involvement_words.yaml")["institution_nouns"]
    alternation = "|".join(re.escape(n) for n in sorted(nouns, key=len, reverse=True))
    return re.compile(rf"\s+(?:national\s+)?(?:{alternation})$", re.IGNORECASE)


@cache
def home_parties(key: WatchKey) -> dict[str, str]:
    """States that are a watch party's own country, each with that party: named in the
    party's name ("Sudanese army" -> SDN: SAF) or in an alias that is a state's name and an
    institution ("Malian army" -> MLI). Aliases of any other shape may name backers."""
    table = gazetteer()
    regex = _gazetteer_regex()
    found: dict[str, str] = {}
    for code, names in key:
        forms = [names[0]] if names else []
        forms += [a for a in names[1:] if _institution().search(a)]
        for form in forms:
            for m in regex.finditer(form):
                entry = table[m.group(0)]
                if entry.kind == "state" and entry.code not in dict(key):
                    found.setdefault(entry.code, code)
    return found


@lru_cache(maxsize=256)
def home_states(key: WatchKey) -> frozenset[str]:
    """The watch's parties and the states that are their own country (`home_parties`): never
    third parties, since they are the country at war rather than an outsider."""
    return frozenset({code for code, _ in key} | set(home_parties(key)))


_FIRST_THREE = itemgetter(0, 1, 2)  # a candidate's (start, -length, priority)


def find_mentions(text: str, watch: Watch | None = None) -> list[Mention]:
    """Actor names in `text`, non-overlapping, in order; watch names win every overlap."""
    key = watch_key(watch)
    parties = {code for code, _ in key}
    # (start, -length, priority, end, entry): Mentions are made only for the winners.
    candidates: list[tuple[int, int, int, int, Entry]] = []
    regex, forms = _watch_regex(key)
    if regex is not None:
        entries = {code: Entry(code, "party", "alias") for code in parties}
        for m in regex.finditer(text):
            code = _watch_code(forms, m.group(0))
            if code is not None:
                s, e = m.span()
                candidates.append((s, s - e, 0, e, entries[code]))
    table = gazetteer()
    for m in _gazetteer_regex().finditer(text):
        s, e = m.span()
        candidates.append((s, s - e, 1, e, table[m.group(0)]))
    candidates.sort(key=_FIRST_THREE)
    out: list[Mention] = []
    taken = -1
    for start, _, _, end, entry in candidates:
        if start >= taken:
            is_party = entry.kind == "party" or entry.code in parties
            out.append(Mention(start, end, entry.code, entry.kind, entry.form, is_party))
            taken = end
    return out


def resolve_actor(text: str, watch: Watch | None = None) -> str | None:
    """The code of the first actor named in a short phrase ("Turkish officials" -> TUR)."""
    for mention in find_mentions(text, watch):
        if mention.is_actor:
            return mention.code
    return None
