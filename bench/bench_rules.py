"""Benchmark: rule evaluation throughput, N rules over M stored facts.

    .venv/bin/python bench/bench_rules.py [--events 100000] [--db-dir DIR] [--skip-growth]
    .venv/bin/python bench/bench_rules.py --profile live|backtest|evaluator [--events N]

Builds SQLite logs of synthetic ``FactReported`` events (fixed seed; articles of four facts,
tolls that climb, truces that hold and break, outside actors, downings, spread over ten
watches), then measures on copies of the same database file:

- live: ``Evaluator.catch_up`` (reads the log, keeps rule state in ``rule_state``, appends
  alerts, outbox rows and suppressions in the evaluator's transactions);
- backtest: ``backtest`` (reads the log, evaluates in memory, writes nothing);
- evaluator: the same evaluation over events already read into memory, which leaves out
  the log read (the store's share of the two rows above).

Rule sets of 1, 10 and 100 rules. They are modelled on ``rules/alerts``: ten kinds of rule
(jumps in tolls, collapsed truces, new outside actors, transitions, frequency,
corroboration, held and inhibiting matches), first as ten generic rules, then the same
kinds tuned per watch, as a deployment grows. The 1-rule run (one generic casualty jump) is
the same-run baseline: mostly the cost of reading the log. "index off" visits every rule
of a fact's type, as the evaluator did before it indexed rules by their selectors.

Prints a table of events/s and microseconds per event (wall clock, and the process's CPU
time, which other work on a shared machine disturbs less) with ratios to the baseline,
then a growth table at x1, x10 and x100 facts. Absolute figures depend on the machine; the
ratios are what the README quotes. ``--profile MODE`` runs one mode with 100 rules under
pyinstrument (the ``bench`` extra) and prints where the time goes instead.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.alerting.backtest import backtest
from monitor.alerting.evaluator import INPUT_TYPES, Evaluator, Route, Trace
from monitor.alerting.index import RuleIndex
from monitor.alerting.pending import compile_rule
from monitor.alerting.rules import RuleFile, RuleSet, make_ruleset
from monitor.events import (
    ArticleRef,
    Casualties,
    Ceasefire,
    Downing,
    FactReported,
    ThirdParty,
)
from monitor.store.log import EventStore, NewEvent, StoredEvent

WATCHES = [f"w{i}" for i in range(10)]
OUTLETS = [f"Outlet {i}" for i in range(20)]
ACTORS = ["TUR", "RUS", "USA", "FRA", "IRN", "SYR", "ISR", "UN", "EU", "OSCE", "GEO", "UKR"]
BROKERS = ["RUS", "USA", "TUR", None]
STATUSES = ["called_for", "proposed", "agreed", "violated", "collapsed"]
T0 = datetime(2020, 1, 1, tzinfo=UTC)
FACTS_PER_ARTICLE = 4
ROUTES = [Route(name="console", tags=["*"])]


class World:
    """The state of ten synthetic conflicts, reported on one fact at a time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tolls: dict[tuple[str, str | None, str, str], int] = {}
        self.truce = dict.fromkeys(WATCHES, "proposed")

    def fact(self, watch: str, i: int) -> Casualties | Ceasefire | ThirdParty | Downing:
        rng = self.rng
        quote = f"Synthetic report number {i}."
        span = (0, len(quote))
        kind = rng.random()
        if kind < 0.45:
            side = rng.choice(["north", "south", None])
            category = "civilian" if side is None else rng.choice(["military", "civilian"])
            outcome = rng.choice(["killed", "wounded"])
            cumulative = rng.random() < 0.7
            count = rng.randint(1, 12) + (40 if rng.random() < 0.01 else 0)
            if cumulative:  # running tolls climb slowly, with a rare sharp rise
                key = (watch, side, category, outcome)
                rise = rng.randint(0, 4) + (150 if rng.random() < 0.01 else 0)
                count = self.tolls[key] = self.tolls.get(key, rng.randint(5, 50)) + rise
            stance = "denied" if rng.random() < 0.05 else "reported"
            return Casualties(
                quote=quote,
                span=span,
                side=side,
                category=category,
                outcome=outcome,
                count=count,
                cumulative=cumulative,
                stance=stance,
            )
        if kind < 0.65:
            if rng.random() < 0.01:  # most reports restate where the truce stands
                self.truce[watch] = rng.choice(STATUSES)
            return Ceasefire(
                quote=quote, span=span, status=self.truce[watch], broker=rng.choice(BROKERS)
            )
        if kind < 0.90:
            return ThirdParty(
                quote=quote,
                span=span,
                actor=rng.choice(ACTORS),
                kind=rng.choice(["military", "arms", "political", "mediation"]),
            )
        asset = rng.choice(["drone", "drone", "drone", "aircraft", "helicopter"])
        return Downing(quote=quote, span=span, asset=asset)


def build_log(url: str, n: int, seed: int = 7) -> None:
    world = World(seed)
    rng = world.rng
    store = EventStore(url)
    batch: list[NewEvent] = []
    ref = ArticleRef(article_id="", url="")
    watch = WATCHES[0]
    for i in range(n):
        if i % FACTS_PER_ARTICLE == 0:
            a = i // FACTS_PER_ARTICLE
            when = T0 + timedelta(minutes=4 * a)
            watch = rng.choice(WATCHES)
            outlet = rng.choice(OUTLETS)
            ref = ArticleRef(
                article_id=f"a{a}", url=f"https://news.test/{a}", outlet=outlet, published=when
            )
        data = FactReported(watch=watch, article=ref, fact=world.fact(watch, i))
        batch.append(
            NewEvent(
                stream=f"article:{ref.article_id}",
                data=data,
                idempotency_key=f"f{i}",
                occurred_at=ref.published,
            )
        )
        if len(batch) == 2000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)
    store.close()


# Ten kinds of rule, as ``rules/alerts`` writes them; ``k`` tunes a per-watch copy.
KINDS: list[Callable[[int], dict[str, Any]]] = [
    lambda k: {
        "type": "jump",
        "event": "casualties",
        "where": {
            "cumulative": True,
            "side": {"exists": True},
            "count": {"exists": True},
            "stance": {"not_in": ["denied"]},
        },
        "series": ["watch", "side", "category", "outcome"],
        "min_increase": 100 + 10 * k,
        "min_percent": 50,
        "dedup_key": "{{ watch }}:{{ side }}:{{ category }}:{{ outcome }}:{{ data.current }}",
        "title": "{{ watch }}: {{ side }} {{ category }} {{ outcome }} rose to {{ data.current }}",
    },
    lambda k: {
        "type": "jump",
        "event": "casualties",
        "where": {"category": "civilian", "cumulative": True, "side": {"exists": False}},
        "series": ["watch", "place", "category", "outcome"],
        "min_increase": 50 + 5 * k,
        "min_percent": 50,
    },
    lambda k: {
        "type": "match",
        "event": "ceasefire",
        "severity": "critical",
        "where": {"status": "collapsed", "stance": {"not_in": ["denied"]}},
        "per_report": True,
        "collect": {"brokers": "broker"},
        "dedup_key": "{{ watch }}:{{ data.brokers | sort | join(',') or 'unbrokered' }}",
        "cooldown": f"{7 + k}d",
    },
    lambda k: {"type": "new_value", "event": "third_party", "value": "actor", "per": ["watch"]},
    lambda k: {
        "type": "transition",
        "event": "ceasefire",
        "key": ["watch"],
        "from": ["agreed"],
        "to": ["violated", "collapsed"],
        "cooldown": "1d",
    },
    lambda k: {
        "type": "frequency",
        "event": "downing",
        "threshold": 6 + k % 3,
        "window": "6h",
        "cooldown": "2d",
    },
    lambda k: {
        "type": "corroborated",
        "event": "ceasefire",
        "where": {"status": "agreed"},
        "key": ["watch"],
        "min_outlets": 3,
        "window": "12h",
        "cooldown": "2d",
    },
    lambda k: {
        "type": "match",
        "event": "casualties",
        "where": {"category": "civilian", "cumulative": False, "count": {"gte": 40 + k}},
        "dedup_key": "{{ watch }}",
        "cooldown": "1d",
    },
    lambda k: {
        "type": "match",
        "event": "third_party",
        "where": {"kind": {"in": ["military", "arms"]}, "actor": {"in": ["RUS", "TUR", "IRN"]}},
        "for": "6h",
        "confirm_outlets": 2,
        "dedup_key": "{{ watch }}:{{ actor }}",
        "cooldown": "3d",
    },
    lambda k: {
        "type": "match",
        "event": "downing",
        "severity": "info",
        "where": {"asset": "helicopter"},
        "dedup_key": "{{ watch }}",
        "cooldown": "2d",
        "inhibit_key": "{{ watch }}",
    },
]


def make_rules(count: int) -> RuleSet:
    """Rule ``i`` is kind ``i % 10``; the first ten are generic (every watch), the next
    ones the same kinds tuned for one watch each."""
    raw: list[dict[str, object]] = []
    for i in range(count):
        tier = i // len(KINDS)
        spec = KINDS[i % len(KINDS)](tier)
        scope = {} if tier == 0 else {"watches": [WATCHES[tier % len(WATCHES)]]}
        raw.append({"id": f"r{i:03d}", "severity": "warning", **spec, **scope})
    return make_ruleset(RuleFile.model_validate({"rules": raw}).rules)


@dataclass
class Run:
    rules: int
    mode: str
    events: int
    seconds: float
    alerts: int
    visits: float = 0.0  # rules visited per event
    cpu: float = 0.0  # the process's CPU seconds

    @property
    def cpu_micros(self) -> float:
        return self.cpu / self.events * 1e6

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def micros(self) -> float:
        return self.seconds / self.events * 1e6


Timing = tuple[float, float, int]  # wall seconds, CPU seconds, alerts


def timed(run: Callable[[], int]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    alerts = run()
    return time.perf_counter() - wall, time.process_time() - cpu, alerts


def live(src: Path, work: Path, rules: RuleSet) -> Timing:
    shutil.copy(src, work)
    store = EventStore(f"sqlite:///{work}")
    found = timed(lambda: len(Evaluator(rules, ROUTES).catch_up(store)))
    store.close()
    return found


def from_log(src: Path, rules: RuleSet) -> Timing:
    store = EventStore(f"sqlite:///{src}")
    found = timed(lambda: len(backtest(store, rules).alerts))
    store.close()
    return found


def in_memory(events: list[StoredEvent], rules: RuleSet, index: bool = True) -> Timing:
    """Best of three (these runs are short, and the machine is shared)."""
    best: Timing = (float("inf"), float("inf"), 0)
    for _ in range(3):
        # A trace for no (rule, event) pair makes the evaluator visit every rule of the
        # fact's type, as it did before the index: the "index off" row.
        evaluator = Evaluator(rules, ROUTES, trace=None if index else Trace("", ""))
        found = timed(lambda: len(evaluator.run(events).alerts))  # noqa: B023 (run at once)
        best = (min(best[0], found[0]), min(best[1], found[1]), found[2])
    return best


def visits(events: list[StoredEvent], rules: RuleSet, index: bool = True) -> float:
    found = RuleIndex([compile_rule(r) for r in rules.rules])
    facts = [e.data for e in events if isinstance(e.data, FactReported)]
    if not index:
        return sum(len(found.by_type.get(f.fact.type, ())) for f in facts) / max(len(facts), 1)
    return sum(len(found.candidates(f)) for f in facts) / max(len(facts), 1)


def read_all(src: Path) -> list[StoredEvent]:
    store = EventStore(f"sqlite:///{src}")
    events = list(store.read(types=INPUT_TYPES))
    store.close()
    return events


def measure(src: Path, work: Path, n: int, counts: list[int], modes: list[str]) -> list[Run]:
    events = read_all(src)
    runs: list[Run] = []
    for mode in modes:
        for count in counts:
            rules = make_rules(count)
            if mode == "live":
                elapsed, cpu, alerts = live(src, work, rules)
            elif mode == "backtest":
                elapsed, cpu, alerts = from_log(src, rules)
            elif mode == "evaluator":
                elapsed, cpu, alerts = in_memory(events, rules)
            else:  # "index off"
                elapsed, cpu, alerts = in_memory(events, rules, index=False)
            seen = visits(events, rules, index=mode != "index off")
            runs.append(Run(count, mode, n, elapsed, alerts, seen, cpu))
            print(
                f"  {mode:<10} {count:>3} rules: {elapsed:6.1f}s ({cpu:.1f}s CPU)",
                file=sys.stderr,
                flush=True,
            )
    return runs


def table(runs: list[Run]) -> None:
    base = {r.mode: r for r in runs if r.rules == 1}
    print(
        "| rules | mode | events/s | µs/event | CPU µs/event | x 1-rule µs "
        "| rules visited/event | alerts |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for r in runs:
        ratio = r.micros / base[r.mode].micros if r.mode in base else float("nan")
        print(
            f"| {r.rules} | {r.mode} | {r.rate:,.0f} | {r.micros:.1f} | {r.cpu_micros:.1f} "
            f"| {ratio:.2f} | {r.visits:.2f} | {r.alerts} |"
        )


def profile(mode: str, src: Path, work: Path, n: int) -> int:
    """One mode, 100 rules, under pyinstrument: the report goes to stdout."""
    from pyinstrument import Profiler

    build_log(f"sqlite:///{src}", n)
    rules = make_rules(100)
    events = read_all(src) if mode == "evaluator" else []
    profiler = Profiler()
    with profiler:
        if mode == "live":
            elapsed, cpu, alerts = live(src, work, rules)
        elif mode == "backtest":
            elapsed, cpu, alerts = from_log(src, rules)
        else:
            elapsed, cpu, alerts = timed(lambda: len(Evaluator(rules, ROUTES).run(events).alerts))
    print(profiler.output_text(color=False, show_all=False))
    print(f"{mode}: {n / elapsed:,.0f} events/s, {cpu / n * 1e6:.1f} CPU µs/event, {alerts} alerts")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--db-dir", type=Path, default=None)
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--profile", choices=["live", "backtest", "evaluator"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rules-", dir=args.db_dir) as tmp:
        work = Path(tmp) / "work.db"
        if args.profile is not None:
            return profile(args.profile, Path(tmp) / "log.db", work, args.events)
        logs: dict[int, Path] = {}
        sizes = [args.events] if args.skip_growth else [args.events // 100, args.events // 10]
        for n in sorted({*sizes, args.events}):
            logs[n] = Path(tmp) / f"log{n}.db"
            t = time.perf_counter()
            build_log(f"sqlite:///{logs[n]}", n)
            print(f"built {n} facts in {time.perf_counter() - t:.1f}s", file=sys.stderr)

        n = args.events
        print(f"\n{n:,} facts, 1/10/100 rules (ratios: µs/event over the 1-rule run's)\n")
        modes = ["live", "backtest", "evaluator"]
        runs = measure(logs[n], work, n, [1, 10, 100], modes)
        runs += measure(logs[n], work, n, [100], ["index off"])
        table(runs)
        if args.skip_growth:
            return 0

        print("\ngrowth: µs/event at x1, x10, x100 facts (100 rules; 1-rule run as baseline)\n")
        print("| facts | mode | µs/event, 1 rule | µs/event, 100 rules | ratio | alerts |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for size in sorted(logs):
            found = (
                runs
                if size == n
                else measure(logs[size], work, size, [1, 100], ["live", "backtest"])
            )
            for mode in ("live", "backtest"):
                one = next(r for r in found if r.mode == mode and r.rules == 1)
                full = next(r for r in found if r.mode == mode and r.rules == 100)
                print(
                    f"| {size:,} | {mode} | {one.micros:.1f} | {full.micros:.1f} "
                    f"| {full.micros / one.micros:.2f} | {full.alerts} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
