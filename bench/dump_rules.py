"""Dump what the rules concluded on a ``bench_rules`` log, to compare two versions of the
evaluator byte for byte (a speed change must not change one alert, text or state row).

    .venv/bin/python bench/dump_rules.py LOG.db OUT.txt [--rules 100] [--build 100000]

``--build N`` first writes a log of N synthetic facts to LOG.db (``bench_rules.build_log``);
without it LOG.db must exist. Event ids are random, so both versions must read the same
LOG.db. The log is copied, followed live (``Evaluator.catch_up``), and the copy's alerts,
suppressions and failures (in log order, every field but the wall-clock ones), outbox rows
and final ``rule_state`` are written to OUT.txt, then the same rules' backtest of the log
(alerts and suppressions in order). Compare two dumps with ``cmp``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
from pathlib import Path

from bench_rules import ROUTES, build_log, make_rules

from monitor.alerting.backtest import backtest
from monitor.alerting.evaluator import Evaluator
from monitor.store.log import EventStore

OUTPUT_TYPES = ("AlertRaised", "AlertSuppressed", "RuleFailed")


def dump(log: Path, out: Path, rules: int) -> None:
    ruleset = make_rules(rules)
    with tempfile.TemporaryDirectory(prefix="dump-rules-") as tmp:
        work = Path(tmp) / "work.db"
        shutil.copy(log, work)
        store = EventStore(f"sqlite:///{work}")
        raised = Evaluator(ruleset, ROUTES).catch_up(store)
        store.close()
        db = sqlite3.connect(work)
        marks = ",".join("?" * len(OUTPUT_TYPES))
        with out.open("w") as f:
            f.write(f"live: {len(raised)} alerts returned\n")
            for row in db.execute(
                "SELECT type, stream, idempotency_key, occurred_at, data, metadata FROM events "
                f"WHERE type IN ({marks}) ORDER BY seq",
                OUTPUT_TYPES,
            ):
                f.write("event " + "\t".join(str(v) for v in row) + "\n")
            for row in db.execute(
                "SELECT alert_id, channel, status, attempts, kind, ref FROM outbox ORDER BY id"
            ):
                f.write("outbox " + "\t".join(str(v) for v in row) + "\n")
            for row in db.execute("SELECT rule, key, value FROM rule_state ORDER BY rule, key"):
                f.write("state " + "\t".join(str(v) for v in row) + "\n")
            db.close()
            store = EventStore(f"sqlite:///{log}")
            result = backtest(store, ruleset)
            store.close()
            for alert in result.alerts:
                f.write("backtest alert " + alert.model_dump_json() + "\n")
            for item in result.suppressions:
                f.write("backtest suppressed " + item.model_dump_json() + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--build", type=int, default=None)
    args = parser.parse_args()
    if args.build is not None:
        build_log(f"sqlite:///{args.log}", args.build)
    dump(args.log, args.out, args.rules)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
