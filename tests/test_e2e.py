"""End to end: the seeds replayed through the real command and the real daemon.

These tests state what the shipped rules must conclude from the three seed articles. They
run ``monitor replay`` and ``monitor run`` in a subprocess, exactly as a user would; the
reads that check what those wrote (``alerts list``, ``events list``) run in this process,
so that polling for a daemon's alerts does not start a Python every half second beside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.extract.text import article_text
from tests.conftest import ROOT, SEEDS
from tests.support.cli import run_cli
from tests.support.httpserver import TestServer

MONITOR = [sys.executable, "-m", "monitor.cli"]


def run_monitor(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MONITOR_CONFIG", None)
    return subprocess.run(
        [*MONITOR, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def replay(db: str, *paths: str) -> list[dict]:
    proc = run_monitor("replay", *paths, "--db", db, "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def seed_alerts(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'seeds.db'}"
    return db, replay(db, "seeds")


def by_rule(alerts: list[dict], rule: str) -> list[dict]:
    return [a for a in alerts if a["rule"] == rule]


def page_text(url: str) -> str:
    path = Path(url.removeprefix("file://"))
    return article_text(path.read_bytes(), url=url).text


def test_every_line_is_an_alert_object_with_the_contract_fields(seed_alerts) -> None:
    _, alerts = seed_alerts
    assert alerts
    for alert in alerts:
        for key in (
            "id",
            "rule",
            "severity",
            "watch",
            "title",
            "summary",
            "dedup_key",
            "data",
            "evidence",
        ):
            assert key in alert, key
        assert alert["evidence"]
        for ev in alert["evidence"]:
            assert {"event_id", "quote", "url", "outlet", "published"} <= ev.keys()


def test_ceasefire_collapse_raised_once_by_the_rferl_report(seed_alerts) -> None:
    _, alerts = seed_alerts
    collapse = by_rule(alerts, "ceasefire-collapse")
    assert len(collapse) == 1
    alert = collapse[0]
    assert alert["evidence"][0]["url"].endswith("001_7f5d40a5f4979764.html")
    assert alert["data"]["status"] == "collapsed" and alert["data"]["broker"] == "RUS"


def test_casualty_jump_armenian_military_deaths_84_to_963(seed_alerts) -> None:
    _, alerts = seed_alerts
    armenian = [
        a
        for a in by_rule(alerts, "casualty-jump")
        if a["data"]["side"] == "armenian" and a["data"]["category"] == "military"
    ]
    assert len(armenian) == 1
    data = armenian[0]["data"]
    assert (data["previous"], data["current"], data["outcome"]) == (84, 963, "killed")
    urls = [e["url"] for e in armenian[0]["evidence"]]
    assert urls[0].endswith("002_544d5ff0b48e60d1.html") and urls[-1].endswith(
        "000_81398aff7cddd8a7.html"
    )


def test_third_parties_turkey_and_syria_once_and_never_a_primary_party(seed_alerts) -> None:
    _, alerts = seed_alerts
    third = by_rule(alerts, "new-third-party")
    actors = [a["data"]["actor"] for a in third]
    assert actors.count("TUR") == 1
    assert actors.count("SYR") == 1
    assert not {"ARM", "AZE", "NKR"} & set(actors)
    turkey = next(a for a in third if a["data"]["actor"] == "TUR")
    assert turkey["evidence"][0]["url"].endswith("002_544d5ff0b48e60d1.html")
    assert turkey["data"]["kind"]
    assert len(actors) == len(set(actors))


def test_evidence_quotes_the_sentence_of_the_cited_article(seed_alerts) -> None:
    _, alerts = seed_alerts
    texts: dict[str, str] = {}
    for alert in alerts:
        for ev in alert["evidence"]:
            text = texts.setdefault(ev["url"], page_text(ev["url"]))
            assert ev["quote"] in text
            assert ev["outlet"]


def test_second_replay_into_the_same_database_adds_nothing(seed_alerts) -> None:
    db, _ = seed_alerts
    before = run_cli("events", "list", "--db", db, "--format", "jsonl").stdout.count("\n")
    assert replay(db, "seeds") == []
    after = run_cli("events", "list", "--db", db, "--format", "jsonl").stdout.count("\n")
    assert after == before


def test_replay_into_a_fresh_database_raises_the_same_alerts(seed_alerts, tmp_path: Path) -> None:
    _, first = seed_alerts
    again = replay(f"sqlite:///{tmp_path / 'fresh.db'}", "seeds")
    assert [(a["id"], a["dedup_key"]) for a in again] == [(a["id"], a["dedup_key"]) for a in first]


def test_article_files_are_ingested_directly(tmp_path: Path) -> None:
    alerts = replay(
        f"sqlite:///{tmp_path / 'txt.db'}", *sorted(str(p) for p in SEEDS.glob("*.txt"))
    )
    assert {a["data"].get("actor") for a in by_rule(alerts, "new-third-party")} >= {"TUR", "SYR"}


def test_daemon_polls_http_feeds_prints_alerts_and_stops_cleanly(tmp_path: Path) -> None:
    with TestServer(SEEDS) as server:
        config = tmp_path / "monitor.toml"
        feeds = "".join(
            f'[[feeds]]\nname = "{name}"\nurl = "{server.base}/feeds/{name}.xml"\ninterval = "1h"\n'
            for name in ("ap", "rferl", "levant-wire")
        )
        config.write_text(
            f'db = "sqlite:///{tmp_path / "d.db"}"\n'
            f'rules_dir = "{ROOT / "rules"}"\ndeliver_interval = "1s"\n'
            f'{feeds}[[channels]]\nname = "console"\nurl = "console://"\n'
        )
        proc = subprocess.Popen(
            [*MONITOR, "run", "--config", str(config)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        done = False
        while time.monotonic() < deadline and not done:
            time.sleep(0.5)
            status = run_cli("alerts", "list", "--config", str(config), "--format", "jsonl").stdout
            rows = [json.loads(x) for x in status.splitlines()]
            done = (
                bool(rows)
                and all(r["deliveries"].get("console") == "delivered" for r in rows)
                and len(rows) >= 4
            )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert done, err
    assert "ceasefire" in err and "=== [CRITICAL]" in err
    assert out == ""


def test_example_config_runs_on_a_fresh_checkout_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """What `make run` does: the shipped config, a database directory that does not exist yet,
    alerts printed within seconds, and a clean exit on Ctrl-C (SIGINT)."""
    env = {
        **os.environ,
        "MONITOR_DB": f"sqlite:///{tmp_path / 'not-yet' / 'monitor.db'}",
        "MONITOR_HTTP_LISTEN": "",
    }
    env.pop("MONITOR_CONFIG", None)
    env.pop("MONITOR_MAILTO_URL", None)
    proc = subprocess.Popen(
        [*MONITOR, "run", "--config", str(ROOT / "config.example.toml")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    db = f"sqlite:///{tmp_path / 'not-yet' / 'monitor.db'}"
    deadline = time.monotonic() + 60
    delivered = 0
    while time.monotonic() < deadline and delivered < 3 and proc.poll() is None:
        time.sleep(0.5)
        rows = run_cli("alerts", "list", "--db", db, "--format", "jsonl").stdout.splitlines()
        delivered = sum(json.loads(r)["deliveries"].get("console") == "delivered" for r in rows)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-3000:]
    assert delivered >= 3, err[-3000:]
    assert out == ""  # alerts and logs both go to stderr
    assert "=== [" in err and "Traceback" not in err
    assert "email" in err and "MONITOR_MAILTO_URL" in err  # the skipped channel is explained


def test_alerts_list_after_a_replay_shows_every_alert_it_raised(seed_alerts) -> None:
    """The alerts read model is brought up after the rules, so the last article's alerts
    are listed too."""
    db, alerts = seed_alerts
    rows = run_cli("alerts", "list", "--db", db, "--format", "jsonl").stdout.splitlines()
    assert sorted(json.loads(r)["alert_id"] for r in rows) == sorted(a["id"] for a in alerts)
