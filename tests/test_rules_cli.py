"""The rule engine's commands through the `monitor` command line: `rules check` in a real
subprocess (its exit codes are what CI scripts read), the rest in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.store.log import EventStore
from tests.conftest import ROOT
from tests.support.cli import run_cli as monitor
from tests.test_alerting import ceasefire, fact_event, killed, write

MONITOR = [sys.executable, "-m", "monitor.cli"]


def subprocess_monitor(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    return subprocess.run(
        [*MONITOR, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = EventStore(url)
    store.append(
        [
            fact_event(killed(80), n=1),
            fact_event(ceasefire("collapsed"), hours=1, n=2),
            fact_event(killed(400), hours=2, n=3),
        ]
    )
    store.close()
    return url


def test_rules_check_exit_codes(tmp_path: Path) -> None:
    assert subprocess_monitor("rules", "check", "rules").returncode == 0
    write(tmp_path, "bad.yaml", "id: x\ntype: match\nevent: ceasefire\nchanels: [all]\n")
    proc = subprocess_monitor("rules", "check", str(tmp_path))
    assert proc.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:4:1: chanels" in proc.stderr
    assert "did you mean 'channels'" in proc.stderr


def test_rules_test_runs_the_shipped_tests() -> None:
    proc = monitor("rules", "test", "rules/tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout


def test_backtest_explain_and_silences(db: str, tmp_path: Path) -> None:
    proc = monitor("rules", "backtest", "--db", db, "--rules", "rules", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["rule"] for r in rows] == ["ceasefire-collapse", "casualty-jump"]
    # Nothing was written by the backtest: no alert in the log.
    listed = monitor("events", "list", "--db", db, "--type", "AlertRaised", "--format", "jsonl")
    assert listed.stdout == ""

    added = monitor(
        "silence",
        "add",
        "--match",
        "rule=ceasefire-collapse",
        "--for",
        "6h",
        "--comment",
        "drill",
        "--db",
        db,
        "--format",
        "jsonl",
    )
    assert added.returncode == 0, added.stderr
    silence_id = json.loads(added.stdout)["silence_id"]
    listed = monitor("silence", "list", "--db", db)
    assert silence_id in listed.stdout and "active" in listed.stdout
    assert monitor("silence", "add", "--match", "rule", "--db", db).returncode == 2
    expired = monitor("silence", "expire", silence_id[:8], "--db", db)
    assert expired.returncode == 0 and silence_id in expired.stdout
    assert silence_id not in monitor("silence", "list", "--db", db).stdout
    assert silence_id in monitor("silence", "list", "--all", "--db", db).stdout

    changed = tmp_path / "changed"
    changed.mkdir()
    for path in (ROOT / "rules" / "alerts").glob("*.yaml"):
        if path.name != "ceasefire-collapse.yaml":
            (changed / path.name).write_text(path.read_text())
    diff = monitor("rules", "backtest", "--db", db, "--rules", "rules", "--against", str(changed))
    assert diff.returncode == 0, diff.stderr
    assert "- ceasefire-collapse" in diff.stdout and "0 added, 1 removed" in diff.stdout

    event_id = next(
        e for e in EventStore(db).read(types=["FactReported"]) if e.data.fact.type == "ceasefire"
    ).id
    explained = monitor(
        "rules",
        "explain",
        "ceasefire-collapse",
        "--event",
        event_id,
        "--db",
        db,
        "--rules",
        "rules",
    )
    assert explained.returncode == 0, explained.stderr
    assert "selected" in explained.stdout and "raised alert" in explained.stdout
    assert (
        monitor(
            "rules", "explain", "nope", "--event", event_id, "--db", db, "--rules", "rules"
        ).returncode
        == 1
    )


def test_alerts_explain_from_a_replayed_log(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'seeds.db'}"
    replay = monitor("replay", "seeds", "--db", db, "--format", "jsonl")
    assert replay.returncode == 0, replay.stderr
    jump = next(json.loads(x) for x in replay.stdout.splitlines() if '"casualty-jump"' in x)
    proc = monitor("alerts", "explain", jump["id"][:8], "--db", db, "--rules", "rules")
    assert proc.returncode == 0, proc.stderr
    assert "previous: 84" in proc.stdout and "current: 963" in proc.stdout
    assert "meets min_increase 100" in proc.stdout and "the rule is unchanged since" in proc.stdout
    assert monitor("alerts", "explain", "ffffffff", "--db", db).returncode == 1
