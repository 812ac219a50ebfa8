"""One small class per rule type (ElastAlert2's ``ruletypes.py`` shape).

Each receives one selected fact at a time with the rule's own memory and returns a
``Verdict``: fire or not, the data and evidence for the alert, and a sentence saying why, so
that ``monitor rules explain`` can show the reasoning for a miss as well as a hit. Noise
control (dedup, cooldown, holds, silences, inhibition) is not their business: the evaluator
applies it to every type the same way. Time is the fact's event time, never the wall clock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitor.alerting.rules import (
    CorroboratedRule,
    FrequencyRule,
    JumpRule,
    MatchRule,
    NewValueRule,
    Rule,
    RuleBase,
    TransitionRule,
)
from monitor.events import Evidence


class Memory(Protocol):
    """Per-rule key/value state (JSON values); the evaluator decides where it lives."""

    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
    def delete(self, key: str) -> None: ...


class Observed:
    """A selected fact as the rule types see it: fields, event time, evidence.

    The evidence comes in two forms: the model, which only a verdict that fires needs, and
    its JSON, which most types keep in their state for every fact. Each is made once, when
    first asked for (``make`` builds the model, ``json`` is the JSON when the caller has it).
    """

    __slots__ = ("_evidence", "_json", "_make", "at", "ctx", "event_id", "time")

    def __init__(
        self,
        event_id: str,
        time: datetime,
        ctx: dict[str, Any],
        evidence: Evidence | None = None,
        at: str = "",
        *,
        make: Callable[[], Evidence] | None = None,
        json: dict[str, Any] | None = None,
    ) -> None:
        self.event_id = event_id
        self.time = time
        self.ctx = ctx
        self.at = at or time.isoformat()  # as state stores it (formatted once per fact)
        self._evidence = evidence
        self._make = make
        self._json = json

    @property
    def evidence(self) -> Evidence:
        if self._evidence is None:
            assert self._make is not None, "an observed fact needs its evidence or a maker"
            self._evidence = self._make()
        return self._evidence

    def evidence_json(self) -> dict[str, Any]:
        """The evidence as JSON, a fresh dict for each caller (state rows are mutable)."""
        if self._json is None:
            self._json = _dump(self.evidence)
        return dict(self._json)


class Verdict:
    """What a rule type says of one fact: fire or not, the alert's data and evidence, and
    why. ``why`` may be given as a function that words it: only explanations and alerts
    read it, and most facts fire nothing, so most verdicts are never worded."""

    __slots__ = ("_why", "data", "evidence", "fire", "later", "restates", "status")

    def __init__(
        self,
        fire: bool,
        why: str | Callable[[], str],
        data: dict[str, Any] | None = None,
        evidence: list[Evidence] | None = None,
        status: str = "firing",
        restates: bool = False,
    ) -> None:
        self.fire = fire
        self._why = why
        self.data: dict[str, Any] = {} if data is None else data
        self.evidence: list[Evidence] = [] if evidence is None else evidence
        self.status = status
        # A non-firing fact that restates what an earlier hit said (the same collapse, the
        # same figure): it confirms an alert still held by ``for``, e.g. as a second outlet.
        self.restates = restates
        # Verdicts on facts that arrived earlier but come after this one in event time,
        # changed by it: a late report placed at its publication time can make a later
        # figure a jump.
        self.later: list[tuple[Observed, Verdict]] = []

    @property
    def why(self) -> str:
        if not isinstance(self._why, str):
            self._why = self._why()
        return self._why


def lookup(ctx: dict[str, Any], path: str) -> Any:
    if "." not in path:  # most paths: a top-level field
        return ctx.get(path)
    value: Any = ctx
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def group_key(ctx: dict[str, Any], fields: list[str]) -> str:
    return "|".join(str(lookup(ctx, f)) for f in fields)


def getter(path: str) -> Callable[[dict[str, Any]], Any]:
    """``lookup`` of one path, decided once: rules read the same fields of every fact."""
    if "." not in path:
        return lambda ctx: ctx.get(path)
    return lambda ctx: lookup(ctx, path)


def grouper(fields: list[str]) -> Callable[[dict[str, Any]], str]:
    """``group_key`` over these fields, decided once."""
    if len(fields) == 1:
        only = getter(fields[0])
        return lambda ctx: str(only(ctx))
    if all("." not in f for f in fields):  # top-level fields: read in place
        names = tuple(fields)
        return lambda ctx: "|".join([str(ctx.get(name)) for name in names])
    getters = [getter(f) for f in fields]
    return lambda ctx: "|".join([str(get(ctx)) for get in getters])


_SKIP = {"quote", "span", "article", "type"}


def fact_data(ctx: dict[str, Any]) -> dict[str, Any]:
    """The fact's own fields for the alert's ``data`` (no quote: that is evidence)."""
    return {k: v for k, v in ctx.items() if k not in _SKIP}


def fmt_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ev(raw: dict[str, Any]) -> Evidence:
    return Evidence.model_validate(raw)


def _dump(evidence: Evidence) -> dict[str, Any]:
    return evidence.model_dump(mode="json")


class RuleType:
    """Base: ``check`` one fact; ``still_true`` re-checks a held alert when its hold ends."""

    def __init__(self, rule: RuleBase) -> None:
        self.rule = rule

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        raise NotImplementedError

    def still_true(self, data: dict[str, Any], memory: Memory) -> str | None:
        """None when the held alert should still fire; else the reason it should not."""
        return None


class Match(RuleType):
    rule: MatchRule

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        return Verdict(True, "every selected fact fires", fact_data(seen.ctx), [seen.evidence])


class NewValue(RuleType):
    rule: NewValueRule

    def __init__(self, rule: NewValueRule) -> None:
        super().__init__(rule)
        self.value = getter(rule.value)
        self.group = grouper(rule.per)

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        value = self.value(seen.ctx)
        if value is None:
            return Verdict(False, f"{self.rule.value} is empty")
        group = self.group(seen.ctx)
        key = f"seen:{group}|{value}"
        first = memory.get(key)
        when = seen.at
        if first is not None:
            # A restated value's data is read only to confirm a held alert (``for``).
            data = {**fact_data(seen.ctx), "value": value} if self.rule.hold else {}
            seen_by = first["event_id"]
            if when < first.get("at", when):
                # A late report of an earlier sighting: it is the first one now, but the
                # value was told already; explanations name the earliest.
                memory.put(key, {"event_id": seen.event_id, "at": when})
                told = f"{self.rule.value}={value!r} already told ({seen_by} came first)"
                return Verdict(False, told, data, restates=True)
            again = lambda: f"{self.rule.value}={value!r} already seen ({seen_by})"  # noqa: E731
            return Verdict(False, again, data, restates=True)
        data = {**fact_data(seen.ctx), "value": value}
        memory.put(key, {"event_id": seen.event_id, "at": when})
        why = f"{self.rule.value}={value!r} seen for the first time per {'+'.join(self.rule.per)}"
        return Verdict(True, why, data, [seen.evidence])


class Jump(RuleType):
    """A series is the staircase of its record figures in event time: each point is higher
    than every point published before it. A fact is compared with the highest figure
    published before it, wherever it arrives in the log: a late report of an older figure
    is placed at its publication time, and when it becomes the first figure of the series,
    the figure that was first until then is checked again as a rise from it."""

    rule: JumpRule

    def __init__(self, rule: JumpRule) -> None:
        super().__init__(rule)
        self.value = getter(rule.value)
        self.series = grouper(rule.series)

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        rule = self.rule
        current = self.value(seen.ctx)
        if not isinstance(current, int | float) or isinstance(current, bool):
            return Verdict(False, f"{rule.value} is not a number ({current!r})")
        name = self.series(seen.ctx)
        when = seen.at
        stored = memory.get(f"series:{name}")
        points = _points(stored)
        pages = int(stored.get("pages", 0)) if stored else 0
        # A fact published after the start of the tail (the usual case) concerns the tail
        # only; an older one reads the whole staircase.
        whole = not points or when < points[0]["at"]
        if whole and pages:
            points = [*(p for i in range(pages) for p in _page(memory, name, i)), *points]
        # The points are in time order. Equal times keep arrival order: facts of one article
        # come in text order.
        at = bisect_right(points, when, key=_at)
        previous = points[at - 1] if at else None
        # The staircase keeps the highest figure so far: a lower report later is a competing
        # claim, and must not make the old figure look like a fresh jump.
        if previous is None or current > previous["value"]:
            point = {
                "at": when,
                "value": current,
                "event_id": seen.event_id,
                "evidence": seen.evidence_json(),
            }
            if at == 0:
                # Only the first point is ever checked again (below), so only it keeps the
                # fact's fields: the staircase of a long series stays small.
                point["ctx"] = seen.ctx
            rest = [p for p in points[at:] if p["value"] > current]
            _save(memory, name, [*points[:at], point, *rest], pages, whole)
        if previous is None:
            verdict = Verdict(False, f"first figure of series {name}: {current}")
            head = points[0] if points else None
            if head is not None and head["at"] > when and head["value"] > current:
                first = Observed(
                    head["event_id"],
                    datetime.fromisoformat(head["at"]),
                    head["ctx"],
                    make=lambda: _ev(head["evidence"]),
                    json=head["evidence"],
                )
                earlier = seen.evidence_json()
                verdict.later.append((first, self._compare(name, current, earlier, first)))
            return verdict
        return self._compare(name, previous["value"], previous["evidence"], seen)

    def _compare(self, name: str, before: Any, earlier: dict[str, Any], seen: Observed) -> Verdict:
        rule = self.rule
        current = self.value(seen.ctx)
        rise = current - before
        percent = (rise / before * 100) if before else None

        def figures(verb: str) -> str:
            pct = f"{percent:.1f}%" if percent is not None else "n/a %"
            thresholds = f"min_increase {rule.min_increase}, min_percent {rule.min_percent}"
            return f"series {name}: {before} -> {current} (+{rise}, {pct}) {verb} {thresholds}"

        big_enough = (rule.min_increase is not None and rise >= rule.min_increase) or (
            rule.min_percent is not None and percent is not None and percent >= rule.min_percent
        )
        if rise <= 0 or not big_enough:
            # Only a restated figure's data is read (it may confirm a held alert): most
            # reports of a series are neither, and skip building it.
            data = self._data(seen, before, current, percent) if rise == 0 else {}
            return Verdict(False, lambda: figures("is below"), data, restates=rise == 0)
        data = self._data(seen, before, current, percent)
        return Verdict(True, figures("meets"), data, [_ev(earlier), seen.evidence])

    def _data(
        self, seen: Observed, before: Any, current: Any, percent: float | None
    ) -> dict[str, Any]:
        rule = self.rule
        return {
            **fact_data(seen.ctx),
            "series": " ".join(str(lookup(seen.ctx, f)) for f in rule.series if f != "watch"),
            "previous": before,
            "current": current,
            "increase": current - before,
            "percent": round(percent, 1) if percent is not None else None,
            "min_increase": rule.min_increase,
            "min_percent": rule.min_percent,
        }


# A series' staircase is kept in pages: the row ``series:<name>`` holds the latest points
# (its tail) and how many full pages of older points come before them, each in a row of its
# own. A figure reported in time order rewrites the tail only, so the state written per
# fact stays the same size however long the series grows.
PAGE = 8


def _page(memory: Memory, name: str, i: int) -> list[dict[str, Any]]:
    return list((memory.get(f"series-page:{i}:{name}") or {}).get("points", []))


def _save(memory: Memory, name: str, points: list[dict[str, Any]], pages: int, whole: bool) -> None:
    """Store a series whose points are the tail (``whole`` False) or the whole staircase."""
    if not whole:
        if len(points) > 2 * PAGE:  # the tail is full: its oldest points become a page
            memory.put(f"series-page:{pages}:{name}", {"points": points[:PAGE]})
            points, pages = points[PAGE:], pages + 1
    else:
        full = max(0, len(points) // PAGE - 1)
        for i in range(full):
            memory.put(f"series-page:{i}:{name}", {"points": points[i * PAGE : (i + 1) * PAGE]})
        for i in range(full, pages):
            memory.delete(f"series-page:{i}:{name}")
        points, pages = points[full * PAGE :], full
    memory.put(f"series:{name}", {"points": points, **({"pages": pages} if pages else {})})


def _at(point: dict[str, Any]) -> str:
    return point["at"]


def _points(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A series' staircase; state written before series kept times is one timeless point."""
    if state is None:
        return []
    if "points" in state:
        return list(state["points"])
    return [{"at": "", "value": state["value"], "event_id": "", "evidence": state["evidence"]}]


class Transition(RuleType):
    rule: TransitionRule

    def __init__(self, rule: TransitionRule) -> None:
        super().__init__(rule)
        self.field = getter(rule.field)
        self.group = grouper(rule.key)

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        rule = self.rule
        name = self.group(seen.ctx)
        key = f"state:{name}"
        state = memory.get(key) or {}
        when = seen.at
        if when < state.get("at", when):
            why = f"published before the current {rule.field} of {name} ({state['at']}): history"
            return Verdict(False, why)
        before, now = state.get("value"), self.field(seen.ctx)
        firing = bool(state.get("firing"))

        def data() -> dict[str, Any]:  # read only when the verdict fires or restates
            return {**fact_data(seen.ctx), "previous": before, "current": now, "key": name}

        def evidence() -> list[Evidence]:  # read back only when the verdict fires
            earlier = [_ev(state["evidence"])] if "evidence" in state else []
            return [*earlier, seen.evidence]

        record = {"value": now, "evidence": seen.evidence_json(), "firing": firing, "at": when}

        def moved(how: str) -> str:  # worded when read (``Verdict.why``)
            return f"{rule.field} {before!r} -> {now!r} for {name}{how}"

        if now in rule.to:
            entered = before not in rule.to and (rule.from_ is None or before in rule.from_)
            if entered:
                memory.put(key, {**record, "firing": True})
                return Verdict(True, moved(f" enters {rule.to}"), data(), evidence())
            memory.put(key, record)
            already = before in rule.to
            why = "already in" if already else f"not from {rule.from_}:"
            # A restated state's data is read only to confirm a held alert (``for``).
            restated = data() if already and rule.hold else {}
            return Verdict(False, lambda: moved(f": {why} {rule.to}"), restated, restates=already)
        memory.put(key, {**record, "firing": False})
        if firing and rule.resolve and rule.resolves_on(now):
            return Verdict(
                True, moved(f" leaves {rule.to}: resolved"), data(), evidence(), "resolved"
            )
        return Verdict(False, lambda: moved(f" does not enter {rule.to}"))

    def still_true(self, data: dict[str, Any], memory: Memory) -> str | None:
        state = memory.get(f"state:{data.get('key')}") or {}
        if state.get("value") not in self.rule.to:
            return f"{self.rule.field} moved on to {state.get('value')!r} during the hold"
        return None


class Frequency(RuleType):
    rule: FrequencyRule

    def __init__(self, rule: FrequencyRule) -> None:
        super().__init__(rule)
        self.group = grouper(rule.group_by)
        self.window = fmt_duration(rule.window)

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        rule = self.rule
        name = self.group(seen.ctx)
        key = f"window:{name}"
        hits = (memory.get(key) or {}).get("hits", [])
        hits.append([seen.at, seen.evidence_json()])
        hits.sort(key=lambda h: h[0])
        oldest = _parse(hits[-1][0]) - rule.window
        hits = [h for h in hits if _parse(h[0]) > oldest]
        start = seen.time - rule.window
        inside = [h for h in hits if start < _parse(h[0]) <= seen.time]
        window = self.window
        counted = f"{len(inside)} facts for {name} within {window}"
        if len(inside) < rule.threshold:  # the data of a verdict that does not fire is unread
            memory.put(key, {"hits": hits})
            return Verdict(False, lambda: f"{counted}, below {rule.threshold}")
        data = {
            **fact_data(seen.ctx),
            "count": len(inside),
            "threshold": rule.threshold,
            "window": window,
            "group": name,
        }
        # ElastAlert's frequency rule: a match empties the window, the next needs N new facts.
        memory.put(key, {"hits": [h for h in hits if h not in inside]})
        evidence = [_ev(h[1]) for h in inside[-10:]]
        return Verdict(True, f"{counted} reaches {rule.threshold}", data, evidence)


def outlet_of(ctx: dict[str, Any], field_name: str) -> str:
    """The outlet named on the article, else the site's host: two URLs of one site are one
    outlet."""
    value = lookup(ctx, field_name)
    if value:
        return str(value)
    return urlsplit(str(lookup(ctx, "article.url") or "")).hostname or "unknown"


class Corroborated(RuleType):
    rule: CorroboratedRule

    def __init__(self, rule: CorroboratedRule) -> None:
        super().__init__(rule)
        self.group = grouper(rule.key)

    def check(self, seen: Observed, memory: Memory) -> Verdict:
        rule = self.rule
        name = self.group(seen.ctx)
        key = f"reports:{name}"
        state = memory.get(key) or {"reports": [], "fired_at": None}
        outlet = outlet_of(seen.ctx, rule.outlet_field)
        reports = [r for r in state["reports"] if _near(r[0], seen.time, 2 * rule.window)]
        reports.append([seen.at, outlet, seen.evidence_json()])
        near = [r for r in reports if _near(r[0], seen.time, rule.window)]
        first_by_outlet: dict[str, list[Any]] = {}
        for report in sorted(near, key=lambda r: r[0]):
            first_by_outlet.setdefault(report[1], report)
        outlets = sorted(first_by_outlet)
        window = fmt_duration(rule.window)
        fired = state.get("fired_at")
        counted = (
            f"{len(outlets)} distinct outlets for {name} within {window} ({', '.join(outlets)})"
        )
        # The data of a verdict that does not fire is unread: only a firing one builds it.
        if len(outlets) < rule.min_outlets:
            memory.put(key, {"reports": reports, "fired_at": fired})
            return Verdict(False, f"{counted}, below {rule.min_outlets}")
        if fired is not None and _near(fired, seen.time, rule.window):
            memory.put(key, {"reports": reports, "fired_at": fired})
            return Verdict(False, f"{counted}: corroboration already reported at {fired}")
        data = {
            **fact_data(seen.ctx),
            "outlets": outlets,
            "min_outlets": rule.min_outlets,
            "window": window,
            "key": name,
        }
        memory.put(key, {"reports": reports, "fired_at": seen.at})
        evidence = [_ev(r[2]) for r in first_by_outlet.values()]
        return Verdict(True, f"{counted} reaches {rule.min_outlets}", data, evidence)


def _near(iso: str, when: datetime, window: timedelta) -> bool:
    return abs(_parse(iso) - when) <= window


# Times kept in state are ISO text, read again by each later fact: parse each once.
_parse = lru_cache(maxsize=8192)(datetime.fromisoformat)


RULE_TYPES: dict[str, type[RuleType]] = {
    "match": Match,
    "new_value": NewValue,
    "jump": Jump,
    "transition": Transition,
    "frequency": Frequency,
    "corroborated": Corroborated,
}


def rule_type_for(rule: Rule) -> RuleType:
    return RULE_TYPES[rule.type](rule)
