"""SIGKILL delivery workers at random moments; after a restart every alert is delivered, and any
duplicate comes from the one window the README admits: a worker that died after the provider
accepted the message and before its receipt was stored.

Two real worker processes (``tests/support/delivery_driver.py``, the real ``Deliverer``) deliver
to a real HTTP receiver on 127.0.0.1, through ``json://`` and a grouped ``mmost://`` channel,
while the test keeps queueing alerts as the evaluator would. The receiver is slow and sometimes
answers 500, so kills land before, during and after sends. Every message names each alert id with
the attempt number it was sent under; attempts count claims, so a copy whose attempt has no
``DeliveryAttempted`` event is a copy whose worker died before recording it.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.events import DeliveryAttempted
from monitor.store.log import EventStore
from monitor.store.tables import OutboxRow
from tests.support.httpserver import Reply, Request, TestServer
from tests.support.notify_helpers import make_alert, queue, quick_server

ROOT = Path(__file__).resolve().parent.parent
FOOTER = re.compile(r"alert ([0-9a-f-]{36}) · attempt (\d+)")
TOKEN = "crashTestToken1"
TRIALS = int(os.environ.get("MONITOR_CRASH_TRIALS", "20"))  # SQLite; PostgreSQL runs half
WORKERS = 2


class Receiver:
    """Answers after a short random delay, 500 about one time in ten; keeps accepted copies."""

    def __init__(self, server: TestServer, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.copies: list[tuple[str, str, int, int]] = []  # channel, alert id, attempt, trial
        self.trial = -1
        server.route("/hook", lambda req: self.handle("hook", req, "message"))
        server.route(f"/hooks/{TOKEN}", lambda req: self.handle("chat", req, "text"))

    def handle(self, channel: str, req: Request, field: str) -> Reply:
        with self.lock:
            delay, refuse = self.rng.uniform(0.002, 0.012), self.rng.random() < 0.1
            trial = self.trial  # when the request arrived
            trial = self.trial  # when the request arrived
        time.sleep(delay)
        if refuse:
            return Reply(500, b"{}")
        body = json.loads(req.body)[field]
        with self.lock:
            for alert_id, attempt in FOOTER.findall(body):
                self.copies.append((channel, alert_id, int(attempt), trial))
        return Reply(200, b"{}")


class Workers:
    """The fork server of ``tests/support/delivery_driver.py``: real worker processes on demand."""

    def __init__(self, db_url: str, channels: str, log: Path) -> None:
        self.log = log
        argv = [sys.executable, "-m", "tests.support.delivery_driver", "--db", db_url]
        with log.open("a") as err:
            self.zygote = subprocess.Popen(
                [*argv, "--channels", channels, "--zygote"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.ask("") == "ready", log.read_text()[-2000:]

    def ask(self, command: str) -> str:
        assert self.zygote.stdin is not None and self.zygote.stdout is not None
        if command:
            self.zygote.stdin.write(command + "\n")
            self.zygote.stdin.flush()
        return self.zygote.stdout.readline().strip()

    def spawn(self) -> int:
        return int(self.ask("spawn"))

    def kill(self, pid: int) -> int:
        os.kill(pid, signal.SIGKILL)
        return int(self.ask(f"wait {pid}"))

    def close(self) -> None:
        assert self.zygote.stdin is not None
        self.zygote.stdin.close()
        assert self.zygote.wait(timeout=10) == 0


def drain(db_url: str, channels: str, log: Path) -> None:
    """A clean restart: one worker delivers everything left, then exits."""
    argv = [
        sys.executable,
        "-m",
        "tests.support.delivery_driver",
        "--db",
        db_url,
        "--channels",
        channels,
    ]
    with log.open("a") as err:
        done = subprocess.run([*argv, "--drain"], cwd=ROOT, stderr=err, timeout=120)
    assert done.returncode == 0, log.read_text()[-2000:]


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing_and_duplicate_only_in_the_stated_window(
    db_url: str, tmp_path: Path
) -> None:
    trials = TRIALS if db_url.startswith("sqlite") else max(1, TRIALS // 2)
    seed = int(os.environ.get("MONITOR_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    log = tmp_path / "workers.log"
    store = EventStore(db_url)
    alerts = iter(make_alert(n) for n in range(1, 100_000))
    queued: list[str] = []

    def queue_more(count: int) -> None:
        for _ in range(count):
            alert = next(alerts)
            queue(store, alert, ["hook", "chat"])
            queued.append(alert.alert_id)

    with quick_server() as server:
        receiver = Receiver(server, seed)
        host = server.base.removeprefix("http://")
        channels = json.dumps(
            [
                {"name": "hook", "url": f"json://{host}/hook"},
                {"name": "chat", "url": f"mmost://{host}/{TOKEN}", "group_wait": "50ms"},
            ]
        )
        queue_more(40)
        workers = Workers(db_url, channels, log)
        busy_trials = 0
        trial = 0
        # A trial whose kills all landed before any delivery started proves nothing; on a
        # busy machine that happens, so such trials are topped up rather than failed.
        planned = trials
        window = 0.5  # kills land this many seconds after the workers start, at most
        while trial < planned or busy_trials < planned // 3:
            assert trial < 3 * planned, f"seed={seed}: kills never landed while delivering"
            receiver.trial = trial
            before = len(receiver.copies)
            pids = [workers.spawn() for _ in range(WORKERS)]
            started = time.monotonic()
            queue_more(6)  # the evaluator keeps raising alerts while workers deliver
            for at, pid in sorted((rng.uniform(0.0, window), pid) for pid in pids):
                time.sleep(max(0.0, at - (time.monotonic() - started)))
                status = workers.kill(pid)
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            busy = len(receiver.copies) > before
            busy_trials += busy
            # A busy machine starts workers slowly: kills that all land before the first
            # delivery widen the window for the next trial instead of failing the test.
            window = 0.5 if busy else min(window * 2, 8.0)
            trial += 1
        workers.close()
        trials = trial
        receiver.trial = trials
        drain(db_url, channels, log)

    with store.session() as session:
        rows = list(session.execute(select(OutboxRow)).scalars())
    events: list[DeliveryAttempted] = [
        e.data  # type: ignore[misc]
        for e in store.read(types=["DeliveryAttempted"])
    ]
    store.close()

    # Nothing lost: every queued delivery is delivered, and the receiver has every alert.
    assert len(rows) == 2 * len(queued)
    assert Counter(r.status for r in rows) == Counter({"delivered": len(rows)})
    received = {(c, a) for c, a, _n, _t in receiver.copies}
    assert received == {(c, a) for a in queued for c in ("hook", "chat")}

    # One stored receipt per delivery, naming an attempt the receiver really got.
    recorded = {(e.channel, e.alert_id, e.attempt): e for e in events}
    assert len(recorded) == len(events)  # one event per attempt number
    delivered = Counter((e.channel, e.alert_id) for e in events if e.outcome == "delivered")
    assert set(delivered.values()) == {1}
    assert not [e for e in events if e.superseded]
    copies = Counter((c, a, n) for c, a, n, _t in receiver.copies)
    for e in events:
        if e.outcome == "delivered":
            assert copies[e.channel, e.alert_id, e.attempt] == 1

    # Every other copy is a duplicate from a worker that died before storing its receipt:
    # its attempt has no event at all (not failed, not delivered) and it came from a killed run.
    by_delivery: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for c, a, n, t in receiver.copies:
        by_delivery[c, a].append((n, t))
    duplicates: Counter[str] = Counter()
    for (channel, alert_id), got in by_delivery.items():
        for attempt, trial in got:
            event = recorded.get((channel, alert_id, attempt))
            if event is not None:
                assert event.outcome == "delivered"
                continue
            duplicates[channel] += 1
            assert trial < trials, "the clean final run must record everything it sends"
    assert duplicates.total() == sum(len(g) for g in by_delivery.values()) - len(by_delivery)
    stats = (
        f"seed={seed} trials={trials} kills={trials * WORKERS} busy_trials={busy_trials} "
        f"alerts={len(queued)} deliveries={len(rows)} copies={len(receiver.copies)} "
        f"duplicates(all in window)={dict(duplicates)} attempts_recorded={len(events)} "
        f"attempts_without_event={sum(r.attempts for r in rows) - len(events)}"
    )
    print(stats)
    assert busy_trials >= planned // 3, stats  # the kills did land while work was in flight
