"""Benchmark: rule evaluation throughput, N rules over M stored facts.

    .venv/bin/python bench/bench_rules.py [--events 100000] [--rules 100] [--db-dir DIR]

Builds a SQLite log of synthetic ``FactReported`` events (fixed seed), then measures, on
copies of the same database file:

- live: ``Evaluator.catch_up`` (reads the log, rule state in ``rule_state``, appends alerts,
  outbox rows and suppressions in the evaluator's transactions), with 1 rule (the baseline:
  mostly the cost of reading the log) and with all rules;
- backtest: the same evaluator in memory over the same log (nothing written).

Prints events/s for each; the README quotes the figures.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.alerting.backtest import backtest
from monitor.alerting.evaluator import Evaluator, Route
from monitor.alerting.rules import RuleFile, RuleSet, make_ruleset
from monitor.events import (
    ArticleRef,
    Casualties,
    Ceasefire,
    Downing,
    FactReported,
    ThirdParty,
)
from monitor.store.log import EventStore, NewEvent

WATCHES = [f"w{i}" for i in range(10)]
OUTLETS = [f"Outlet {i}" for i in range(20)]
ACTORS = ["TUR", "RUS", "USA", "FRA", "IRN", "SYR", "ISR", "UN", "EU", "OSCE", "GEO", "UKR"]
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def make_fact(rng: random.Random, i: int) -> object:
    kind = rng.random()
    quote = f"Synthetic report number {i}."
    span = (0, len(quote))
    if kind < 0.45:
        return Casualties(
            quote=quote,
            span=span,
            side=rng.choice(["north", "south"]),
            category=rng.choice(["military", "civilian"]),
            outcome=rng.choice(["killed", "wounded"]),
            count=rng.randint(1, 50) + i // 200,
            cumulative=rng.random() < 0.7,
            stance=rng.choice(["reported", "reported", "claimed", "denied"]),
        )
    if kind < 0.65:
        return Ceasefire(
            quote=quote,
            span=span,
            status=rng.choice(["proposed", "agreed", "violated", "collapsed"]),
            broker=rng.choice(["RUS", "USA", "TUR", None]),
        )
    if kind < 0.85:
        return ThirdParty(
            quote=quote,
            span=span,
            actor=rng.choice(ACTORS),
            kind=rng.choice(["military", "arms", "political", "mediation"]),
        )
    return Downing(quote=quote, span=span, asset=rng.choice(["drone", "aircraft", "helicopter"]))


def build_log(url: str, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    store = EventStore(url)
    batch: list[NewEvent] = []
    for i in range(n):
        when = T0 + timedelta(minutes=i)
        ref = ArticleRef(
            article_id=f"a{i}",
            url=f"https://news.test/{i}",
            outlet=rng.choice(OUTLETS),
            published=when,
        )
        data = FactReported(watch=rng.choice(WATCHES), article=ref, fact=make_fact(rng, i))  # type: ignore[arg-type]
        batch.append(
            NewEvent(stream=f"article:a{i}", data=data, idempotency_key=f"f{i}", occurred_at=when)
        )
        if len(batch) == 2000:
            store.append(batch)
            batch = []
    if batch:
        store.append(batch)
    store.close()


def make_rules(count: int) -> RuleSet:
    """A realistic mix: mostly selective match rules, plus every stateful type."""
    raw: list[dict[str, object]] = []
    templates = [
        lambda i: {
            "type": "match",
            "event": "ceasefire",
            "where": {"status": "collapsed", "broker": ["RUS", "USA", "TUR"][i % 3]},
            "dedup_key": "{{ watch }}:{{ broker }}",
            "cooldown": "7d",
        },
        lambda i: {"type": "new_value", "event": "third_party", "value": "actor", "per": ["watch"]},
        lambda i: {
            "type": "jump",
            "event": "casualties",
            "where": {"cumulative": True, "stance": {"not_in": ["denied"]}},
            "min_increase": 100 + i,
            "min_percent": 50,
        },
        lambda i: {
            "type": "match",
            "event": "casualties",
            "where": {"count": {"gte": 400 + i}, "category": "civilian"},
            "dedup_key": "{{ watch }}",
            "cooldown": "1d",
        },
        lambda i: {
            "type": "transition",
            "event": "ceasefire",
            "key": ["watch", "broker"],
            "from": ["agreed"],
            "to": ["collapsed"],
            "cooldown": "1d",
        },
        lambda i: {
            "type": "frequency",
            "event": "downing",
            "threshold": 5 + i % 5,
            "window": "2h",
            "cooldown": "6h",
        },
        lambda i: {
            "type": "corroborated",
            "event": "ceasefire",
            "where": {"status": "agreed"},
            "key": ["watch", "broker"],
            "min_outlets": 3,
            "window": "6h",
            "cooldown": "1d",
        },
        lambda i: {
            "type": "match",
            "event": "downing",
            "where": {"asset": {"regex": "^heli"}},
            "watches": [WATCHES[i % 10]],
            "dedup_key": "{{ watch }}",
            "cooldown": "12h",
            "inhibit_key": "{{ watch }}",
        },
    ]
    for i in range(count):
        spec = templates[i % len(templates)](i // len(templates))
        raw.append({"id": f"r{i:03d}", "severity": ["info", "warning", "critical"][i % 3], **spec})
    rules = RuleFile.model_validate({"rules": raw}).rules
    return make_ruleset(rules)


def timed_catch_up(src: Path, work: Path, rules: RuleSet) -> tuple[float, int]:
    shutil.copy(src, work)
    store = EventStore(f"sqlite:///{work}")
    start = time.perf_counter()
    alerts = Evaluator(rules, [Route(name="console", tags=["*"])]).catch_up(store)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed, len(alerts)


def report(label: str, events: int, elapsed: float, alerts: int) -> None:
    rate = events / elapsed
    print(f"{label:<22} {rate:>9,.0f} events/s  ({elapsed:.1f}s, {alerts} alerts)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--db-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rules-", dir=args.db_dir) as tmp:
        src = Path(tmp) / "log.db"
        t = time.perf_counter()
        build_log(f"sqlite:///{src}", args.events)
        print(
            f"built a log of {args.events} facts in {time.perf_counter() - t:.1f}s", file=sys.stderr
        )
        full = make_rules(args.rules)
        one = full.only({"r002"})  # one jump rule: the baseline
        for label, rules in (("live, 1 rule", one), (f"live, {len(full.rules)} rules", full)):
            elapsed, alerts = timed_catch_up(src, Path(tmp) / "work.db", rules)
            report(label, args.events, elapsed, alerts)
        store = EventStore(f"sqlite:///{src}")
        for label, rules in (
            ("backtest, 1 rule", one),
            (f"backtest, {len(full.rules)} rules", full),
        ):
            start = time.perf_counter()
            result = backtest(store, rules)
            elapsed = time.perf_counter() - start
            report(label, args.events, elapsed, len(result.alerts))
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
