"""The gazetteer: names, demonyms, capitals and organisations to actor codes; watch precedence."""

from __future__ import annotations

import pytest

from monitor.extract.gazetteer import find_mentions, home_states, lookup, resolve_actor, watch_key
from tests.conftest import make_watch


@pytest.mark.parametrize(
    ("phrase", "code"),
    [
        ("Azeri officials", "AZE"),
        ("Turkish drones", "TUR"),
        ("Ankara said on Monday", "TUR"),
        ("Kyiv rejected the offer", "UKR"),
        ("an Emirati delegation", "ARE"),
        ("Burkinabe soldiers", "BFA"),
        ("the U.S. envoy", "USA"),
        ("the United States", "USA"),
        ("Britain and France", "GBR"),
        ("the Minsk Group", "MINSK"),
        ("the OSCE chairman", "OSCE"),
        ("the African Union mission", "AU"),
        ("Wagner Group fighters", "WAGNER"),
        ("Rwandan troops", "RWA"),
        ("Palestinians", "PSE"),
        ("the Democratic Republic of Congo", "COD"),
        ("South Sudanese officials", "SSD"),
        ("Sudanese officials", "SDN"),
        ("Papua New Guinea", "PNG"),
        ("Nigerien troops", "NER"),
        ("Nigerian troops", "NGA"),
    ],
)
def test_names_demonyms_and_capitals_resolve_to_codes(phrase: str, code: str) -> None:
    assert resolve_actor(phrase) == code


def test_longest_name_wins() -> None:
    mentions = find_mentions("South Sudan and Sudan")
    assert [m.code for m in mentions] == ["SSD", "SDN"]


@pytest.mark.parametrize("phrase", ["Latin American leaders", "the Red Sea", "the Soviet Union"])
def test_blocked_phrases_name_no_actor(phrase: str) -> None:
    assert resolve_actor(phrase) is None


def test_reporters_are_names_but_not_actors() -> None:
    mentions = find_mentions("the Syrian Observatory for Human Rights said")
    assert len(mentions) == 1 and not mentions[0].is_actor
    assert resolve_actor("the Syrian Observatory for Human Rights") is None


def test_lower_case_words_do_not_match_acronyms() -> None:
    assert find_mentions("it is what it is, and the us and them") == []


def test_watch_aliases_win_over_the_gazetteer() -> None:
    watch = make_watch({"NKR": ["separatists", "Karabakh"], "AZE": ["Azeri"]})
    mentions = find_mentions("Separatists in Karabakh said Azeri troops attacked", watch)
    assert [(m.code, m.party) for m in mentions] == [
        ("NKR", True),
        ("NKR", True),
        ("AZE", True),
    ]


def test_watch_alias_overrides_a_clashing_gazetteer_name() -> None:
    watch = make_watch({"ISSP": ["Islamic State", "ISGS"], "MLI": ["Malian army"]})
    codes = [m.code for m in find_mentions("The Islamic State claimed the attack", watch)]
    assert codes == ["ISSP"]
    assert [m.code for m in find_mentions("The Islamic State claimed the attack")] == ["ISIS"]


def test_acronym_alias_is_case_sensitive() -> None:
    watch = make_watch({"ISIS": ["IS", "Daesh"]})
    assert [m.code for m in find_mentions("This is where IS fighters hid", watch)] == ["ISIS"]


def test_party_names_drop_parentheticals_and_keep_capitalised_parts() -> None:
    watch = make_watch({"LNA": []}, names={"LNA": "Libyan National Army (Haftar)"})
    codes = [m.code for m in find_mentions("Haftar's Libyan National Army advanced", watch)]
    assert codes == ["LNA", "LNA"]


def test_home_states_come_from_party_names_only() -> None:
    watch = make_watch(
        {"SAF": ["Sudanese army"], "HEZBOLLAH": ["Iran-backed Hezbollah"]},
        names={"SAF": "Sudanese Armed Forces", "HEZBOLLAH": "Hezbollah"},
    )
    home = home_states(watch_key(watch))
    assert "SDN" in home
    assert "IRN" not in home  # a backer named in an alias is still an outsider


def test_lookup_gives_kind_and_form() -> None:
    entry = lookup("Turkish")
    assert entry is not None and (entry.code, entry.kind, entry.form) == ("TUR", "state", "adj")
    capital = lookup("Ankara")
    assert capital is not None and capital.form == "capital"
    assert lookup("Nowhereland") is None
