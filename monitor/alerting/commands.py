"""The rule engine's command-line verbs, as functions writing to a stream.

``monitor/cli.py`` only parses arguments and opens the store; everything a user sees from
``rules test|backtest|explain``, ``alerts explain`` and ``silence add|list|expire`` is
produced here, so it is tested without a subprocess. Each returns the exit status.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from monitor.alerting.backtest import (
    ExplainError,
    alert_row,
    backtest,
    compare,
    explain_alert,
    explain_rule,
)
from monitor.alerting.rules import RuleSet, load_rules, parse_span
from monitor.alerting.ruletest import run_paths
from monitor.alerting.silences import SilenceError, add_silence, expire_silence, list_silences
from monitor.events import AlertRaised
from monitor.store.log import EventStore


def _jsonl(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def alerts_dir(path: Path) -> Path:
    """A rules directory (with ``alerts/``) or an alerts directory itself."""
    return path / "alerts" if (path / "alerts").is_dir() else path


def load_alert_rules(path: Path) -> RuleSet:
    return load_rules(alerts_dir(path))


def rules_test(paths: list[Path], out: TextIO, err: TextIO) -> int:
    """Run YAML rule tests; 0 when all pass, 1 when any fails, 2 when a file is invalid."""
    results, errors = run_paths(paths)
    for problem in errors:
        err.write(problem + "\n")
    for r in results:
        out.write(f"{'PASS' if r.ok else 'FAIL'} {r.file}: {r.name}\n")
        for problem in r.problems:
            out.write(f"    {problem}\n")
    failed = sum(not r.ok for r in results)
    out.write(f"{len(results) - failed} passed, {failed} failed\n")
    if errors:
        return 2
    return 1 if failed or not results else 0


def _alert_line(prefix: str, alert: AlertRaised) -> str:
    state = f"[{alert.severity}/{alert.status}]"
    return f"{prefix} {alert.rule} {state} {alert.title} ({alert.alert_id[:8]})"


def rules_backtest(
    store: EventStore,
    rules: RuleSet,
    *,
    against: RuleSet | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: str = "text",
    out: TextIO,
) -> int:
    """Replay the stored log through ``rules`` (in memory: nothing is written or sent). With
    ``against``, show what changing the rules to ``against`` adds and removes."""
    base = backtest(store, rules, since=since, until=until)
    if against is None:
        for alert in base.alerts:
            if fmt == "jsonl":
                _jsonl(out, {**alert_row(alert), "data": alert.data})
            else:
                out.write(_alert_line("ALERT", alert) + "\n")
        if fmt == "text":
            out.write(
                f"{len(base.alerts)} alerts, {len(base.suppressions)} suppressed, "
                f"{base.events} events, {len(rules.rules)} rules\n"
            )
        return 0
    other = backtest(store, against, since=since, until=until)
    diff = compare(base, other)
    for sign, alerts in (("+", diff.added), ("-", diff.removed)):
        for alert in alerts:
            if fmt == "jsonl":
                _jsonl(out, {"change": "added" if sign == "+" else "removed", **alert_row(alert)})
            else:
                out.write(_alert_line(sign, alert) + "\n")
    if fmt == "text":
        out.write(
            f"{len(diff.added)} added, {len(diff.removed)} removed, {diff.unchanged} unchanged "
            f"over {base.events} events\n"
        )
    return 0


def rules_explain(
    store: EventStore, rules: RuleSet, rule_id: str, event_id: str, out: TextIO, err: TextIO
) -> int:
    try:
        lines = explain_rule(store, rules, rule_id, event_id)
    except ExplainError as exc:
        err.write(f"monitor: {exc}\n")
        return 1
    out.write("\n".join(lines) + "\n")
    return 0


def alerts_explain(
    store: EventStore, alert_id: str, rules: RuleSet | None, out: TextIO, err: TextIO
) -> int:
    try:
        lines = explain_alert(store, alert_id, rules)
    except ExplainError as exc:
        err.write(f"monitor: {exc}\n")
        return 1
    out.write("\n".join(lines) + "\n")
    return 0


def silence_add(
    store: EventStore,
    matchers: list[str],
    duration: str,
    *,
    now: datetime,
    comment: str = "",
    author: str | None = None,
    fmt: str = "text",
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        added = add_silence(
            store, matchers, parse_span(duration), now=now, comment=comment, created_by=author
        )
    except (SilenceError, ValueError) as exc:
        err.write(f"monitor: {exc}\n")
        return 2
    if fmt == "jsonl":
        _jsonl(out, added.model_dump(mode="json", exclude={"type"}))
    else:
        out.write(f"{added.silence_id} until {added.ends_at.isoformat()}\n")
    return 0


def silence_list(
    store: EventStore, *, now: datetime, include_expired: bool, fmt: str, out: TextIO
) -> int:
    for row in list_silences(store, now=now, include_expired=include_expired):
        if fmt == "jsonl":
            _jsonl(out, row)
        else:
            match = ",".join(f"{m['name']}{m['op']}{m['value']}" for m in row["matchers"])
            out.write(
                f"{row['silence_id']} {row['status']:<7} {match} "
                f"{row['starts_at']} -> {row['ends_at']} {row['comment']}\n"
            )
    return 0


def silence_expire(
    store: EventStore, silence_id: str, *, now: datetime, out: TextIO, err: TextIO
) -> int:
    try:
        expired = expire_silence(store, silence_id, now=now)
    except SilenceError as exc:
        err.write(f"monitor: {exc}\n")
        return 1
    out.write(f"expired {expired.silence_id} at {expired.expired_at.isoformat()}\n")
    return 0
