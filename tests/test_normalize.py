"""normalize(): one test per construction, on sentences written for these tests, plus the seeds.

The sentences are invented (varied conflicts on purpose: nothing here should only work for
Nagorno-Karabakh), except the seed articles, which the end-to-end replay also uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import (
    Casualties,
    Ceasefire,
    Diplomacy,
    Downing,
    FactReported,
    ThirdParty,
    parse_event_data,
)
from monitor.extract.normalize import READERS, explain, extract, normalize
from monitor.extract.reader import FactReader
from monitor.watches import Watch, load_watch
from tests.conftest import make_watch

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
NK_WATCH = REPO / "rules" / "watches" / "nagorno-karabakh.yaml"


UKRAINE = make_watch(
    {"RUS": ["Russian", "Moscow", "Kremlin"], "UKR": ["Ukrainian", "Kyiv"]},
    {"RUS": "Russia", "UKR": "Ukraine"},
)
SUDAN = make_watch(
    {"SAF": ["Sudanese army", "army"], "RSF": ["RSF", "Rapid Support Forces"]},
    {"SAF": "Sudanese Armed Forces", "RSF": "Rapid Support Forces"},
)
YEMEN = make_watch(
    {"HOUTHI": ["Houthis", "Houthi"], "YEM": ["Yemeni government", "government forces"]},
    {"HOUTHI": "Houthis", "YEM": "Yemeni government"},
)
GAZA = make_watch({"ISR": ["Israeli", "IDF"], "HAMAS": ["Hamas"]}, {"ISR": "Israel"})
MYANMAR = make_watch(
    {"MMR": ["junta", "Myanmar military"], "RESIST": ["Three Brotherhood Alliance", "PDF"]},
    {"MMR": "Myanmar military junta", "RESIST": "Myanmar resistance forces"},
)
TIGRAY = make_watch(
    {"ETH": ["Ethiopian army", "Ethiopian forces"], "TPLF": ["TPLF", "Tigrayan forces"]},
    {"ETH": "Ethiopian federal government", "TPLF": "TPLF"},
)
SAHEL = make_watch(
    {"MLI": ["Malian army", "FAMa", "Malian troops"], "JNIM": ["JNIM"]},
    {"MLI": "Mali", "JNIM": "JNIM"},
)


def casualties(text: str, watch: Watch | None = None) -> list[Casualties]:
    return [f for f in extract(text, watch) if isinstance(f, Casualties)]


def pairs(text: str, watch: Watch | None = None) -> list[tuple[str, int | None]]:
    return sorted(
        ((c.outcome, c.count) for c in casualties(text, watch)), key=lambda p: (p[0], p[1] or 0)
    )


def third_parties(text: str, watch: Watch) -> list[ThirdParty]:
    return [f for f in extract(text, watch) if isinstance(f, ThirdParty)]


def ceasefires(text: str, watch: Watch | None = None) -> list[Ceasefire]:
    return [f for f in extract(text, watch) if isinstance(f, Ceasefire)]


def downings(text: str, watch: Watch | None = None) -> list[Downing]:
    return [f for f in extract(text, watch) if isinstance(f, Downing)]


# --- casualties -------------------------------------------------------------------------------


def test_increment_rides_on_the_total_it_brings() -> None:
    text = (
        "The health ministry said the number of civilians killed in El Obeid increased by 12, "
        "bringing the total number to 148."
    )
    (c,) = casualties(text)
    assert (c.count, c.increment, c.cumulative, c.outcome) == (148, 12, True, "killed")


def test_separate_increment_and_toll() -> None:
    text = "Another 40 people were killed on Tuesday, pushing the death toll to 310."
    found = {c.count: c for c in casualties(text)}
    assert set(found) == {40, 310}
    assert found[310].cumulative and not found[40].cumulative
    assert found[40].increment is None  # a report of its own: the figure is its count


def test_toll_verbs() -> None:
    assert pairs("The death toll from the market bombing in Mogadishu has risen to 28.") == [
        ("killed", 28)
    ]
    (c,) = casualties("The death toll from the market bombing in Mogadishu has risen to 28.")
    assert c.cumulative


def test_attribution_by_verb_and_by_according_to() -> None:
    (a,) = casualties("Yemen's health ministry said 9 fishermen were killed in the strike.")
    assert a.attributed_to == "Yemen's health ministry" and a.category == "civilian"
    (b,) = casualties("According to the UN mission, 23 civilians were wounded in Kherson.")
    assert b.attributed_to == "UN mission" and b.outcome == "wounded"


@pytest.mark.parametrize(
    "text",
    [
        "No casualties were reported after the drone struck a warehouse in Odesa.",
        "There were no deaths, the governor said.",
        "The army captured the town of Kidal after a week of fighting.",
        "Some 90,000 people have been displaced by the fighting in Darfur.",
        "The brigade has about 3,000 troops and 40 tanks.",
        "The convoy delivered 70 tons of food to Hodeidah.",
    ],
)
def test_non_casualties(text: str) -> None:
    assert casualties(text) == []


def test_historical_toll() -> None:
    (c,) = casualties("The 1990s war that left 30,000 dead still shapes the region.")
    assert (c.count, c.historical, c.cumulative) == (30000, True, True)
    (d,) = casualties("A bombing in October 2017 killed more than 500 people in the capital.")
    assert d.historical and d.qualifier == "at_least"


@pytest.mark.parametrize(
    ("text", "outcome", "count", "qualifier"),
    [
        ("Thirty-six soldiers were killed in the ambush near Gao.", "killed", 36, "exact"),
        ("Some 850 fighters were wounded in the offensive.", "wounded", 850, "about"),
        ("More than 20 villagers were abducted from Kagoro.", "captured", 20, "at_least"),
        ("At least 1,000 people were killed in Khartoum.", "killed", 1000, "at_least"),
        ("Between 200 and 400 people were killed in the raid.", "killed", 200, "at_least"),
        ("An estimated 75 civilians died in the siege.", "killed", 75, "about"),
        ("Nearly 300 soldiers are missing after the battle.", "missing", 300, "about"),
        ("Rebels killed nine hundred sixty-three residents.", "killed", 963, "exact"),
    ],
)
def test_numbers_and_qualifiers(text: str, outcome: str, count: int, qualifier: str) -> None:
    (c,) = casualties(text)
    assert (c.outcome, c.count, c.qualifier) == (outcome, count, qualifier)


@pytest.mark.parametrize(
    ("text", "acled"),
    [
        ("Dozens of civilians were killed in the shelling of Kharkiv.", 12),
        ("Hundreds have been killed since the offensive began.", 100),
        ("Tens of soldiers were killed near Bakhmut.", 10),
    ],
)
def test_vague_quantities(text: str, acled: int) -> None:
    (c,) = casualties(text)
    assert (c.count, c.qualifier, c.acled_count) == (None, "vague", acled)


def test_two_parties_in_one_sentence() -> None:
    found = casualties("Five Ukrainian soldiers and 12 Russian troops were killed.", UKRAINE)
    assert sorted((c.party, c.count) for c in found) == [("RUS", 12), ("UKR", 5)]
    assert all(c.outcome == "killed" and c.category == "military" for c in found)


def test_category_carries_through_coordination() -> None:
    found = casualties("One civilian was killed and four wounded in Taiz.")
    assert sorted((c.outcome, c.count, c.category) for c in found) == [
        ("killed", 1, "civilian"),
        ("wounded", 4, "civilian"),
    ]


def test_subsets_are_their_own_reports_and_marked() -> None:
    found = casualties("Nine civilians, including four children, were killed in Sumy.")
    by_count = {c.count: c for c in found}
    assert set(by_count) == {9, 4}
    assert by_count[4].subset and not by_count[9].subset


def test_one_person_described() -> None:
    assert pairs("A journalist was shot dead by gunmen in Mogadishu.") == [("killed", 1)]
    assert pairs("Gunmen killed a village chief in Tillaberi.") == [("killed", 1)]
    assert pairs("The pilot was detained by the rebels.") == [("captured", 1)]


def test_perpetrators_are_not_victims() -> None:
    assert pairs("Around 30 gunmen stormed the village and killed two farmers.") == [("killed", 2)]


def test_killed_and_wounded_lumped_is_not_a_report() -> None:
    assert pairs("Fifty people were killed or wounded in the attack.") == []


def test_repeated_figure_is_one_report() -> None:
    text = "Fourteen soldiers were killed on Sunday. The army confirmed 14 soldiers were killed."
    assert pairs(text) == [("killed", 14)]


def test_watch_side_is_filled() -> None:
    watch = load_watch(NK_WATCH)
    (c,) = casualties("Eleven Azerbaijani soldiers were killed near Fuzuli.", watch)
    assert (c.party, c.side) == ("AZE", "azerbaijani")


# --- ceasefires -------------------------------------------------------------------------------


def test_ceasefire_called_for_has_no_broker() -> None:
    (c,) = ceasefires("The United Nations called for an immediate ceasefire in Gaza.")
    assert (c.status, c.broker) == ("called_for", None)


def test_ceasefire_proposed_by_one_side() -> None:
    (c,) = ceasefires("Qatar proposed a 30-day truce between the army and the RSF.", SUDAN)
    assert (c.status, c.broker) == ("proposed", "QAT")


def test_ceasefire_agreed_with_two_brokers() -> None:
    text = (
        "The army and the RSF signed a ceasefire brokered by Saudi Arabia and the United States "
        "in Jeddah."
    )
    found = {(c.status, c.broker) for c in ceasefires(text, SUDAN)}
    assert found == {("agreed", "SAU"), ("agreed", "USA")}


def test_ceasefire_violated_and_collapsed() -> None:
    assert {
        c.status for c in ceasefires("Both sides accused each other of violating the truce.")
    } == {"violated"}
    found = {(c.status, c.broker) for c in ceasefires("The Turkish-brokered truce collapsed.")}
    assert ("collapsed", "TUR") in found and "violated" not in {s for s, _ in found}


def test_ceasefire_no_violations() -> None:
    assert not [
        c
        for c in ceasefires("Monitors reported no violations of the ceasefire.")
        if c.status == "violated"
    ]


def test_ceasefire_count() -> None:
    (c, *_) = ceasefires("Three ceasefires brokered by Russia failed within days.")
    assert c.count == 3


# --- downings ---------------------------------------------------------------------------------


def test_downing_claim_and_owner() -> None:
    (d,) = downings(
        "The Houthis said they shot down an American MQ-9 Reaper drone over Marib.", YEMEN
    )
    assert (d.asset, d.owner, d.claimed_by, d.denied) == ("drone", "USA", "HOUTHI", False)


def test_downing_denied_by_owner() -> None:
    text = (
        "Ukraine's air force said it shot down a Russian Su-34 bomber near Kharkiv. "
        "Moscow denied the claim."
    )
    (d,) = downings(text, UKRAINE)
    assert (d.asset, d.owner, d.claimed_by, d.denied) == ("aircraft", "RUS", "UKR", True)


def test_passive_downing_takes_the_subject_not_the_weapon() -> None:
    (d,) = downings("A Malian army helicopter was shot down by a drone near Kidal.", SAHEL)
    assert (d.asset, d.owner) == ("helicopter", "MLI")


def test_a_counted_interception_is_one_report_with_its_count() -> None:
    found = downings("Israel's military said its air defences intercepted two rockets.", GAZA)
    assert [(d.asset, d.count) for d in found] == [("missile", 2)]
    many = downings("Air defences shot down 98 drones and six missiles overnight, the army said.")
    assert sorted((d.asset, d.count) for d in many) == [("drone", 98), ("missile", 6)]


def test_crash_is_not_a_downing() -> None:
    assert downings("A transport plane crashed near Juba because of bad weather.") == []


# --- third parties ----------------------------------------------------------------------------


def tp_set(text: str, watch: Watch) -> set[tuple[str, str, str | None]]:
    return {(t.actor, t.kind, t.supports) for t in third_parties(text, watch)}


def test_arms_denied() -> None:
    (t,) = third_parties("The UAE has denied sending weapons to the RSF.", SUDAN)
    assert (t.actor, t.kind, t.supports, t.stance) == ("ARE", "arms", "RSF", "denied")


def test_arms_confirmed_by_the_supplier() -> None:
    text = "The United States announced a new package of weapons for Ukraine."
    (t,) = third_parties(text, UKRAINE)
    assert (t.actor, t.kind, t.supports, t.stance) == ("USA", "arms", "UKR", "confirmed")


def test_mediation_by_two_states() -> None:
    text = "Egypt and Qatar mediated the talks between Israel and Hamas."
    assert tp_set(text, GAZA) == {("EGY", "mediation", None), ("QAT", "mediation", None)}


def test_hosting_talks_is_mediation() -> None:
    text = "China hosted talks between the junta and the Three Brotherhood Alliance in Kunming."
    assert tp_set(text, MYANMAR) == {("CHN", "mediation", None)}


def test_backing_is_political() -> None:
    assert tp_set("Iran-backed Houthi rebels fired missiles at ships.", YEMEN) == {
        ("IRN", "political", "HOUTHI")
    }


def test_foreign_group_fighters() -> None:
    text = "Mercenaries from the Wagner Group fought alongside Malian troops near Kidal."
    assert ("WAGNER", "fighters", "MLI") in tp_set(text, SAHEL)  # "alongside" says whom
    hired = "Mali's junta has relied on mercenaries from the Wagner Group since 2021."
    assert tp_set(hired, SAHEL) == {("WAGNER", "fighters", "MLI")}
    assert not {a for a, _, _ in tp_set(text, SAHEL)} & {"MLI", "RUS"}


def test_denial_by_the_actor_wins() -> None:
    text = "Eritrea denied that its troops were fighting in Tigray alongside Ethiopian forces."
    (t,) = third_parties(text, TIGRAY)
    assert (t.actor, t.kind, t.supports, t.stance) == ("ERI", "military", "ETH", "denied")


def test_alleged_by_an_opposing_party() -> None:
    text = "Ukrainian officials claimed that Belarus sent troops to help Russian forces."
    (t,) = third_parties(text, UKRAINE)
    assert (t.actor, t.stance) == ("BLR", "alleged")


@pytest.mark.parametrize(
    "text",
    [
        "Talks between the army and the RSF were held in Doha, Qatar.",
        "The Syrian Observatory for Human Rights said 14 RSF fighters were killed.",
        "Protesters gathered outside the U.S. embassy in Nicosia.",
        "The ministers met in Riga, Latvia, on Wednesday.",
    ],
)
def test_places_and_reporters_are_not_third_parties(text: str) -> None:
    assert third_parties(text, SUDAN) == []


def test_no_third_parties_without_a_watch() -> None:
    assert not [
        f for f in extract("Iran-backed Houthi rebels fired missiles.") if f.type == "third_party"
    ]


def test_diplomacy_meeting_participants() -> None:
    found = [
        f for f in extract("Blinken met Chinese officials in Beijing.") if isinstance(f, Diplomacy)
    ]
    assert found and found[0].kind == "meeting" and "CHN" in found[0].participants


# --- seeds --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds() -> dict[str, list]:
    watch = load_watch(NK_WATCH)
    return {p.name[:3]: extract(p.read_text(encoding="utf-8"), watch) for p in SEEDS.glob("*.txt")}


def test_seed_002_casualties(seeds: dict[str, list]) -> None:
    cas = [f for f in seeds["002"] if isinstance(f, Casualties)]
    servicemen = [c for c in cas if c.count == 84]
    assert len(servicemen) == 1
    c = servicemen[0]
    assert (c.party, c.side, c.category, c.outcome, c.qualifier, c.cumulative) == (
        "NKR",
        "armenian",
        "military",
        "killed",
        "at_least",
        True,
    )
    got = {(c.party, c.category, c.outcome, c.count) for c in cas}
    assert ("AZE", "civilian", "killed", 14) in got
    assert ("AZE", "civilian", "wounded", 46) in got


def test_seed_000_increment_is_one_report(seeds: dict[str, list]) -> None:
    cas = [f for f in seeds["000"] if isinstance(f, Casualties)]
    totals = [c for c in cas if c.count == 963]
    assert len(totals) == 1 and not [c for c in cas if c.count == 36]
    c = totals[0]
    assert (c.party, c.side, c.category, c.outcome, c.cumulative, c.increment) == (
        "ARM",
        "armenian",
        "military",
        "killed",
        True,
        36,
    )
    dozens = [c for c in cas if c.qualifier == "vague"]
    assert dozens and dozens[0].count is None and dozens[0].acled_count == 12


def test_seed_001_overall_toll(seeds: dict[str, list]) -> None:
    cas = [f for f in seeds["001"] if isinstance(f, Casualties) and f.count == 1000]
    assert len(cas) == 1
    c = cas[0]
    assert (c.party, c.category, c.outcome, c.cumulative) == (None, "unknown", "killed", True)


def test_seed_ceasefires(seeds: dict[str, list]) -> None:
    s001 = {(c.status, c.broker, c.count) for c in seeds["001"] if isinstance(c, Ceasefire)}
    assert ("collapsed", "RUS", 2) in s001
    s000 = {(c.status, c.broker) for c in seeds["000"] if isinstance(c, Ceasefire)}
    assert ("collapsed", "RUS") in s000
    s002 = {(c.status, c.broker) for c in seeds["002"] if isinstance(c, Ceasefire)}
    assert ("called_for", None) in s002


def test_seed_third_parties(seeds: dict[str, list]) -> None:
    tps = [f for f in seeds["002"] if isinstance(f, ThirdParty)]
    actors = {t.actor for t in tps}
    assert {"TUR", "SYR"} <= actors
    assert not actors & {"ARM", "AZE", "NKR", "LVA", "CYP", "SOHR"}
    assert ("TUR", "political", "AZE") in {(t.actor, t.kind, t.supports) for t in tps}
    military = [t for t in tps if t.actor == "TUR" and t.kind == "military"]
    assert military and all(t.stance == "denied" for t in military)
    syrians = [t for t in tps if t.actor == "SYR"]
    assert syrians and syrians[0].kind == "fighters" and syrians[0].supports == "AZE"
    for facts in seeds.values():
        assert not {f.actor for f in facts if isinstance(f, ThirdParty)} & {"ARM", "AZE", "NKR"}


def test_seed_downings(seeds: dict[str, list]) -> None:
    d001 = [d for d in seeds["001"] if isinstance(d, Downing)]
    assert any(
        d.asset == "aircraft" and d.owner == "ARM" and d.claimed_by == "AZE" and d.denied
        for d in d001
    )
    d000 = [d for d in seeds["000"] if isinstance(d, Downing)]
    assert any(d.asset == "drone" and d.owner == "ARM" and d.claimed_by == "AZE" for d in d000)


# --- properties -----------------------------------------------------------------------------------

VOCAB = [
    "killed",
    "wounded",
    "at least",
    "some",
    "dozens of",
    "12",
    "1,000",
    "thirty-six",
    "soldiers",
    "civilians",
    "Turkey",
    "Azerbaijani",
    "said",
    "denied",
    "ceasefire",
    "brokered",
    "shot down",
    "a drone",
    "the",
    ".",
    ",",
    "including",
    "increased by",
    "bringing the total to",
    "(",
    ")",
    "Russian-brokered",
    "Wagner",
    "U.S.",
    "\n",
    "backed by",
    "sent fighters to",
    "truce",
    "collapsed",
    "death toll",
    "rose to",
    "Hamas",
    "Israel",
    "between",
    "and",
    "were",
    "was",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    for fact in extract(text, UKRAINE):
        _check_fact(text, fact)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCAB), max_size=40).map(" ".join))
def test_conflict_like_text_gives_valid_facts(text: str) -> None:
    for watch in (None, load_watch(NK_WATCH)):
        facts = extract(text, watch)
        assert facts == extract(text, watch)  # deterministic
        for fact in facts:
            _check_fact(text, fact)


def _check_fact(text: str, fact: object) -> None:
    start, end = fact.span  # type: ignore[attr-defined]
    assert 0 <= start < end <= len(text)
    assert text[start:end] == fact.quote  # type: ignore[attr-defined]
    if isinstance(fact, Casualties):
        assert fact.count is None or fact.count >= 0
        assert fact.increment is None or fact.increment >= 0


def test_normalize_swallows_bad_input() -> None:
    for text in ("", None, "\x00" * 10):
        found = normalize(text)  # type: ignore[arg-type]
        assert found.facts == [] and found.problems == []


def test_facts_in_text_order() -> None:
    text = (
        "Qatar proposed a truce. Three soldiers were killed in Omdurman. "
        "The army said it shot down an RSF drone."
    )
    starts = [f.span[0] for f in extract(text, SUDAN)]
    assert starts == sorted(starts) and len(starts) >= 3


def test_every_registered_reader_keeps_the_contract() -> None:
    fact_types = {"casualties", "ceasefire", "third_party", "downing", "diplomacy"}
    assert {r.topic for r in READERS} == fact_types
    for reader in READERS:
        assert isinstance(reader, FactReader)
        assert reader.triggers and all(t == t.lower() for t in reader.triggers)
        assert reader.facts([], UKRAINE) == [] and reader.facts([], None) == []
    text = "Seven soldiers were killed. Turkey-brokered talks on a truce collapsed."
    for fact in extract(text, UKRAINE):
        assert fact.type in {r.topic for r in READERS}


def test_every_fact_names_the_pattern_that_read_it() -> None:
    texts = [p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")] + [
        "Qatar proposed a truce. Three soldiers were killed in Omdurman. "
        "The army said it shot down an RSF drone. A nurse died of her wounds.",
    ]
    seen: set[str] = set()
    for text in texts:
        for fact in extract(text, SUDAN) + extract(text, load_watch(NK_WATCH)):
            assert fact.pattern and fact.pattern.startswith(f"{fact.type}."), fact
            seen.add(fact.pattern)
    assert len(seen) >= 8  # the id says which of the patterns fired, not only the topic


def test_facts_stored_before_patterns_still_read() -> None:
    v1 = {
        "watch": "w",
        "article": {"article_id": "a", "url": "u"},
        "fact": {"type": "downing", "quote": "q", "span": [0, 1], "asset": "drone"},
    }
    event = parse_event_data("FactReported", 1, v1)
    assert isinstance(event, FactReported) and event.fact.pattern is None


# --- errors that reached alerts (issue 13, item 5): one sentence of our own each --------------


def test_a_model_or_unit_number_is_not_a_count() -> None:
    (hit,) = downings("The army said it shot down a Hermes 450 drone near Kassala.", SUDAN)
    assert hit.count == 1
    (two,) = downings("The RSF said it shot down two Shahed 136 drones over Atbara.", SUDAN)
    assert two.count == 2
    text = "Flight 752 crashed after take-off and all 176 people on board were killed."
    assert pairs(text) == [("killed", 176)]
    text = "Brigade 17 lost 30 soldiers near the bridge, and a Boeing 737 was hit on the ground."
    assert pairs(text) == [("killed", 30)]


def test_a_later_denial_of_something_else_leaves_a_downing_claimed() -> None:
    claim = "The RSF said it shot down an army Antonov over El Fasher. "
    other = downings(claim + "The army denied the RSF claim that its jets bombed a market.", SUDAN)
    assert [(d.owner, d.claimed_by, d.denied, d.stance) for d in other] == [
        ("SAF", "RSF", False, "claimed")
    ]
    for denial in (
        "The army denied that any of its aircraft had been lost.",
        "The army dismissed the claim as propaganda.",
        "An army spokesman said the claim from the RSF was false.",
    ):
        (hit,) = downings(claim + denial, SUDAN)
        assert hit.denied and hit.stance == "denied", denial


def test_a_closing_attribution_names_the_speaker_not_the_subject() -> None:
    (arms,) = third_parties(
        "Egypt has supplied the army with drones and ammunition, Western diplomats said.", SUDAN
    )
    assert (arms.actor, arms.kind, arms.supports) == ("EGY", "arms", "SAF")
    assert arms.attributed_to == "Western diplomats" and arms.stance == "reported"
    (toll,) = casualties(
        "The army shelled RSF positions in Omdurman, killing 40 fighters, the group said.", SUDAN
    )
    assert toll.count == 40 and toll.attributed_to == "the group"


@pytest.mark.parametrize(
    "weapons", ["six attack helicopters", "Mi-24 gunships", "armoured vehicles", "warplanes"]
)
def test_helicopters_gunships_and_vehicles_are_arms(weapons: str) -> None:
    found = third_parties(f"Russia delivered {weapons} to the Sudanese army last month.", SUDAN)
    assert [(f.actor, f.kind, f.supports) for f in found] == [("RUS", "arms", "SAF")]


# --- tolls a reader would call the same (issue 13, item 2) ------------------------------------

SUDAN_SIDES = SUDAN.model_copy(update={"sides": {"army": ["SAF"], "rsf": ["RSF"]}})


@pytest.mark.parametrize(
    ("text", "category"),
    [
        (
            "The death toll among civilians in El Fasher has risen to 134, officials said.",
            "civilian",
        ),
        ("The civilian death toll in the besieged city rose to 210.", "civilian"),
        ("The toll of civilian deaths reached 88 on Sunday.", "civilian"),
        ("The death toll from the shelling has risen to 134 civilians.", "civilian"),
        ("The number of soldiers killed since May has risen to 45.", "military"),
        ("The death toll has risen to 300, medics in the city said.", "unknown"),
    ],
)
def test_a_toll_counts_the_people_named_on_it(text: str, category: str) -> None:
    (toll,) = casualties(text, SUDAN_SIDES)
    assert toll.cumulative and toll.outcome == "killed" and toll.category == category


def series(fact: Casualties) -> tuple[str | None, str, str]:
    return (fact.side, fact.category, fact.outcome)


def test_a_group_speaking_of_its_fighters_joins_that_groups_toll() -> None:
    (first,) = casualties(
        "The RSF has lost 400 fighters since April, a commander said.", SUDAN_SIDES
    )
    (later,) = casualties(
        "Fighting between the army and the RSF went on around El Fasher. "
        "The group said 150 of its fighters have been killed since April.",
        SUDAN_SIDES,
    )
    assert series(first) == series(later) == ("rsf", "military", "killed")
    assert later.attributed_to == "The group" and later.party == "RSF"
    (other,) = casualties(
        "The army shelled RSF positions in Omdurman, and the group said 40 of its fighters died.",
        SUDAN_SIDES,
    )
    assert other.party == "RSF"  # the group named last before "the group", not the army


def test_a_toll_for_a_city_names_the_place() -> None:
    (city,) = casualties("The death toll among civilians in El Fasher has risen to 134.", SUDAN)
    assert city.place == "El Fasher"
    (town,) = casualties("Five civilians were killed in the town of Tawila on Monday.", SUDAN)
    assert town.place == "Tawila"
    (capital,) = casualties("Twelve civilians were killed near Khartoum overnight.", SUDAN)
    assert capital.place == "Khartoum"
    for text in (
        "Twelve civilians were killed in Sudan on Monday.",  # a country: the watch's own toll
        "Twelve civilians were killed in April, the RSF said.",
        "Twelve civilians were killed; fighting went on in Omdurman.",  # another clause
    ):
        assert [c.place for c in casualties(text, SUDAN)] == [None], text


def test_explain_records_what_each_reader_fired_and_vetoed() -> None:
    text = (
        "Both sides said there were no violations of the Saudi-brokered truce. "
        "The army said it had not shot down the drone. Egypt sent weapons to the RSF."
    )
    found, sentences = explain(text, SUDAN)
    assert found.facts == extract(text, SUDAN)
    notes = [(n.pattern, n.verdict) for s in sentences for n in s.notes]
    assert ("ceasefire.violated-cue", "vetoed") in notes  # "no violations"
    assert any(p.startswith("ceasefire.") and "agreed" in p for p, v in notes if v == "fired")
    assert ("downing.verb", "vetoed") in notes  # "had not shot down"
    assert ("third_party.supplies-arms", "fired") in notes
    assert all(f.span == (s.start, s.end) for s in sentences for f in s.facts)


# --- a year is "earlier" only relative to the article's own date ---------------------------------

YEAR_SENTENCES = [
    "At least {n} soldiers were killed in the {y} shelling of the port, officials said.",
    "Some {n} civilians died during the {y} offensive on the valley, the ministry said.",
    "More than {n} people were killed in the {y} war, according to a rights group.",
    "About {n} fighters were killed in the {y0}-{y} conflict, the monitor said.",
]


@pytest.mark.parametrize("template", YEAR_SENTENCES)
@pytest.mark.parametrize("offset", [-3, -1, 0])
def test_a_named_year_is_historical_only_before_the_articles_own(
    template: str, offset: int
) -> None:
    from datetime import UTC, datetime

    for year in (1994, 2011, 2026):
        sentence = template.format(n=17 + year % 40, y=year + offset, y0=year + offset - 2)
        published = datetime(year, 7, 1, tzinfo=UTC)
        [dated] = [f for f in extract(sentence, published=published) if f.type == "casualties"]
        [undated] = [f for f in extract(sentence) if f.type == "casualties"]
        assert dated.historical is (offset < 0), (sentence, year)
        # With no date to compare with, a year named this way is taken as an earlier one.
        assert undated.historical is True, sentence


def test_the_daemon_path_passes_the_feed_entrys_date_to_the_reader() -> None:
    from datetime import UTC, datetime

    from monitor.extract.pool import ExtractJob
    from monitor.extract.worker import extract_article

    page = (
        b"<html><body><article><p>At least 40 Varan soldiers were killed in the 2025 shelling "
        b"of the port, officials said on Monday, as fighting went on in the hills nearby.</p>"
        b"<p>Aid groups said the roads into the port had been closed for a week.</p>"
        b"</article></body></html>"
    )
    watch = make_watch({"VAR": ["Varan", "Varania"]})

    def historical(published: datetime) -> bool:
        job = ExtractJob(
            body=page,
            url="http://wire.example/a",
            content_type="text/html",
            metadata=False,
            published=published,
            watches=[watch],
            budget=5,
        )
        [found] = extract_article(job).found
        [fact] = [f for f in found.facts if f.type == "casualties"]
        return fact.historical

    assert historical(datetime(2025, 3, 2, tzinfo=UTC)) is False
    assert historical(datetime(2027, 3, 2, tzinfo=UTC)) is True
