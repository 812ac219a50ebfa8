"""Constructions that failed on fresh text, one test each, on sentences written for these tests.

Each test names the general mechanism it checks (who owns an intercepted drone, coordinated
brokers, hosting talks, clean speaker phrases, pairs of people, per-side figures, ranges in a
toll), with wording and conflicts varied so that no test passes by recognising one sentence.
The last test checks the speed prefilter: a sentence is never skipped by a module whose rules
would have read something in it.
"""

from __future__ import annotations

import pytest

from monitor.events import Casualties, Ceasefire, Diplomacy, Downing, ThirdParty
from monitor.extract import casualties, ceasefire, diplomacy, downing
from monitor.extract.analysis import build_sentence, fold
from monitor.extract.gazetteer import find_mentions
from monitor.extract.normalize import _topics, extract
from monitor.extract.numbers import find_quantities
from monitor.watches import Watch
from tests.conftest import make_watch

SUDAN = make_watch(
    {"SAF": ["army", "Sudanese army"], "RSF": ["paramilitary", "RSF"]},
    {"SAF": "Sudanese Armed Forces", "RSF": "Rapid Support Forces"},
)
UKRAINE = make_watch(
    {"RUS": ["Russian"], "UKR": ["Ukrainian"]}, {"RUS": "Russia", "UKR": "Ukraine"}
)
CAUCASUS = make_watch(
    {"ARM": ["Armenian"], "AZE": ["Azerbaijani", "Azeri"]},
    {"ARM": "Armenia", "AZE": "Azerbaijan"},
)


def of_type(text: str, watch: Watch | None, kind: type) -> list:
    return [f for f in extract(text, watch) if isinstance(f, kind)]


# --- downings: the subject of the verb shoots, the owner is in the object phrase -------------


@pytest.mark.parametrize(
    "text",
    [
        "The army said its air defences intercepted two drones launched by the paramilitary "
        "group over Omdurman.",
        "The army said it had downed two drones belonging to the RSF near the airport.",
        "Air defence units of the army intercepted two drones fired by the RSF overnight.",
    ],
)
def test_interceptor_is_not_the_owner(text: str) -> None:
    found = of_type(text, SUDAN, Downing)
    assert [(d.asset, d.owner, d.claimed_by, d.count) for d in found] == [
        ("drone", "RSF", "SAF", 2)
    ]


def test_owner_named_in_the_object_phrase_still_wins() -> None:
    found = of_type(
        "Ukraine said it shot down a Russian helicopter near Kharkiv.", UKRAINE, Downing
    )
    assert [(d.asset, d.owner, d.claimed_by) for d in found] == [("helicopter", "RUS", "UKR")]


# --- ceasefire brokers: every coordinated subject is a broker --------------------------------


@pytest.mark.parametrize(
    ("text", "brokers"),
    [
        (
            "Qatar and Egypt, which mediated a brief truce in the spring, urged both sides to "
            "return to talks.",
            {"QAT", "EGY"},
        ),
        (
            "Norway and Switzerland brokered a ceasefire between the two sides in March.",
            {"NOR", "CHE"},
        ),
        ("Turkey, Qatar and the United Nations brokered the truce.", {"TUR", "QAT", "UN"}),
    ],
)
def test_coordinated_brokers(text: str, brokers: set[str]) -> None:
    agreed = {c.broker for c in of_type(text, SUDAN, Ceasefire) if c.status == "agreed"}
    assert agreed == brokers
    mediators = {t.actor for t in of_type(text, SUDAN, ThirdParty) if t.kind == "mediation"}
    assert mediators == brokers


def test_appeal_has_no_broker_beside_an_earlier_brokered_truce() -> None:
    text = (
        "Kenya and Ethiopia, which brokered a short truce in Nairobi, called for an immediate "
        "ceasefire."
    )
    found = {(c.status, c.broker) for c in of_type(text, SUDAN, Ceasefire)}
    assert found == {("called_for", None), ("agreed", "KEN"), ("agreed", "ETH")}


def test_a_party_named_with_a_broker_is_not_a_third_party() -> None:
    text = "Russia and Turkey brokered the ceasefire that Armenia accepted."
    assert {t.actor for t in of_type(text, CAUCASUS, ThirdParty)} == {"RUS", "TUR"}


# --- hosting talks between the sides is mediation, even when the sides go unnamed ------------


@pytest.mark.parametrize(
    ("text", "actor"),
    [
        ("Kenya hosted talks between the warring parties in Nairobi last week.", "KEN"),
        ("Saudi Arabia will host negotiations between the two sides in Jeddah.", "SAU"),
        ("Egypt hosted talks between the army and the RSF on Sunday.", "EGY"),
    ],
)
def test_hosting_talks_is_mediation(text: str, actor: str) -> None:
    found = {(t.actor, t.kind) for t in of_type(text, SUDAN, ThirdParty)}
    assert found == {(actor, "mediation")}


@pytest.mark.parametrize(
    "text",
    [
        "Egypt hosted a trade fair in Cairo on Monday.",
        "Kenya hosted talks with Uganda on a new railway.",
    ],
)
def test_hosting_without_the_sides_is_not_mediation(text: str) -> None:
    assert of_type(text, SUDAN, ThirdParty) == []


def test_hosting_talks_is_also_diplomacy() -> None:
    found = of_type("Kenya hosted talks between the warring parties.", SUDAN, Diplomacy)
    assert [(d.kind, d.participants) for d in found] == [("talks", ["KEN"])]


# --- attribution: a clean noun phrase, never auxiliaries or pronouns ------------------------


@pytest.mark.parametrize(
    ("text", "speaker"),
    [
        (
            "The United Arab Emirates has denied supplying weapons to the RSF.",
            "United Arab Emirates",
        ),
        ("Chad has repeatedly denied sending fighters to help the RSF.", "Chad"),
        ("Egypt's foreign ministry has flatly denied sending jets to back the army.", None),
    ],
)
def test_speaker_phrase_has_no_auxiliary(text: str, speaker: str | None) -> None:
    found = of_type(text, SUDAN, ThirdParty)
    assert found and all(t.stance == "denied" for t in found)
    for t in found:
        assert t.attributed_to is not None
        assert t.attributed_to.split()[-1] not in ("has", "have", "repeatedly", "flatly")
        if speaker:
            assert t.attributed_to == speaker


def test_pronoun_is_not_a_speaker() -> None:
    found = of_type("He said 14 soldiers were killed near the border.", None, Casualties)
    assert [(c.count, c.attributed_to) for c in found] == [(14, None)]


# --- casualties ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "category"),
    [
        ("A shepherd and his son were shot dead near the village on Tuesday.", 2, "civilian"),
        ("A teacher and her husband were killed when the shell hit their house.", 2, "civilian"),
        ("A soldier and his driver were wounded by a roadside bomb.", 2, "military"),
    ],
)
def test_two_people_joined_by_and(text: str, count: int, category: str) -> None:
    found = of_type(text, None, Casualties)
    assert [(c.count, c.category) for c in found] == [(count, category)]


@pytest.mark.parametrize(
    "text",
    [
        "A clash broke out and a soldier was shot and died.",  # one person, not a pair
        "The man died and the woman was injured.",
    ],
)
def test_pairs_need_two_people_nouns(text: str) -> None:
    assert all(c.count == 1 for c in of_type(text, None, Casualties))


def test_figure_from_each_side_is_one_report_per_side() -> None:
    text = "Armenia and Azerbaijan handed over 40 prisoners from each side on Tuesday."
    found = of_type(text, CAUCASUS, Casualties)
    assert sorted((c.party, c.outcome, c.count) for c in found) == [
        ("ARM", "captured", 40),
        ("AZE", "captured", 40),
    ]


def test_figure_from_both_sides_is_one_total() -> None:
    text = (
        "Three days of fighting between Armenia and Azerbaijan killed 90 soldiers from both sides."
    )
    assert [c.count for c in of_type(text, CAUCASUS, Casualties)] == [90]


@pytest.mark.parametrize(
    "text",
    [
        "The death toll is believed to be between 60 and 75.",
        "The toll now stands at between 60 and 75, officials said.",
    ],
)
def test_range_in_a_toll_is_its_lower_bound(text: str) -> None:
    found = of_type(text, None, Casualties)
    assert [(c.outcome, c.count, c.qualifier) for c in found] == [("killed", 60, "at_least")]


def test_fatally_is_an_outcome_word() -> None:
    found = of_type("Two traders were fatally assaulted by a mob in the market.", None, Casualties)
    assert [(c.outcome, c.count) for c in found] == [("killed", 2)]


# --- the speed prefilter never hides a sentence from a module that would read it -------------


SAMPLES = [
    "Rebels shot down a government helicopter near the border on Friday.",
    "The ministry said air defences intercepted 12 missiles overnight.",
    "Both sides agreed to a 72-hour truce brokered by the African Union.",
    "The cessation of hostilities collapsed within hours.",
    "The president spoke by phone with his Kenyan counterpart.",
    "Swiss and Norwegian envoys met in Geneva for a second round of negotiations.",
    "France recognised the transitional council on Monday.",
    "At least 40 civilians were killed and 60 wounded in the shelling.",
    "A journalist was abducted by gunmen in the capital.",
    "Hundreds of fighters remain missing after the battle.",
    "The death toll has risen to 300, officials said.",
    "The army said a pilot was captured after his jet was destroyed.",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_prefilter_keeps_every_sentence_a_module_reads(text: str) -> None:
    mentions, quantities = find_mentions(text), find_quantities(text)
    sent = build_sentence(text, 0, len(text), 0, mentions, quantities)
    topics = _topics(fold(text), [(0, len(text))])[0]
    readers = {
        "casualties": bool(casualties.read_sentence(sent, True)),
        "ceasefire": bool(ceasefire.read_sentence(sent, frozenset())),
        "downing": bool(downing.read_sentence(sent)),
        "diplomacy": diplomacy.read_sentence(sent) is not None,
    }
    assert any(readers.values())  # the sample exercises some module
    for module, reads in readers.items():
        if reads:
            assert module in topics, module


@pytest.mark.parametrize(
    ("text", "supports"),
    [
        ("Norway pledged 500 million crowns in military aid to Ukraine on Friday.", "UKR"),
        ("The Dutch government approved a new package of air defence systems for Ukraine.", "UKR"),
    ],
)
def test_pledged_or_approved_arms_are_arms_involvement(text: str, supports: str | None) -> None:
    found = of_type(text, UKRAINE, ThirdParty)
    assert [(t.kind, t.supports) for t in found] == [("arms", supports)]


@pytest.mark.parametrize(
    ("text", "speaker"),
    [
        ("Gunmen killed 12 villagers in a raid on Sunday, police said.", "police"),
        ("An air strike killed 9 civilians, according to the health ministry.", "health ministry"),
        (
            "Fighters killed at least 40 soldiers at a base, security sources said.",
            "security sources",
        ),
        ("At least 7 people died in the blast, local residents told reporters.", "local residents"),
        (
            "The strike killed 23 people in the village, local media reported.",
            "local media",
        ),
        ("He said that 9 civilians were killed.", None),
        ("Rebels killed 12 villagers in the district on Sunday.", None),
    ],
)
def test_unnamed_sources_are_attributed_and_perpetrators_are_not(
    text: str, speaker: str | None
) -> None:
    [toll] = of_type(text, None, Casualties)
    assert toll.attributed_to == speaker


def test_the_sides_of_a_brokered_truce_are_not_its_brokers() -> None:
    watch = make_watch({"ISR": ["Israeli"], "HZB": []}, {"ISR": "Israel", "HZB": "Hezbollah"})
    text = (
        "A ceasefire between Israel and Hezbollah brokered by the United States and France "
        "took effect on Wednesday."
    )
    found = of_type(text, watch, Ceasefire)
    assert sorted((c.status, c.broker) for c in found) == [("agreed", "FRA"), ("agreed", "USA")]


@pytest.mark.parametrize(
    ("text", "statuses"),
    [
        (
            "Qatar brokered a truce between the two sides in May, but fighting resumed in June.",
            [("agreed", "QAT"), ("violated", "QAT")],
        ),
        ("Despite the truce, clashes erupted again near the border.", [("violated", None)]),
        ("The truce collapsed within days as fighting resumed.", [("collapsed", None)]),
        ("Fighting resumed in the north on Monday.", []),
    ],
)
def test_fighting_resumed_under_a_truce_is_a_violation(
    text: str, statuses: list[tuple[str, str | None]]
) -> None:
    found = of_type(text, None, Ceasefire)
    assert sorted((c.status, c.broker) for c in found) == sorted(statuses)


@pytest.mark.parametrize(
    ("word", "category"),
    [
        ("plumbers", "civilian"),  # a trade the lists lack: read by its ending
        ("librarian", "civilian"),
        ("seamstresses", "civilian"),
        ("nationalists", "unknown"),  # shares the ending, names no trade
        ("separatists", "military"),  # listed
        ("others", "unknown"),
        ("riflemen", "military"),
    ],
)
def test_unlisted_person_nouns_take_a_category_from_their_ending(word: str, category: str) -> None:
    from monitor.extract import lexicon

    assert lexicon.unlisted_category(word) == category
