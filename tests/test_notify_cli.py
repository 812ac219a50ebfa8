"""The delivery commands as a user runs them: `monitor notify test`, `alerts list|retry`, and
`--notify URL` on `replay` and `run`; secrets never appear in what they print. The daemon runs
in a real process; the one-shot commands run in this one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from monitor.notify.channels import Channel
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.store.log import EventStore
from monitor.store.projections import all_projections, follow
from tests.conftest import ROOT, SEEDS
from tests.support.cli import run_cli as monitor
from tests.support.httpserver import Reply
from tests.support.notify_helpers import FOOTER, free_port, make_alert, queue, quick_server, rows

MONITOR = [sys.executable, "-m", "monitor.cli"]
PASSWORD = "hunter2-Secret"
TOKEN = "mmCliToken77xq"


def write_config(path: Path, db: str, host: str, dead_port: int, extra: str = "") -> Path:
    path.write_text(
        f'db = "{db}"\nrules_dir = "{ROOT / "rules"}"\ndeliver_interval = "200ms"\n{extra}'
        f'[[channels]]\nname = "hook"\nurl = "json://admin:{PASSWORD}@{host}/hook"\n'
        f'[[channels]]\nname = "chat"\nurl = "mmost://{host}/{TOKEN}"\nformat = "markdown"\n'
        f'[[channels]]\nname = "broken"\nurl = "json://admin:{PASSWORD}@127.0.0.1:{dead_port}/x"\n'
        f'[[channels]]\nname = "ops"\nurl = "json://{host}/ops"\ntags = []\nhealth = true\n'
    )
    return path


def test_notify_test_prints_each_target_without_secrets(tmp_path: Path) -> None:
    with quick_server() as server:
        for path in ("/hook", f"/hooks/{TOKEN}", "/ops"):
            server.route(path, Reply(200, b"{}"))
        host = server.base.removeprefix("http://")
        config = write_config(
            tmp_path / "m.toml", f"sqlite:///{tmp_path / 'd.db'}", host, free_port()
        )
        every = monitor("notify", "test", "--config", str(config))
        one = monitor("notify", "test", "hook", "--config", str(config), "--format", "jsonl")
        posted = [r.path for r in server.requests if r.method == "POST"]
    assert every.returncode == 1, every.stderr  # one target fails
    lines = {line.split("\t")[0]: line.split("\t") for line in every.stdout.splitlines()}
    assert set(lines) == {"hook", "chat", "broken", "ops"}
    assert lines["hook"][1] == f"json://admin:****@{host}/hook" and lines["hook"][2].startswith(
        "ok"
    )
    assert lines["chat"][1] == f"mmost://{host}/****" and lines["chat"][2].startswith("ok")
    assert lines["broken"][2].startswith("FAILED: ")
    assert sorted(posted) == sorted(["/hook", f"/hooks/{TOKEN}", "/ops", "/hook"])
    assert one.returncode == 0 and json.loads(one.stdout)["ok"] is True
    for proc in (every, one):
        assert PASSWORD not in proc.stdout + proc.stderr and TOKEN not in proc.stdout + proc.stderr


def test_given_up_delivery_is_listed_and_retry_requeues_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    store = EventStore(db)
    alert = make_alert(7)
    queue(store, alert, ["broken", "hook"])
    for projection in all_projections():
        follow(store, projection)
    with quick_server() as server:
        server.route("/hook", Reply(200, b"{}"))
        host = server.base.removeprefix("http://")
        dead = free_port()
        channels = [
            Channel(name="broken", url=f"json://admin:{PASSWORD}@127.0.0.1:{dead}/x", tags=["all"]),
            Channel(name="hook", url=f"json://{host}/hook", tags=["all"]),
        ]
        no_age = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(0))
        Deliverer(store, channels, no_age).run_once()
    config = write_config(tmp_path / "m.toml", db, host, dead)

    listed = monitor("alerts", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert alert.alert_id[:8] in listed.stdout and "GIVEN UP" in listed.stdout
    assert "hook:delivered" in listed.stdout
    jsonl = monitor("alerts", "list", "--config", str(config), "--format", "jsonl")
    (record,) = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert record["deliveries"] == {"broken": "given_up", "hook": "delivered"}
    given_up = next(d for d in record["delivery"] if d["channel"] == "broken")
    assert given_up["attempts"] == 1 and "Connection error" in given_up["last_error"]

    retried = monitor("alerts", "retry", alert.alert_id[:8], "--config", str(config))
    assert retried.returncode == 0, retried.stderr
    assert f"re-queued {alert.alert_id[:8]} to broken (after 1 attempts)" in retried.stdout
    assert {r.channel: r.status for r in rows(store)} == {"broken": "pending", "hook": "delivered"}
    for proc in (listed, jsonl, retried):
        assert PASSWORD not in proc.stdout + proc.stderr


def test_replay_with_notify_url_delivers_every_alert_once(tmp_path: Path) -> None:
    with quick_server() as server:
        server.route("/all", Reply(200, b"{}"))
        url = f"json://{server.base.removeprefix('http://')}/all"
        db = f"sqlite:///{tmp_path / 'd.db'}"
        proc = monitor("replay", "seeds", "--db", db, "--format", "jsonl", "--notify", url)
        bodies = [json.loads(r.body)["message"] for r in server.requests if r.method == "POST"]
    assert proc.returncode == 0, proc.stderr
    raised = [json.loads(line)["id"] for line in proc.stdout.splitlines()]
    received = [m[0] for body in bodies for m in FOOTER.findall(body)]
    assert raised and sorted(received) == sorted(raised)


def test_daemon_with_notify_url_delivers_to_it(tmp_path: Path) -> None:
    with quick_server(SEEDS) as server:
        server.route("/extra", Reply(200, b"{}"))
        base = server.base
        feeds = "".join(
            f'[[feeds]]\nname = "{n}"\nurl = "{base}/feeds/{n}.xml"\ninterval = "1h"\n'
            for n in ("ap", "rferl", "levant-wire")
        )
        config = tmp_path / "m.toml"
        config.write_text(
            f'db = "sqlite:///{tmp_path / "d.db"}"\nrules_dir = "{ROOT / "rules"}"\n'
            f'deliver_interval = "200ms"\n{feeds}'
        )
        extra = f"json://{base.removeprefix('http://')}/extra"
        daemon = subprocess.Popen(
            [*MONITOR, "run", "--config", str(config), "--notify", extra],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        received: list[str] = []
        while time.monotonic() < deadline and len(received) < 4:
            time.sleep(0.3)
            bodies = [r.body for r in server.requests if r.method == "POST" and r.path == "/extra"]
            received = [m[0] for b in bodies for m in FOOTER.findall(json.loads(b)["message"])]
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert len(received) >= 4 and len(set(received)) == len(received), err
