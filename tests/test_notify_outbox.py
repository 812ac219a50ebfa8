"""The outbox worker: grouping, rate limits, leases, fencing and concurrent workers, on SQLite
and PostgreSQL; its schema migration; an outbox restored after the log moves databases."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.config import ChannelConfig
from monitor.notify.channels import Channel, build_channels
from monitor.notify.outbox import Deliverer, RetryPolicy, worker_identity
from monitor.store.log import EventStore
from monitor.store.tables import OutboxRow
from tests.support.httpserver import Reply, TestServer
from tests.support.notify_helpers import (
    FAST,
    FOOTER,
    T0,
    Clock,
    attempts_of,
    host_of,
    make_alert,
    posts,
    queue,
    rows,
)

# --- grouping and rate limits ---------------------------------------------------------------


def test_group_wait_and_interval_send_one_message_per_window(db_url: str, web: TestServer) -> None:
    web.route("/g", Reply(200, b"{}"))
    clock = Clock()
    channel = Channel(
        name="g",
        url=f"json://{host_of(web)}/g",
        tags=["all"],
        group_wait=timedelta(seconds=30),
        group_interval=timedelta(minutes=5),
    )
    store = EventStore(db_url)
    deliverer = Deliverer(store, [channel], FAST, clock=clock)
    first = [make_alert(n) for n in (1, 2, 3)]
    for alert in first:
        queue(store, alert, ["g"], at=T0)
    assert deliverer.run_once() == 0  # waiting for company
    clock.advance(10)
    late = make_alert(4)
    queue(store, late, ["g"], at=clock.now)
    assert deliverer.run_once() == 0
    clock.advance(21)  # 31 s after the first alert
    assert deliverer.run_once() == 1
    (message,) = posts(web)
    body = json.loads(message.body)["message"]
    ids = [a.alert_id for a in [*first, late]]
    assert "4 alerts" in body
    for alert in [*first, late]:
        assert f"alert {alert.alert_id} · attempt 1" in body
        assert alert.evidence[0].quote in body and alert.evidence[0].url in body
    events = attempts_of(store)
    assert sorted(e.alert_id for e in events) == sorted(ids)
    assert len({e.message_id for e in events}) == 1
    assert all(sorted(e.group) == sorted(ids) for e in events)

    clock.advance(60)
    fifth = make_alert(5)
    queue(store, fifth, ["g"], at=clock.now)
    clock.advance(31)  # group_wait over, but group_interval (5 min since the last message) not
    assert deliverer.run_once() == 0
    clock.advance(5 * 60)
    assert deliverer.run_once() == 1
    assert len(posts(web)) == 2
    last = json.loads(posts(web)[-1].body)
    assert last["title"] == f"[CRITICAL] {fifth.title}"  # a group of one reads as one alert
    assert attempts_of(store)[-1].group == []
    store.close()


def test_a_flush_at_shutdown_sends_the_waiting_group_but_keeps_retry_backoff(
    tmp_path: Path, web: TestServer
) -> None:
    calls = {"n": 0}

    def flaky_once(_req: object) -> Reply:
        calls["n"] += 1
        return Reply(500 if calls["n"] == 1 else 200, b"{}")

    web.route("/fl", flaky_once)
    clock = Clock()
    slow = RetryPolicy(base=timedelta(minutes=5), cap=timedelta(minutes=5))
    channel = Channel(
        name="fl", url=f"json://{host_of(web)}/fl", tags=["all"], group_wait=timedelta(minutes=1)
    )
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    deliverer = Deliverer(store, [channel], slow, clock=clock)
    queue(store, make_alert(1), ["fl"], at=T0)
    clock.advance(61)
    assert deliverer.run_once() == 1  # the first group fails: backoff of minutes
    queue(store, make_alert(2), ["fl"], at=clock.now)
    assert deliverer.run_once() == 0  # alert 2 waits for its group window
    assert deliverer.run_once(flush=True) == 1  # shutdown: it goes now, alone
    assert json.loads(posts(web)[-1].body)["title"].endswith(make_alert(2).title)
    assert {r.alert_id[-1]: r.status for r in rows(store)} == {"1": "pending", "2": "delivered"}
    store.close()


def test_rate_limit_defers_without_failing(tmp_path: Path, web: TestServer) -> None:
    web.route("/r", Reply(200, b"{}"))
    clock = Clock()
    config = ChannelConfig(name="r", url=f"json://{host_of(web)}/r", rate_limit="2/1m")
    (channel,), _ = build_channels([config])
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    deliverer = Deliverer(store, [channel], FAST, clock=clock)
    for n in (1, 2, 3):
        queue(store, make_alert(n), ["r"], at=T0)
    assert deliverer.run_once() == 2
    clock.advance(59)
    assert deliverer.run_once() == 0
    clock.advance(1)
    assert deliverer.run_once() == 1
    assert len(posts(web)) == 3
    assert [a.outcome for a in attempts_of(store)] == ["delivered"] * 3
    assert all(r.attempts == 1 for r in rows(store))


# --- leases, fencing, concurrency -----------------------------------------------------------


def test_overtaken_worker_cannot_record_over_a_newer_claim(db_url: str, web: TestServer) -> None:
    web.route("/x", Reply(200, b"{}"))
    channel = Channel(name="x", url=f"json://{host_of(web)}/x", tags=["all"])
    clock = Clock()
    policy = RetryPolicy(lease=timedelta(seconds=30), max_age=timedelta(hours=1))
    store = EventStore(db_url)
    slow = Deliverer(store, [channel], policy, clock=clock)
    fast = Deliverer(store, [channel], policy, clock=clock)
    queue(store, make_alert(), ["x"], at=T0)
    unit, _ = slow._claim_next(set())  # claims, then stalls past its lease
    assert unit is not None and unit.rows[0].attempt == 1
    assert fast.run_once() == 0  # the lease holds
    clock.advance(31)
    assert fast.run_once() == 1  # the lease expired: a newer claim (attempt 2) delivers
    slow._deliver(unit)  # the stalled worker wakes up and sends, then tries to record
    (row,) = rows(store)
    assert row.status == "delivered" and row.attempts == 2 and row.lease_owner is None
    events = [(a.attempt, a.outcome, a.superseded) for a in attempts_of(store)]
    assert events == [(2, "delivered", False), (1, "delivered", True)]
    store.close()


def test_leases_of_a_dead_local_worker_are_released_at_once(tmp_path: Path, web: TestServer):
    web.route("/x", Reply(200, b"{}"))
    channel = Channel(name="x", url=f"json://{host_of(web)}/x", tags=["all"])
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    queue(store, make_alert(1), ["x"])
    queue(store, make_alert(2), ["x"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host, pidns, _pid, _ = worker_identity().split("|")
    far = datetime.now(UTC) + timedelta(hours=1)
    with store.transaction() as session:
        r1, r2 = session.execute(select(OutboxRow).order_by(OutboxRow.id)).scalars()
        r1.lease_owner, r1.lease_until, r1.attempts = (
            f"{host}|{pidns}|{dead.stdout.strip()}|x",
            far,
            1,
        )
        r2.lease_owner, r2.lease_until, r2.attempts = f"{host}|{pidns}|1|y", far, 1  # alive (init)
    deliverer = Deliverer(store, [channel], FAST)
    assert deliverer.run_once() == 1
    statuses = [(r.alert_id[-1], r.status, r.attempts) for r in rows(store)]
    assert statuses == [("1", "delivered", 2), ("2", "pending", 1)]


def test_concurrent_workers_deliver_each_alert_exactly_once(db_url: str, web: TestServer) -> None:
    web.route("/c", Reply(200, b"{}"))
    channel = Channel(name="c", url=f"json://{host_of(web)}/c", tags=["all"])
    store = EventStore(db_url)
    alerts = [make_alert(n) for n in range(1, 41)]
    for alert in alerts:
        queue(store, alert, ["c"])
    workers = [Deliverer(store, [channel], FAST) for _ in range(4)]
    errors: list[BaseException] = []

    def work(deliverer: Deliverer) -> None:
        try:
            while deliverer.run_once(limit=3):
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    seen = Counter(m[0] for p in posts(web) for m in FOOTER.findall(json.loads(p.body)["message"]))
    assert seen == Counter({a.alert_id: 1 for a in alerts})  # every alert, none twice
    assert all(r.status == "delivered" and r.attempts == 1 for r in rows(store))
    store.close()


def test_migration_adds_outbox_columns_to_an_existing_database(tmp_path: Path) -> None:
    from monitor.store import migrate
    from monitor.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (alert_id, channel, status, attempts, next_attempt_at, created_at)"
            " VALUES ('a', 'c', 'pending', 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
        )
    engine.dispose()
    store = EventStore(url)
    (row,) = rows(store)
    assert row.kind == "alert" and row.sent_at is None and row.ref is None


def test_a_log_moved_to_another_database_still_delivers_what_was_pending(
    tmp_path: Path, db_url: str
) -> None:
    """`events import` brings no outbox: it is restored from the log, so nothing is lost and
    nothing already delivered is sent again."""
    import io

    from monitor.notify.admin import restore_outbox
    from monitor.store.transfer import export_jsonl, import_jsonl

    with TestServer() as server:
        server.route("/hook", Reply(200, b"{}"))
        host = server.base.removeprefix("http://")
        hook = Channel(name="hook", url=f"json://{host}/hook", tags=["all"])
        old = EventStore(f"sqlite:///{tmp_path / 'old.db'}")
        sent, waiting = make_alert(1, channels=["hook"]), make_alert(2, channels=["hook"])
        queue(old, sent, ["hook"])
        assert Deliverer(old, [hook], FAST).run_once() == 1
        queue(old, waiting, ["hook"])  # raised, not yet delivered, when the log is exported
        dump = io.StringIO()
        export_jsonl(old, dump)
        new = EventStore(db_url)
        import_jsonl(new, io.StringIO(dump.getvalue()))
        assert restore_outbox(new) == 2
        assert restore_outbox(new) == 0  # idempotent
        assert {r.alert_id: r.status for r in rows(new)} == {
            sent.alert_id: "delivered",
            waiting.alert_id: "pending",
        }
        Deliverer(new, [hook], FAST).run_once()
        posts = [r.body.decode() for r in server.requests if r.method == "POST"]
    assert len(posts) == 2  # one from the old database, one from the new
    assert waiting.alert_id in posts[1] and sent.alert_id not in posts[1]
