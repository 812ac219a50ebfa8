"""A behavioural test suite for the extractor, generated from templates (the CheckList method).

Each capability crosses a few templates with the lexicons of `lexicon.py` into many sentences,
each with the facts a labeller following CONVENTIONS would write down. Three kinds of test:

- MFT (minimum functionality): one sentence, its expected facts;
- INV (invariance): a group of sentences that differ only in a country name, a number or a
  victim noun; every member must give what the first gives, once the swapped value is replaced
  by a placeholder;
- DIR (directional): a base sentence changed by one cue (an earlier war, a running total, an
  added negation), with the expected facts after the change.

Fillers are drawn with a fixed seed, so the suite is the same on every run: failure rates can be
compared across commits (the ratchet in `ceilings.json`).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from monitor.events import Casualties, Ceasefire, Downing, Fact, ThirdParty
from monitor.extract.normalize import extract
from monitor.watches import Party, Watch
from tests.behaviour import lexicon as lx
from tests.behaviour.lexicon import Country, KillVerb, Noun, cap

# --- what a case expects: views of the facts -------------------------------------------------


def _casualties(facts: list[Fact]) -> list[Casualties]:
    return [f for f in facts if isinstance(f, Casualties)]


def _counted(c: Casualties) -> bool:
    return not (c.cumulative or c.historical or c.subset)


def view_cas(facts: list[Fact]) -> tuple:
    """(outcome, count, qualifier) of every current report, sorted: the dev set's scoring."""
    return tuple(
        sorted(
            ((c.outcome, c.count, c.qualifier) for c in _casualties(facts) if not c.historical),
            key=repr,
        )
    )


def view_killed(facts: list[Fact]) -> int:
    """People the passage says were killed in this incident: ACLED's passage-level figure."""
    return sum(
        (c.count if c.count is not None else c.acled_count or 0)
        for c in _casualties(facts)
        if c.outcome == "killed" and _counted(c)
    )


def view_cat(facts: list[Fact]) -> tuple:
    return tuple(sorted({(c.outcome, c.category) for c in _casualties(facts)}))


def view_party(facts: list[Fact]) -> tuple:
    return tuple(sorted({(c.outcome, c.count, c.party) for c in _casualties(facts)}, key=repr))


def view_cum(facts: list[Fact]) -> tuple:
    """(count, cumulative, historical) of every killed report."""
    return tuple(
        sorted({(c.count, c.cumulative, c.historical) for c in _casualties(facts)}, key=repr)
    )


def view_speaker(facts: list[Fact]) -> bool:
    cas = _casualties(facts)
    return bool(cas) and all(c.attributed_to for c in cas)


def view_cf(facts: list[Fact]) -> tuple:
    return tuple(
        sorted({(f.status, f.broker) for f in facts if isinstance(f, Ceasefire)}, key=repr)
    )


def view_cf_status(facts: list[Fact]) -> tuple:
    return tuple(sorted({f.status for f in facts if isinstance(f, Ceasefire)}))


def view_tp(facts: list[Fact]) -> tuple:
    return tuple(
        sorted(
            {(f.actor, f.kind, f.supports, f.stance) for f in facts if isinstance(f, ThirdParty)},
            key=repr,
        )
    )


def view_tp_actors(facts: list[Fact]) -> tuple:
    return tuple(sorted({f.actor for f in facts if isinstance(f, ThirdParty)}))


def view_dn(facts: list[Fact]) -> tuple:
    return tuple(
        sorted(
            {(f.asset, f.owner, f.claimed_by, f.denied) for f in facts if isinstance(f, Downing)},
            key=repr,
        )
    )


VIEWS: dict[str, Callable[[list[Fact]], Any]] = {
    "cas": view_cas,
    "killed": view_killed,
    "cat": view_cat,
    "party": view_party,
    "cum": view_cum,
    "speaker": view_speaker,
    "cf": view_cf,
    "cf_status": view_cf_status,
    "tp": view_tp,
    "tp_actors": view_tp_actors,
    "dn": view_dn,
}


@dataclass(frozen=True)
class Case:
    capability: str
    test: str  # MFT, INV or DIR
    text: str
    expect: dict[str, Any] = field(default_factory=dict)  # view name -> expected value
    watch: tuple[Country, Country] | None = None
    # INV: members of a group must agree on `views` once `canon` values become placeholders.
    group: str | None = None
    canon: tuple[tuple[Any, str], ...] = ()
    views: tuple[str, ...] = ()


def watch_of(pair: tuple[Country, Country]) -> Watch:
    a, b = pair
    return Watch(
        id="behaviour",
        name=f"{a.name}-{b.name}",
        parties={
            a.code: Party(name=a.name, aliases=[a.demonym]),
            b.code: Party(name=b.name, aliases=[b.demonym]),
        },
    )


# --- shared fillers ---------------------------------------------------------------------------

SMALL = (2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 17, 20, 23, 31, 46, 58, 75)


def _number(rng: random.Random, pool: tuple[int, ...] = SMALL) -> tuple[int, str]:
    n = rng.choice(pool)
    return n, lx.render_number(n, rng.choice(("digits", "words")))


def _place(rng: random.Random) -> str:
    return rng.choice(lx.PLACES).format(country=rng.choice(lx.COUNTRIES).name)


def _when(rng: random.Random) -> str:
    return rng.choice(lx.TIMES)


def _noun(rng: random.Random, pool: list[Noun] | None = None) -> Noun:
    return rng.choice(pool or lx.VICTIMS)


def _sentence(text: str) -> str:
    """Spaces tidied, a full stop at the end, every sentence started with a capital."""
    text = " ".join(text.split())
    return re.sub(r"(?<=[.!?] )[a-z]", lambda m: m.group(0).upper(), cap(text.rstrip(".") + "."))


def _killed(n: int | None, qualifier: str = "exact") -> tuple:
    return (("killed", n, qualifier),)


# --- verbs of killing in every voice and tense ------------------------------------------------


def _kill_frames(verb: KillVerb) -> Iterator[tuple[str, str]]:
    """(frame, voice) for a transitive killing verb: {v} is the victims, {p} the killers."""
    part = f" {verb.particle}" if verb.particle else ""
    for pp in lx.participles(verb.lemma):
        yield f"{{v}} were {pp}{part} {{where}} {{when}}", "passive past"
        yield f"{{v}} have been {pp}{part} {{where}}", "passive perfect"
        yield f"{{v}} had been {pp}{part} {{where}} before help arrived", "passive pluperfect"
        yield f"{{v}} were reportedly {pp}{part} {{where}}", "passive with adverb"
        yield f"{{v}} {pp}{part} {{where}}", "headline passive"
        yield f"{{v}} were {pp}{part} by {{p_low}} {{where}} {{when}}", "passive with agent"
        yield f"{{p}} have {pp}{part} {{v}} {{where}}", "active perfect"
    for past in lx.verb_forms(verb.lemma, "VBD"):
        yield (
            f"{{p}} {past}{part} {{v}} {{where}} {{when}}"
            if verb.movable
            else (f"{{p}} {past} {{v}}{part} {{where}} {{when}}"),
            "active past",
        )
        if verb.movable:
            yield f"{{p}} {past} {{v}}{part} {{where}}", "active past, particle after"
    vbp = lx.verb_form(verb.lemma, "VBP")
    yield f"{{p}} {vbp} {{v}}{part} {{where}}", "headline present"
    ger = lx.verb_form(verb.lemma, "VBG")
    yield f"{{p}} raided a village {{where}} {{when}}, {ger} {{v}}{part}", "participle clause"


def _fill_kill(rng: random.Random, frame: str, victims: str, perp: str | None = None) -> str:
    perp = perp or rng.choice(lx.PERPETRATORS)
    return _sentence(
        frame.format(v=victims, p=perp, p_low=perp.lower(), where=_place(rng), when=_when(rng))
    )


def kill_cases(capability: str, verbs: tuple[KillVerb, ...], per_frame: int) -> list[Case]:
    rng = random.Random(capability)
    out = []
    for verb in verbs:
        for frame, _voice in _kill_frames(verb):
            for _ in range(per_frame):
                n, shown = _number(rng)
                noun = _noun(rng)
                text = _fill_kill(rng, frame, f"{shown} {noun.plural}")
                out.append(Case(capability, "MFT", text, {"cas": _killed(n)}))
    return out


def death_phrase_cases(per_frame: int) -> list[Case]:
    rng = random.Random("death_phrases")
    forms = {
        "died": lx.verb_form("die", "VBD"),
        "died_pp": lx.participles("die")[0],
        "succumbed": lx.verb_form("succumb", "VBD"),
        "lost": lx.verb_form("lose", "VBD"),
        "lost_pp": lx.participles("lose")[0],
        "perished": lx.verb_form("perish", "VBD"),
    }
    out = []
    for frame in lx.DEATH_FRAMES:
        for _ in range(per_frame):
            n, shown = _number(rng)
            noun = _noun(rng)
            text = _sentence(frame.format(v=f"{shown} {noun.plural}", **forms) + f" {_place(rng)}")
            out.append(Case("death_phrases", "MFT", text, {"cas": _killed(n)}))
    return out


# --- numbers, qualifiers, nouns -----------------------------------------------------------------


def number_cases() -> list[Case]:
    rng = random.Random("numbers")
    styles: list[tuple[str, tuple[int, ...]]] = [
        ("digits", (2, 5, 9, 13, 27, 64, 150, 312)),
        ("digits", (1250, 2400, 10500)),
        ("words", (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 19, 20, 30, 40, 50, 60)),
        ("words", (21, 23, 34, 45, 57, 68, 72, 86, 99)),  # hyphenated
        ("words", (100, 200, 300)),
    ]
    frames = (
        "{v} were killed {where}",
        "{p} killed {v} {where} {when}",
        "{p} attacked a market {where}, killing {v}",
    )
    out = []
    for style, pool in styles:
        for n in pool:
            for frame in frames:
                noun = _noun(rng)
                victims = f"{lx.render_number(n, style)} {noun.plural}"
                out.append(
                    Case("numbers", "MFT", _fill_kill(rng, frame, victims), {"cas": _killed(n)})
                )
    return out


def qualifier_cases(per: int) -> list[Case]:
    rng = random.Random("qualifiers")
    frames = ("{v} were killed {where}", "{p} killed {v} {where} {when}")
    out = []
    for word, reading in lx.QUALIFIERS:
        for frame in frames:
            for _ in range(per):
                n, shown = _number(rng, (12, 20, 35, 40, 60, 100, 250))
                victims = f"{word} {shown} {_noun(rng).plural}"
                out.append(
                    Case(
                        "qualifiers",
                        "MFT",
                        _fill_kill(rng, frame, victims),
                        {"cas": _killed(n, reading)},
                    )
                )
    for word in lx.VAGUE:
        for frame in frames:
            for _ in range(per):
                victims = f"{word} {_noun(rng).plural}"
                out.append(
                    Case(
                        "qualifiers",
                        "MFT",
                        _fill_kill(rng, frame, victims),
                        {"cas": _killed(None, "vague")},
                    )
                )
    return out


def category_cases() -> list[Case]:
    rng = random.Random("victim_category")
    out = []
    for noun in lx.VICTIMS:
        for frame in ("{v} were killed {where}", "{p} killed {v} {where} {when}"):
            _, shown = _number(rng)
            text = _fill_kill(rng, frame, f"{shown} {noun.plural}")
            out.append(Case("victim_category", "MFT", text, {"cat": (("killed", noun.category),)}))
        text = _fill_kill(rng, "{v} was killed {where}", lx.article(noun.singular))
        out.append(Case("victim_category", "MFT", text, {"cat": (("killed", noun.category),)}))
    # one person named by title: the force served in decides ("the police chief")
    for title, category in lx.TITLED:
        for frame in ("the {v} was killed {where}", "{p} shot dead the {v} {where}"):
            text = _fill_kill(rng, frame, title)
            out.append(Case("victim_category", "MFT", text, {"cat": (("killed", category),)}))
    return out


# --- people without numerals --------------------------------------------------------------------


def _any_kill(rng: random.Random) -> KillVerb:
    return rng.choice((lx.PLAIN_KILL, lx.PLAIN_KILL, *lx.KILL_PHRASES))


def _one_kill(rng: random.Random) -> KillVerb:
    """A killing verb that can take one victim ("massacred" needs many)."""
    return rng.choice(
        (lx.PLAIN_KILL, lx.PLAIN_KILL, *(v for v in lx.KILL_PHRASES if v.lemma != "massacre"))
    )


def _pp(verb: KillVerb, rng: random.Random) -> str:
    part = f" {verb.particle}" if verb.particle else ""
    return rng.choice(lx.participles(verb.lemma)) + part


def singular_cases(per: int) -> list[Case]:
    rng = random.Random("singular_victims")
    out = []
    for _ in range(per):
        noun = _noun(rng)
        verb = _one_kill(rng)
        for text in (
            f"{lx.article(noun.singular)} was {_pp(verb, rng)} {_place(rng)} {_when(rng)}",
            f"the {rng.choice(lx.TITLES)} was {_pp(verb, rng)} {_place(rng)}",
            f"the {rng.choice(lx.TITLES)} of a small town was {_pp(verb, rng)} {_when(rng)}",
            f"{rng.choice(lx.PERPETRATORS)} killed the {rng.choice(lx.TITLES)} {_place(rng)}",
            f"{rng.choice(lx.PERPETRATORS)} shot dead {lx.article(noun.singular)} {_place(rng)}",
            f"{lx.article(noun.singular)} died of gunshot wounds {_place(rng)}",
        ):
            out.append(Case("singular_victims", "MFT", _sentence(text), {"cas": _killed(1)}))
    return out


def coordinated_victim_cases(per: int) -> list[Case]:
    rng = random.Random("coordinated_victims")
    out = []
    for _ in range(per):
        a, b = _noun(rng), _noun(rng)
        pp = _pp(_any_kill(rng), rng)
        n, shown = _number(rng)
        m, shown_m = _number(rng, (2, 3, 4, 5, 6, 9))
        rel = rng.choice(lx.RELATIONS)
        rels = lx.plural(rng.choice(lx.RELATIONS_MANY))
        title = rng.choice(lx.TITLES)
        texts = (
            (f"{lx.article(a.singular)} and his {rel} were {pp} {_place(rng)}", 2),
            (f"{shown} {a.plural} and {lx.article(b.singular)} were {pp} {_place(rng)}", n + 1),
            (f"the {title} along with {shown_m} of his bodyguards was {pp} {_place(rng)}", m + 1),
            (f"{shown} {a.plural} and {shown_m} {b.plural} were killed {_place(rng)}", n + m),
            (
                f"the {title}, his two {rels} and {shown_m} others were {pp} {_place(rng)}",
                m + 3,
            ),
        )
        for text, total in texts:
            out.append(Case("coordinated_victims", "MFT", _sentence(text), {"killed": total}))
    return out


def coordinated_verb_cases(per: int) -> list[Case]:
    rng = random.Random("coordinated_verbs")
    out = []
    for _ in range(per):
        n, shown = _number(rng)
        m, shown_m = _number(rng, (3, 4, 5, 6, 8, 10, 13))
        if m == n:
            m, shown_m = n + 1, str(n + 1)
        v = f"{shown} {_noun(rng).plural}"
        took = rng.choice(("kidnapped", "abducted"))
        hurt = rng.choice(("wounded", "injured"))
        perp = rng.choice(lx.PERPETRATORS)
        both = tuple(sorted((("captured", n, "exact"), ("killed", n, "exact")), key=repr))
        mixed = tuple(sorted((("killed", n, "exact"), ("wounded", m, "exact")), key=repr))
        for text, want in (
            (f"{v} were {took} and killed {_place(rng)}", both),
            (f"{perp} {took} and killed {v} {_place(rng)}", both),
            (f"{v} were killed and {shown_m} others {hurt} {_place(rng)}", mixed),
            (f"{perp} killed {v} and {hurt} {shown_m} others {_place(rng)}", mixed),
            (f"{v} were shot dead and {shown_m} {hurt} {_place(rng)}", mixed),
        ):
            out.append(Case("coordinated_verbs", "MFT", _sentence(text), {"cas": want}))
    return out


def other_outcome_cases(per: int) -> list[Case]:
    rng = random.Random("other_outcomes")
    out = []
    for _ in range(per):
        n, shown = _number(rng)
        v = f"{shown} {_noun(rng).plural}"
        perp = rng.choice(lx.PERPETRATORS)
        for text, outcome in (
            (f"{v} were {rng.choice(('wounded', 'injured'))} {_place(rng)}", "wounded"),
            (f"{perp} wounded {v} {_place(rng)} {_when(rng)}", "wounded"),
            (f"{perp} {rng.choice(('abducted', 'kidnapped'))} {v} {_place(rng)}", "captured"),
            (f"{v} were taken hostage {_place(rng)}", "captured"),
            (f"{v} were reported missing after an attack {_place(rng)}", "missing"),
            (f"{v} went missing {_place(rng)} {_when(rng)}", "missing"),
        ):
            out.append(
                Case("other_outcomes", "MFT", _sentence(text), {"cas": ((outcome, n, "exact"),)})
            )
    return out


# --- what is not a death ------------------------------------------------------------------------


def negation_cases(per: int) -> list[Case]:
    rng = random.Random("negation")
    out = []
    for _ in range(per):
        pl = _noun(rng).plural
        src = rng.choice(lx.SOURCES)
        for text in (
            f"no one was killed in the attack {_place(rng)}",
            f"nobody was hurt when the bomb exploded {_place(rng)}",
            f"there were no casualties, {src}",
            f"{rng.choice(lx.PERPETRATORS)} attacked a checkpoint {_place(rng)} but no {pl} "
            f"were killed",
            "the blast caused no casualties",
            f"no {pl} were injured in the shelling {_when(rng)}",
            f"the attack left no dead or wounded, {src}",
        ):
            out.append(Case("negation", "MFT", _sentence(text), {"cas": ()}))
    return out


def hypothetical_cases(per: int) -> list[Case]:
    rng = random.Random("hypothetical")
    out = []
    for _ in range(per):
        _, shown = _number(rng, (10, 20, 50, 100, 200))
        pl = _noun(rng).plural
        perp = rng.choice(lx.PERPETRATORS)
        for text in (
            f"{perp} threatened to kill {shown} {pl} unless a ransom was paid",
            f"officials warned that the fighting could kill {shown} {pl}",
            f"the strike could have killed {shown} {pl}, {rng.choice(lx.SOURCES)}",
            f"{perp} tried to kill the {rng.choice(lx.TITLES)} {_when(rng)}",
            f"aid agencies fear that {shown} {pl} may die of hunger",
            f"the plot aimed to kill {shown} {pl} at a stadium",
        ):
            out.append(Case("hypothetical", "MFT", _sentence(text), {"cas": ()}))
    return out


# --- running totals, increments, earlier wars -----------------------------------------------


def cumulative_cases(per: int) -> list[Case]:
    rng = random.Random("cumulative")
    out = []
    for _ in range(per):
        n, shown = _number(rng, (40, 63, 120, 310, 1200))
        pl = _noun(rng).plural
        src = rng.choice(lx.SOURCES)
        month = rng.choice(("January", "March", "September"))
        for text in (
            f"{shown} {pl} have been killed since {month}, {src}",
            f"in total, {shown} {pl} have been killed in the fighting",
            f"the death toll from the clashes has risen to {shown}",
            f"the conflict has killed {shown} people so far this year",
            f"since the war began, {shown} {pl} have died",
        ):
            out.append(Case("cumulative", "DIR", _sentence(text), {"cum": ((n, True, False),)}))
        k, shown_k = _number(rng, (2, 3, 4, 5))
        text = f"{cap(shown_k)} more {pl} died on Monday, bringing the death toll to {shown}"
        want = tuple(sorted({(k, False, False), (n, True, False)}, key=repr))
        out.append(Case("cumulative", "DIR", _sentence(text), {"cum": want}))
    return out


def single_incident_cases(per: int) -> list[Case]:
    rng = random.Random("single_incident")
    out = []
    for _ in range(per):
        n, shown = _number(rng)
        pl = _noun(rng).plural
        perp = rng.choice(lx.PERPETRATORS)
        for text in (
            f"{shown} {pl} were killed when a mine exploded under their vehicle {_place(rng)}",
            f"{shown} {pl} were killed in an ambush {_when(rng)}",
            f"{perp} killed {shown} {pl} in a raid on a village {_when(rng)}, "
            f"{rng.choice(lx.SOURCES)}",
            f"{shown} {pl} died when their bus hit a roadside bomb {_place(rng)}",
            f"a suicide bomber killed {shown} {pl} at a market {_place(rng)}",
            f"another {shown} {pl} were killed {_place(rng)} {_when(rng)}",
        ):
            out.append(
                Case("single_incident", "MFT", _sentence(text), {"cum": ((n, False, False),)})
            )
    return out


def historical_cases(per: int) -> list[Case]:
    rng = random.Random("historical")
    out = []
    for _ in range(per):
        n, shown = _number(rng, (3000, 8000, 30000, 100000))
        pl = _noun(rng, lx.CIVILIAN_NOUNS + lx.UNKNOWN_NOUNS).plural
        decade = rng.choice((1970, 1980, 1990))
        year = rng.choice((1988, 1994, 2008))
        for text in (
            f"the {decade}s war left {shown} {pl} dead",
            f"about {shown} {pl} were killed in the {year} war between the two countries",
            f"the {year}-{year + 3} war killed {shown} people",
            f"during the civil war of the {decade}s, {shown} {pl} died",
            f"{shown} {pl} lost their lives in the previous war",
        ):
            out.append(
                Case(
                    "historical",
                    "DIR",
                    _sentence(text),
                    {"cum": ((n, True, True),), "killed": 0},
                )
            )
    return out


def attribution_cases(per: int) -> list[Case]:
    rng = random.Random("attribution")
    out = []
    for _ in range(per):
        n, shown = _number(rng)
        v = f"{shown} {_noun(rng).plural}"
        src = rng.choice(lx.SOURCES)
        for text in (
            f"{v} were killed {_place(rng)}, {src}",
            f"{rng.choice(lx.PERPETRATORS)} killed {v} {_place(rng)}, {src}",
            f"according to local officials, {v} were killed {_place(rng)}",
        ):
            out.append(
                Case(
                    "attribution",
                    "INV",
                    _sentence(text),
                    {"cas": _killed(n), "speaker": True},
                )
            )
    return out


# --- invariance -----------------------------------------------------------------------------------


def _inv_frames(rng: random.Random) -> list[str]:
    """Frames mixing plain and phrasal killing verbs; {v} victims, {c} a country name,
    {d} a demonym."""
    verb = _any_kill(rng)
    pp = _pp(verb, rng)
    return [
        f"{{v}} were {pp} in {{c}} {_when(rng)}",
        f"{rng.choice(lx.PERPETRATORS)} killed {{v}} in central {{c}}",
        "{v} died in an attack on a village in {c}",
        f"at least {{v}} were {pp} in northern {{c}}, {rng.choice(lx.SOURCES)}",
    ]


def invariance_cases(groups: int) -> list[Case]:
    rng = random.Random("invariance")
    out = []
    for g in range(groups):
        frames = _inv_frames(rng)
        frame = frames[g % len(frames)]
        noun = _noun(rng)
        _, shown = _number(rng)
        # country names: the place changes, the facts do not
        countries = rng.sample(lx.COUNTRIES, 5)
        for c in countries:
            text = _sentence(frame.format(v=f"{shown} {noun.plural}", c=c.name, d=c.demonym))
            out.append(Case("inv_country", "INV", text, group=f"c{g}", views=("cas", "cat")))
        # a demonym on the victims: the party follows the swap
        for c in countries:
            text = _sentence(
                f"{shown} {c.demonym} soldiers were {_pp(lx.PLAIN_KILL, rng)} near the border"
            )
            out.append(
                Case(
                    "inv_country",
                    "INV",
                    text,
                    group=f"d{g}",
                    canon=((c.code, "X"),),
                    views=("party",),
                )
            )
        # numbers: any count, in any style, is read the same way
        c = rng.choice(lx.COUNTRIES)
        for m in rng.sample(SMALL, 4):
            style = rng.choice(("digits", "words"))
            text = _sentence(
                frame.format(v=f"{lx.render_number(m, style)} {noun.plural}", c=c.name, d="")
            )
            out.append(
                Case(
                    "inv_number",
                    "INV",
                    text,
                    group=f"n{g}",
                    canon=((m, "N"),),
                    views=("cas",),
                )
            )
        # victim nouns of one category
        pool = {"civilian": lx.CIVILIAN_NOUNS, "military": lx.MILITARY_NOUNS}.get(
            noun.category, lx.UNKNOWN_NOUNS
        )
        for other in rng.sample(pool, min(4, len(pool))):
            text = _sentence(frame.format(v=f"{shown} {other.plural}", c=c.name, d=""))
            out.append(Case("inv_noun", "INV", text, group=f"v{g}", views=("cas", "cat")))
    return out


# --- ceasefires -------------------------------------------------------------------------------


def _brokers(rng: random.Random, k: int = 3) -> list[Country]:
    return rng.sample(lx.OUTSIDERS, k)


# Templates: {a} {b} the parties (names; {ad} {bd} demonyms), {x} {y} outsiders ({xd} a
# demonym, {ax} the same with its article), {cf} a ceasefire noun ({acf} with its article),
# {src} a source, {when} a time. Expected facts name the fillers by letter ("x", None).
CEASEFIRE_TEMPLATES: tuple[tuple[str, str, tuple[tuple[str, str | None], ...]], ...] = (
    # an outside appeal: called for, never brokered
    (
        "ceasefire_called_for",
        "{x} called for an immediate {cf} between {a} and {b}",
        (("called_for", None),),
    ),
    ("ceasefire_called_for", "{x} urged {a} and {b} to agree to {acf}", (("called_for", None),)),
    ("ceasefire_called_for", "{x} urged both sides to accept {acf}", (("called_for", None),)),
    (
        "ceasefire_called_for",
        "{x} urged the warring parties to sign {acf} {when}",
        (("called_for", None),),
    ),
    ("ceasefire_called_for", "{x} called on {a} and {b} to respect {acf}", (("called_for", None),)),
    (
        "ceasefire_called_for",
        "{x} appealed to {a} and {b} to observe {acf}",
        (("called_for", None),),
    ),
    (
        "ceasefire_called_for",
        "the {xd} foreign minister demanded {acf} {when}",
        (("called_for", None),),
    ),
    (
        "ceasefire_called_for",
        "{x} is pressing {a} and {b} to agree on {acf}",
        (("called_for", None),),
    ),
    (
        "ceasefire_called_for",
        "{x} has pushed for {acf} between the two sides",
        (("called_for", None),),
    ),
    ("ceasefire_called_for", "{x} and {y} called for {acf}, {src}", (("called_for", None),)),
    (
        "ceasefire_called_for",
        "{x} asked {a} and {b} to implement {acf} without delay",
        (("called_for", None),),
    ),
    # proposed: one side's plan, or an outsider's plan not yet taken up
    (
        "ceasefire_proposed",
        "{a} accepted {acf} proposed by {x}, but {b} has yet to respond",
        (("proposed", "x"),),
    ),
    ("ceasefire_proposed", "{acf} proposed by {x} was rejected by {b}", (("proposed", "x"),)),
    ("ceasefire_proposed", "{x} proposed {acf} between {a} and {b} {when}", (("proposed", "x"),)),
    ("ceasefire_proposed", "{x} has put forward {acf} plan, {src}", (("proposed", "x"),)),
    ("ceasefire_proposed", "{b} rejected {ax} proposal for {acf}", (("proposed", "x"),)),
    ("ceasefire_proposed", "{b} said it was studying {acf} offered by {x}", (("proposed", "x"),)),
    # agreed
    ("ceasefire_agreed", "{a} and {b} agreed to {acf} brokered by {x}", (("agreed", "x"),)),
    (
        "ceasefire_agreed",
        "{ax}-brokered {cf} between {a} and {b} took effect at midnight",
        (("agreed", "x"),),
    ),
    ("ceasefire_agreed", "{a} and {b} signed {acf} agreement {when}", (("agreed", None),)),
    ("ceasefire_agreed", "{acf} mediated by {x} came into force {when}", (("agreed", "x"),)),
    ("ceasefire_agreed", "{a} and {b} reached {acf} under {xd} mediation", (("agreed", "x"),)),
    (
        "ceasefire_agreed",
        "{acf} between {a} and {b} went into effect {when}, {src}",
        (("agreed", None),),
    ),
    (
        "ceasefire_agreed",
        "{a} and {b} agreed to {acf} mediated by {x} and {y}",
        (("agreed", "x"), ("agreed", "y")),
    ),
    ("ceasefire_agreed", "{x} brokered {acf} between {a} and {b} {when}", (("agreed", "x"),)),
    (
        "ceasefire_agreed",
        "the {cf} agreed {when} appeared to be holding, {src}",
        (("agreed", None),),
    ),
    ("ceasefire_agreed", "{acf} mediated by {x} took hold {when}", (("agreed", "x"),)),
    (
        "ceasefire_agreed",
        "the {cf} between {a} and {b} was extended for another week",
        (("agreed", None),),
    ),
    # violated
    (
        "ceasefire_violated",
        "fighting between {ad} and {bd} forces continued despite {ax}-brokered {cf}",
        (("violated", "x"),),
    ),
    (
        "ceasefire_violated",
        "{ad} troops shelled {bd} positions despite the {xd}-brokered {cf}",
        (("violated", "x"),),
    ),
    (
        "ceasefire_violated",
        "clashes broke out {when} despite {acf} brokered by {x}",
        (("violated", "x"),),
    ),
    ("ceasefire_violated", "{a} accused {b} of violating the {cf}", (("violated", None),)),
    (
        "ceasefire_violated",
        "{a} and {b} traded accusations of breaching the {cf}",
        (("violated", None),),
    ),
    (
        "ceasefire_violated",
        "the {cf} between {a} and {b} was broken within hours",
        (("violated", None),),
    ),
    ("ceasefire_violated", "the {cf} was not respected, {src}", (("violated", None),)),
    ("ceasefire_violated", "the {cf} has not been respected by either side", (("violated", None),)),
    (
        "ceasefire_violated",
        "{a} and {b} had reached {acf} deal last month but did not respect it",
        (("agreed", None), ("violated", None)),
    ),
    (
        "ceasefire_violated",
        "{a} and {b} had agreed to {acf} in March but neither side respected it",
        (("agreed", None), ("violated", None)),
    ),
    (
        "ceasefire_violated",
        "{ad} artillery fired on {bd} villages in breach of the {cf}",
        (("violated", None),),
    ),
    (
        "ceasefire_violated",
        "the {cf} has been repeatedly violated since it was declared",
        (("violated", None),),
    ),
    ("ceasefire_violated", "{b} said {a} had broken the {cf} {when}", (("violated", None),)),
    (
        "ceasefire_violated",
        "the {xd}-brokered {cf} agreement was violated {when}, {src}",
        (("violated", "x"),),
    ),
    # collapsed
    (
        "ceasefire_collapsed",
        "the collapse of two {xd}-brokered {cf} agreements dimmed hopes of peace",
        (("collapsed", "x"),),
    ),
    (
        "ceasefire_collapsed",
        "the {xd}-brokered {cf} between {a} and {b} collapsed {when}",
        (("collapsed", "x"),),
    ),
    (
        "ceasefire_collapsed",
        "{acf} brokered by {x} collapsed after two days",
        (("collapsed", "x"),),
    ),
    ("ceasefire_collapsed", "heavy {ad} shelling shattered the {cf}", (("collapsed", None),)),
    (
        "ceasefire_collapsed",
        "{ad} air strikes shattered {acf} that had held for a week",
        (("collapsed", None),),
    ),
    (
        "ceasefire_collapsed",
        "the {cf} between {a} and {b} broke down after two days",
        (("collapsed", None),),
    ),
    (
        "ceasefire_collapsed",
        "clashes erupted again {when}, ending the {cf}",
        (("collapsed", None),),
    ),
    (
        "ceasefire_collapsed",
        "fighting resumed {when}, bringing the {cf} to an end",
        (("collapsed", None),),
    ),
    ("ceasefire_collapsed", "the {cf} fell apart within days, {src}", (("collapsed", None),)),
    (
        "ceasefire_collapsed",
        "the collapse of the {cf} {when} left dozens of villages exposed",
        (("collapsed", None),),
    ),
    ("ceasefire_collapsed", "the {cf} failed to hold, {src}", (("collapsed", None),)),
    # directional: a denial of violations, an intent or a hypothesis is no report
    ("ceasefire_negation", "there were no violations of the {cf} between {a} and {b}, {src}", ()),
    (
        "ceasefire_negation",
        "the {cf} held overnight without any violations, {src}",
        (("agreed", None),),
    ),
    ("ceasefire_negation", "the {cf} could collapse at any moment, {src}", ()),
    ("ceasefire_negation", "{x} offered to mediate {acf} between {a} and {b}", ()),
    ("ceasefire_negation", "{a} will not respect the {cf}, {b} warned", ()),
    ("ceasefire_negation", "{x} said talks to reach {acf} would resume {when}", ()),
    ("ceasefire_negation", "diplomats fear that {acf} would be violated within hours", ()),
)
CEASEFIRE_NOUNS = ("ceasefire", "truce", "cease-fire", "cessation of hostilities")


def ceasefire_cases(per: int) -> list[Case]:
    rng = random.Random("ceasefire")
    out = []
    for capability, template, want in CEASEFIRE_TEMPLATES:
        for _ in range(per):
            pair = rng.choice(lx.CONFLICTS)
            a, b = rng.sample(pair, 2)
            x, y = _brokers(rng, 2)
            cf = rng.choice(CEASEFIRE_NOUNS)
            text = template.format(
                a=a.name,
                b=b.name,
                ad=a.demonym,
                bd=b.demonym,
                x=x.name,
                y=y.name,
                xd=x.demonym,
                ax=lx.article(x.demonym),
                cf=cf,
                acf=lx.article(cf),
                src=rng.choice(lx.SOURCES),
                when=_when(rng),
            )
            fill = {"a": a.code, "b": b.code, "x": x.code, "y": y.code, None: None}
            expect = tuple(sorted({(st, fill[who]) for st, who in want}, key=repr))
            view = "cf_status" if capability == "ceasefire_negation" else "cf"
            if view == "cf_status":
                expect = tuple(sorted({st for st, _ in want}))
            test = "DIR" if capability == "ceasefire_negation" else "MFT"
            out.append(Case(capability, test, _sentence(text), {view: expect}, watch=pair))
    return out


# --- third parties -----------------------------------------------------------------------------

# Templates: {a} {b} the parties ({ad} {bd} demonyms), {x} an outsider ({xd} its demonym), {y}
# another, {arms} weapons, {supplied} {supplying} {supply_pp} a supply verb. Expected facts:
# (actor, kind, supports, stance) with fillers by letter.
THIRD_PARTY_TEMPLATES: tuple[tuple[str, str, tuple[tuple[Any, ...], ...]], ...] = (
    # kinds
    ("third_party_kind", "{x} {supplied} {arms} to {a}", (("x", "arms", "a", "reported"),)),
    (
        "third_party_kind",
        "{x} has {supply_pp} {arms} to {a} since the war began",
        (("x", "arms", "a", "reported"),),
    ),
    ("third_party_kind", "{a} received {arms} from {x} {when}", (("x", "arms", "a", "reported"),)),
    (
        "third_party_kind",
        "{x} is {supplying} {arms} to the {ad} army, {src}",
        (("x", "arms", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} provided {a} with {arms} and training",
        (("x", "arms", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x}, a key military backer of {a}, said it was watching the fighting closely",
        (("x", "military", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x}, a key backer of {a}, urged restraint",
        (("x", "political", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} has been supporting the {ad} government since 2015",
        (("x", "political", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{xd} troops are fighting alongside {ad} forces",
        (("x", "military", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} carried out air strikes in support of {a}",
        (("x", "military", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} deployed troops to help {a} {when}",
        (("x", "military", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} sent mercenaries to fight for {a}",
        (("x", "fighters", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{xd} mercenaries are fighting on the side of {a}",
        (("x", "fighters", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} expressed solidarity with {a}",
        (("x", "political", "a", "confirmed"),),
    ),
    (
        "third_party_kind",
        "{x} voiced its support for {a} {when}",
        (("x", "political", "a", "confirmed"),),
    ),
    (
        "third_party_kind",
        "{x} declared its full support for {a}",
        (("x", "political", "a", "confirmed"),),
    ),
    (
        "third_party_kind",
        "{x} hosted talks between {a} and {b}",
        (("x", "mediation", None, "reported"),),
    ),
    (
        "third_party_kind",
        "{x} sent humanitarian aid to {a}",
        (("x", "humanitarian", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{x} brokered the release of {n} {ad} prisoners held by {b}",
        (("x", "humanitarian", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{n} {ad} soldiers held by {b} were freed after {xd} mediation",
        (("x", "humanitarian", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "{xd} mercenaries recruited by {y} are fighting for {a}",
        (("y", "fighters", "a", "reported"),),
    ),
    (
        "third_party_kind",
        "the {xd}-backed talks between {a} and {b} resumed {when}",
        (("x", "mediation", None, "reported"),),
    ),
    (
        "third_party_kind",
        "{xd} drones have helped the {ad} army regain ground",
        (("x", "military", "a", "reported"),),
    ),
    # stances
    ("third_party_stance", "{x} denied supplying {arms} to {a}", (("x", "arms", "a", "denied"),)),
    ("third_party_stance", "{x} has denied arming {a}, {src}", (("x", "arms", "a", "denied"),)),
    (
        "third_party_stance",
        "{x} and {y} voiced their support for {a}",
        (("x", "political", "a", "confirmed"), ("y", "political", "a", "confirmed")),
    ),
    (
        "third_party_stance",
        "{x} has denied sending troops to help {a}",
        (("x", "military", "a", "denied"),),
    ),
    (
        "third_party_stance",
        "{x} rejected claims that it had {supply_pp} {arms} to {a}",
        (("x", "arms", "a", "denied"),),
    ),
    (
        "third_party_stance",
        "{x} dismissed reports that its troops were fighting for {a}",
        (("x", "military", "a", "denied"),),
    ),
    (
        "third_party_stance",
        "{b} accused {x} of supplying {arms} to {a}",
        (("x", "arms", "a", "alleged"),),
    ),
    (
        "third_party_stance",
        "{b} accused {x} of sending mercenaries to fight for {a}",
        (("x", "fighters", "a", "alleged"),),
    ),
    (
        "third_party_stance",
        "{b} accused {x} of shooting down one of its drones",
        (("x", "military", None, "alleged"),),
    ),
    (
        "third_party_stance",
        "{b} accused {x} of carrying out air strikes on {bd} positions",
        (("x", "military", None, "alleged"),),
    ),
    (
        "third_party_stance",
        "{x} confirmed that it had {supply_pp} {arms} to {a}",
        (("x", "arms", "a", "confirmed"),),
    ),
    (
        "third_party_stance",
        "{x} acknowledged that its troops were fighting alongside {ad} forces",
        (("x", "military", "a", "confirmed"),),
    ),
    # not third parties
    ("third_party_false", "{x} suspended exports of {arms} to {y}", ()),
    ("third_party_false", "a cargo flight bound for {a} passed through {x}'s airspace", ()),
    ("third_party_false", "the plane carrying {arms} to {a} made a stop in {x}, {src}", ()),
    ("third_party_false", "the {xd} ambassador accused {b} of shelling civilians in {a}", ()),
    ("third_party_false", "{xd}-made {arms} were used by {a} in the offensive", ()),
    ("third_party_false", "{a} used {xd}-made {arms} to strike {bd} positions", ()),
    ("third_party_false", "{x} called for an immediate ceasefire between {a} and {b}", ()),
    (
        "third_party_false",
        "{xd} newspapers reported heavy fighting between {ad} and {bd} troops",
        (),
    ),
    (
        "third_party_false",
        "the UN-recognised government of {a} said its forces repelled an attack",
        (),
    ),
    ("third_party_false", "{x} condemned the shelling of civilians in {a}", ()),
)
# Wars inside one state: the government's soldiers named by the state's demonym are a party.
INSIDE_TEMPLATES: tuple[tuple[str, str, tuple[tuple[Any, ...], ...]], ...] = (
    ("third_party_false", "{hd} soldiers clashed with {b} fighters {when}", ()),
    ("third_party_false", "{hd} troops killed {n} {b} militants in an air strike", ()),
    (
        "third_party_false",
        "{hd} forces, backed by {xd} drones, attacked {b} positions",
        (("x", "military", "a", "reported"),),
    ),
)


def third_party_cases(per: int) -> list[Case]:
    rng = random.Random("third_party")
    out = []
    for template_set in (THIRD_PARTY_TEMPLATES, INSIDE_TEMPLATES):
        for capability, template, want in template_set:
            for _ in range(per):
                x, y = _brokers(rng, 2)
                if template_set is INSIDE_TEMPLATES:
                    a, b, home = rng.choice(lx.INSIDE_WARS)
                    pair = (a, b)
                else:
                    pair = rng.choice(lx.CONFLICTS)
                    a, b = rng.sample(pair, 2)
                    home = a.demonym
                verb = rng.choice(lx.SUPPLY_VERBS)
                text = template.format(
                    a=a.name,
                    b=b.name,
                    ad=a.demonym,
                    bd=b.demonym,
                    hd=home,
                    x=x.name,
                    y=y.name,
                    xd=x.demonym,
                    arms=rng.choice(lx.WEAPONS),
                    supplied=lx.verb_form(verb, "VBD"),
                    supplying=lx.verb_form(verb, "VBG"),
                    supply_pp=lx.participles(verb)[0],
                    n=rng.choice(("two", "five", "12", "40")),
                    src=rng.choice(lx.SOURCES),
                    when=_when(rng),
                )
                fill = {"a": a.code, "b": b.code, "x": x.code, "y": y.code, None: None}
                expect = tuple(
                    sorted({(fill[w[0]], w[1], fill[w[2]], w[3]) for w in want}, key=repr)
                )
                out.append(Case(capability, "MFT", _sentence(text), {"tp": expect}, watch=pair))
    return out


# --- downings ----------------------------------------------------------------------------------


# Templates: {a} claims to have downed {b}'s asset; {nb} is "a"/"an" with {b}'s demonym, {asset}
# the asset's noun ({kind} its kind). Expected: (asset kind, owner, claimed by, denied).
ASSET_NOUNS = (
    ("drone", "drone"),
    ("helicopter", "helicopter"),
    ("fighter jet", "aircraft"),
    ("military plane", "aircraft"),
    ("reconnaissance drone", "drone"),
    ("attack helicopter", "helicopter"),
)
DOWNING_TEMPLATES: tuple[tuple[str, str, tuple[tuple[Any, ...], ...]], ...] = (
    # the owner disputes it: a denial, or another cause for the loss
    (
        "downing_denied",
        "{a} said it shot down {nb} {asset}. {b} denied losing any {asset}",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} claimed to have downed {nb} {asset}. "
        "{b} said the {asset} crashed because of a technical malfunction",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} said its air defences downed {nb} {asset}. "
        "{b}'s defence ministry said the {asset} went down after engine failure",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} said it had shot down {nb} {asset}, but {b} dismissed the claim as propaganda",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} said it had shot down {nb} {asset}. {b} blamed a mechanical fault for the crash",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} reported downing {nb} {asset} {when}. {b} called the report a lie",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} said it had brought down {nb} {asset}. "
        "The {bd} military said the {asset} was lost in an accident",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} said it shot down {nb} {asset}. {b} rejected the claim",
        (("kind", "b", "a", True),),
    ),
    (
        "downing_denied",
        "{a} said its air defences downed {nb} {asset}. {b} said it had lost no {asset}",
        (("kind", "b", "a", True),),
    ),
    # the owner does not dispute it, or disputes something else
    (
        "downing_claims",
        "{nb} {asset} was shot down near the border {when}",
        (("kind", "b", None, False),),
    ),
    (
        "downing_claims",
        "{a} said it shot down {nb} {asset}. {b} confirmed the loss of the {asset}",
        (("kind", "b", "a", False),),
    ),
    (
        "downing_claims",
        "{a} said it shot down {nb} {asset}. {b} denied that its troops had shelled civilians",
        (("kind", "b", "a", False),),
    ),
    # the asset or its owner named a sentence earlier
    (
        "downing_context",
        "drones launched by {bd} forces targeted {ad} positions {when}. {a} said it destroyed them",
        (("drone", "b", "a", False),),
    ),
    (
        "downing_context",
        "{nb} {asset} crossed into {a} {when}. {a} said its air defences shot it down",
        (("kind", "b", "a", False),),
    ),
    (
        "downing_context",
        "{nb} {asset} entered {ad} airspace {when}. The {ad} army said it shot down the {asset}",
        (("kind", "b", "a", False),),
    ),
    (
        "downing_context",
        "{bd} forces sent {na} over the border {when}. "
        "{a} said it had downed the {asset} near the front",
        (("kind", "b", "a", False),),
    ),
    (
        "downing_context",
        "{nb} {asset} flew over {ad} positions {when}. "
        "{a}'s defence ministry said it was shot down",
        (("kind", "b", "a", False),),
    ),
)


def downing_template_cases(per: int) -> list[Case]:
    rng = random.Random("downing_templates")
    out = []
    for capability, template, want in DOWNING_TEMPLATES:
        for _ in range(per):
            pair = rng.choice(lx.CONFLICTS)
            a, b = rng.sample(pair, 2)
            noun, kind = rng.choice(ASSET_NOUNS)
            text = template.format(
                a=a.name,
                b=b.name,
                ad=a.demonym,
                bd=b.demonym,
                nb=lx.article(b.demonym),
                na=lx.article(noun),
                asset=noun,
                when=_when(rng),
            )
            fill = {"a": a.code, "b": b.code, "kind": kind, "drone": "drone", None: None}
            expect = tuple(
                sorted({(fill[w[0]], fill[w[1]], fill[w[2]], w[3]) for w in want}, key=repr)
            )
            out.append(Case(capability, "MFT", _sentence(text), {"dn": expect}, watch=pair))
    return out


def downing_cases(per: int) -> list[Case]:
    rng = random.Random("downing")
    out = []
    for _ in range(per):
        pair = rng.choice(lx.CONFLICTS)
        a, b = rng.sample(pair, 2)
        _, shown = _number(rng, (2, 3, 4, 6, 11))
        cases = (
            (
                "downing_claims",
                f"{a.name} said its air defences shot down {lx.article(b.demonym)} drone "
                "near the front line",
                (("drone", b.code, a.code, False),),
            ),
            (
                "downing_claims",
                f"{a.name}'s defence ministry said it had downed {lx.article(b.demonym)} "
                "fighter jet",
                (("aircraft", b.code, a.code, False),),
            ),
            (
                "downing_claims",
                f"{a.name} said it had intercepted a missile fired by {b.name}",
                (("missile", b.code, a.code, False),),
            ),
            (
                "downing_claims",
                f"{a.name} said it shot down {shown} {b.demonym} drones overnight",
                (("drone", b.code, a.code, False),),
            ),
            (
                "downing_claims",
                f"{a.name} said it shot down {lx.article(b.demonym)} helicopter and "
                f"{lx.article(b.demonym)} drone",
                (("drone", b.code, a.code, False), ("helicopter", b.code, a.code, False)),
            ),
            (
                "downing_denied",
                f"{a.name} said it shot down {lx.article(b.demonym)} drone near the border. "
                f"{b.name} denied losing any drone",
                (("drone", b.code, a.code, True),),
            ),
            (
                "downing_denied",
                f"{a.name} claimed to have downed {lx.article(b.demonym)} helicopter. "
                f"{b.name} said the helicopter crashed because of a technical malfunction",
                (("helicopter", b.code, a.code, True),),
            ),
            (
                "downing_false",
                f"{lx.article(b.demonym)} military helicopter crashed during a training flight",
                (),
            ),
            (
                "downing_false",
                f"{a.name} said {lx.article(b.demonym)} drone crashed in a field near the border",
                (),
            ),
        )
        for capability, text, want in cases:
            out.append(Case(capability, "MFT", _sentence(text), {"dn": want}, watch=pair))
    return out


# --- the suite ----------------------------------------------------------------------------------


def build() -> list[Case]:
    """Every case, in a fixed order (thousands of sentences)."""
    return [
        *kill_cases("kill_verb", (lx.PLAIN_KILL,), per_frame=25),
        *kill_cases("kill_phrases", lx.KILL_PHRASES, per_frame=4),
        *death_phrase_cases(per_frame=16),
        *number_cases(),
        *qualifier_cases(per=6),
        *category_cases(),
        *singular_cases(per=30),
        *coordinated_victim_cases(per=30),
        *coordinated_verb_cases(per=30),
        *other_outcome_cases(per=25),
        *negation_cases(per=20),
        *hypothetical_cases(per=20),
        *cumulative_cases(per=25),
        *single_incident_cases(per=25),
        *historical_cases(per=25),
        *attribution_cases(per=30),
        *invariance_cases(groups=60),
        *ceasefire_cases(per=8),
        *third_party_cases(per=8),
        *downing_cases(per=15),
        *downing_template_cases(per=8),
    ]


@dataclass
class Outcome:
    """How one capability fared: cases run, and the failures with what was found."""

    capability: str
    tests: Counter = field(default_factory=Counter)  # MFT / INV / DIR -> cases
    failures: list[tuple[Case, dict[str, Any]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.tests.values())

    @property
    def rate(self) -> float:
        return len(self.failures) / self.total if self.total else 0.0


def _canonical(value: Any, canon: dict[Any, str]) -> Any:
    if isinstance(value, tuple):
        return tuple(_canonical(v, canon) for v in value)
    if isinstance(value, bool):
        return value
    return canon.get(value, value)


def run(cases: list[Case] | None = None) -> dict[str, Outcome]:
    """Run every case through the extractor; per capability, the failures."""
    cases = build() if cases is None else cases
    watches: dict[tuple[str, str], Watch] = {}
    results: dict[str, Outcome] = {}
    bases: dict[str, tuple[Case, dict[str, Any]]] = {}
    for case in cases:
        watch = None
        if case.watch is not None:
            key = (case.watch[0].code, case.watch[1].code)
            watch = watches.get(key) or watches.setdefault(key, watch_of(case.watch))
        facts = extract(case.text, watch)
        result = results.setdefault(case.capability, Outcome(case.capability))
        if case.group is None:
            got = {name: VIEWS[name](facts) for name in case.expect}
            result.tests[case.test] += 1
            if got != case.expect:
                result.failures.append((case, got))
            continue
        canon = dict(case.canon)
        got = {name: _canonical(VIEWS[name](facts), canon) for name in case.views}
        base = bases.get(case.group)
        if base is None:
            bases[case.group] = (case, got)
            continue
        result.tests[case.test] += 1
        if got != base[1]:
            result.failures.append((case, {**got, "base": base[0].text, "base_got": base[1]}))
    return results
