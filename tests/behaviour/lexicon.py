"""Lexicons for the behavioural suite: words only, each list written for these tests.

Verb forms and plurals are not typed out: `lemminflect` inflects each lemma into every tense
and voice, and `inflect` makes plurals and spells numbers in words (hyphenated words included),
so a list entry covers every form a reporter could use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import inflect
from lemminflect import getAllInflections, getInflection

_ENGINE = inflect.engine()


# --- inflection through the libraries -------------------------------------------------------


@cache
def verb_forms(lemma: str, tag: str) -> tuple[str, ...]:
    """Every spelling of `lemma` for a Penn tag (VBD, VBN, VBG, VBZ, VBP): "burned", "burnt"."""
    forms = getAllInflections(lemma, upos="VERB").get(tag, ())
    if not forms:
        forms = getInflection(lemma, tag=tag)
    return tuple(dict.fromkeys(forms))


@cache
def participles(lemma: str) -> tuple[str, ...]:
    """Past participles, with the past tense's variant spellings ("burnt" beside "burned"):
    the library lists those for the past tense only."""
    return tuple(dict.fromkeys(verb_forms(lemma, "VBN") + verb_forms(lemma, "VBD")[1:]))


def verb_form(lemma: str, tag: str) -> str:
    """The first (most common) spelling."""
    return verb_forms(lemma, tag)[0]


@cache
def plural(noun: str) -> str:
    """ "policeman" -> "policemen", "person" -> "people", "police officer" -> "police officers"."""
    return _ENGINE.plural_noun(noun)


def article(noun: str) -> str:
    """ "a soldier", "an officer"."""
    return _ENGINE.a(noun)


@cache
def number_words(n: int) -> str:
    """ "twenty-three", "four hundred" (hyphenated where English hyphenates)."""
    return str(_ENGINE.number_to_words(n, andword="", comma=""))


def render_number(n: int, style: str) -> str:
    """A count as a reporter writes it: "digits" (with thousands commas) or "words"."""
    if style == "digits":
        return f"{n:,}"
    return number_words(n)


def cap(text: str) -> str:
    """Sentence-initial capital, leaving the rest alone ("twenty-three" -> "Twenty-three")."""
    return text[:1].upper() + text[1:]


# --- people -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    singular: str
    category: str  # civilian, military, unknown (CONVENTIONS.md)

    @property
    def plural(self) -> str:
        return plural(self.singular)


CIVILIAN_NOUNS = [
    Noun(w, "civilian")
    for w in (
        "civilian",
        "villager",
        "farmer",
        "student",
        "teacher",
        "worshipper",
        "shopkeeper",
        "doctor",
        "nurse",
        "journalist",
        "child",
        "woman",
        "resident",
        "passenger",
        "fisherman",
        "trader",
        "herder",
        "miner",
        "pilgrim",
        "aid worker",
        # Held out: nouns the product's lexicon does not list, so that the suite checks
        # reading people the lexicon has never seen.
        "electrician",
        "pharmacist",
        "carpenter",
        "cameraman",
        "surgeon",
        "midwife",
    )
]
MILITARY_NOUNS = [
    Noun(w, "military")
    for w in (
        "soldier",
        "policeman",
        "police officer",
        "militant",
        "rebel",
        "fighter",
        "insurgent",
        "serviceman",
        "militiaman",
        "gendarme",
        "jihadist",
        "guerrilla",
        "border guard",
        "army officer",
    )
]
UNKNOWN_NOUNS = [Noun(w, "unknown") for w in ("person", "individual")]
VICTIMS = CIVILIAN_NOUNS + MILITARY_NOUNS + UNKNOWN_NOUNS

# One named or described person: a title with "the", or a noun with "a".
TITLES = (
    "mayor",
    "village chief",
    "district commissioner",
    "imam",
    "parish priest",
    "local police chief",
    "deputy governor",
    "headmaster",
    "tribal elder",
    "opposition politician",
)
# Titles with the category CONVENTIONS.md gives the person: a force's officers are military.
TITLED = (
    ("local police chief", "military"),
    ("army commander", "military"),
    ("district police commander", "military"),
    ("militia leader", "military"),
    ("village chief", "civilian"),
    ("school headmaster", "civilian"),
    ("hospital director", "unknown"),
)
RELATIONS = ("driver", "son", "brother", "bodyguard", "wife", "nephew", "colleague")
RELATIONS_MANY = ("son", "brother", "bodyguard", "nephew", "cousin")

PERPETRATORS = (
    "Gunmen",
    "Unidentified gunmen",
    "Bandits",
    "Suspected jihadists",
    "Armed men",
    "Unknown assailants",
    "Men on motorbikes",
    "Attackers",
)

# --- killing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillVerb:
    """A transitive verb of killing, with the words that complete it ("to death", "down").

    `movable`: the particle may stand before the object too ("gunned down five men")."""

    lemma: str
    particle: str = ""
    movable: bool = False


PLAIN_KILL = KillVerb("kill")
KILL_PHRASES = (
    KillVerb("gun", "down", True),
    KillVerb("shoot", "dead", True),
    KillVerb("shoot", "to death"),
    KillVerb("hack", "to death"),
    KillVerb("beat", "to death"),
    KillVerb("stab", "to death"),
    KillVerb("burn", "to death"),
    KillVerb("burn", "alive"),
    KillVerb("stone", "to death"),
    KillVerb("lynch"),
    KillVerb("execute"),
    KillVerb("behead"),
    KillVerb("massacre"),
    KillVerb("assassinate"),
    KillVerb("murder"),
    KillVerb("slay"),
)
# Deaths told without a killer: the subject is the victim. "{v}" is the victim phrase.
DEATH_FRAMES = (
    "{v} {died}",
    "{v} have {died_pp}",
    "{v} later {died} of their wounds",
    "{v} {died} in hospital",
    "{v} {succumbed} to their injuries",
    "{v} {succumbed} to their wounds",
    "{v} {lost} their lives",
    "{v} have {lost_pp} their lives",
    "{v} {perished}",
    "{v} were found dead",
    "{v} were martyred",
    "the bodies of {v} were found",
    "the bodies of {v} were recovered",
    "police recovered the bodies of {v}",
)

# --- context --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    demonym: str


COUNTRIES = (
    Country("MLI", "Mali", "Malian"),
    Country("NGA", "Nigeria", "Nigerian"),
    Country("NER", "Niger", "Nigerien"),
    Country("BFA", "Burkina Faso", "Burkinabe"),
    Country("SOM", "Somalia", "Somali"),
    Country("AFG", "Afghanistan", "Afghan"),
    Country("YEM", "Yemen", "Yemeni"),
    Country("SYR", "Syria", "Syrian"),
    Country("IRQ", "Iraq", "Iraqi"),
    Country("CMR", "Cameroon", "Cameroonian"),
    Country("MOZ", "Mozambique", "Mozambican"),
    Country("COL", "Colombia", "Colombian"),
    Country("MEX", "Mexico", "Mexican"),
    Country("PAK", "Pakistan", "Pakistani"),
    Country("SDN", "Sudan", "Sudanese"),
    Country("ETH", "Ethiopia", "Ethiopian"),
)
# Outsiders for third-party, ceasefire-broker and downing templates.
OUTSIDERS = (
    Country("TUR", "Turkey", "Turkish"),
    Country("IRN", "Iran", "Iranian"),
    Country("FRA", "France", "French"),
    Country("CHN", "China", "Chinese"),
    Country("QAT", "Qatar", "Qatari"),
    Country("EGY", "Egypt", "Egyptian"),
    Country("SAU", "Saudi Arabia", "Saudi"),
    Country("DEU", "Germany", "German"),
    Country("BLR", "Belarus", "Belarusian"),
    Country("KEN", "Kenya", "Kenyan"),
    # names with an article, and a second batch that no rule was written against
    Country("USA", "the United States", "American"),
    Country("ARE", "the United Arab Emirates", "Emirati"),
    Country("GBR", "Britain", "British"),
    Country("JPN", "Japan", "Japanese"),
    Country("BRA", "Brazil", "Brazilian"),
    Country("ISR", "Israel", "Israeli"),
    Country("UGA", "Uganda", "Ugandan"),
    Country("NOR", "Norway", "Norwegian"),
)
# Pairs of states at war in a watch (code, name, demonym for each side).
CONFLICTS = (
    (Country("ARM", "Armenia", "Armenian"), Country("AZE", "Azerbaijan", "Azerbaijani")),
    (Country("RUS", "Russia", "Russian"), Country("UKR", "Ukraine", "Ukrainian")),
    (Country("ETH", "Ethiopia", "Ethiopian"), Country("ERI", "Eritrea", "Eritrean")),
    (Country("IND", "India", "Indian"), Country("PAK", "Pakistan", "Pakistani")),
    (Country("SDN", "Sudan", "Sudanese"), Country("SSD", "South Sudan", "South Sudanese")),
    # a second batch that no rule was written against
    (Country("THA", "Thailand", "Thai"), Country("KHM", "Cambodia", "Cambodian")),
    (
        Country("COD", "the Democratic Republic of Congo", "Congolese"),
        Country("RWA", "Rwanda", "Rwandan"),
    ),
    (Country("KGZ", "Kyrgyzstan", "Kyrgyz"), Country("TJK", "Tajikistan", "Tajik")),
)

PLACES = (
    "in the north of {country}",
    "near the border with {country}",
    "in a village in central {country}",
    "on a road outside the capital of {country}",
)
TIMES = ("on Tuesday", "overnight", "early on Sunday", "last week", "on Friday evening")
SOURCES = (
    "the army said",
    "police said",
    "a local official told reporters",
    "the health ministry said",
    "residents said",
    "according to a statement from the governor",
)
# Qualifier words and the reading CONVENTIONS.md gives them.
QUALIFIERS = (
    ("at least", "at_least"),
    ("more than", "at_least"),
    ("over", "at_least"),
    ("about", "about"),
    ("around", "about"),
    ("some", "about"),
    ("nearly", "about"),
    ("an estimated", "about"),
    ("roughly", "about"),
)
VAGUE = ("dozens of", "scores of", "hundreds of", "several", "many")

# --- third parties ------------------------------------------------------------------------------

# Weapons an outsider may supply, as reporters name them (plural or mass nouns). The last
# ones are held out: the product lists weapon head words, not these phrases.
WEAPONS = (
    "drones",
    "artillery shells",
    "ammunition",
    "anti-tank missiles",
    "rifles",
    "assault rifles",
    "grenades",
    "mortar rounds",
    "howitzers",
    "armoured vehicles",
    "machine guns",
    "rocket launchers",
    "surface-to-air missiles",
    "small arms",
    "attack helicopters",
    "sniper rifles",
    "landmines",
    "explosives",
)
# Verbs of supplying weapons, as lemmas ("supply X to Y"); inflected by lemminflect.
SUPPLY_VERBS = ("supply", "send", "deliver", "provide", "ship", "sell", "transfer", "smuggle")
# Wars between a government and an armed group, where the watch names the government's forces
# without the state ("the government", alias "Malian army"): soldiers called by the state's
# demonym are that party, not an outsider. (party, group, demonym of the state)
INSIDE_WARS = (
    (Country("GOV", "the government", "Malian army"), Country("JNIM", "JNIM", "JNIM"), "Malian"),
    (
        Country("FGS", "the federal government", "Somali army"),
        Country("SHABAAB", "al-Shabaab", "al-Shabaab"),
        "Somali",
    ),
    (
        Country("FAN", "the government", "Nigerian army"),
        Country("BH", "Boko Haram", "Boko Haram"),
        "Nigerian",
    ),
    (
        Country("FADM", "the government", "Mozambican army"),
        Country("ASWJ", "Ansar al-Sunna", "Ansar al-Sunna"),
        "Mozambican",
    ),
)
