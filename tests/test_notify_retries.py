"""Failed deliveries: backoff, giving up, the health channel's report, manual re-queue."""

from __future__ import annotations

import json
import random
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from monitor.events import DeliveryRequeued
from monitor.notify.admin import RequeueError, delivery_states, requeue
from monitor.notify.channels import Channel
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.store.log import EventStore
from tests.support.httpserver import Reply, TestServer
from tests.support.notify_helpers import (
    T0,
    Clock,
    attempts_of,
    free_port,
    host_of,
    make_alert,
    posts,
    queue,
    rows,
)

# --- retries, backoff, giving up, health reports, manual retry ------------------------------


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=2))
    rng = random.Random(7)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80), (6, 120), (9, 120)]:
        delays = {policy.delay(attempt, rng).total_seconds() for _ in range(50)}
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert len(delays) > 40  # jittered, not a fixed schedule


def test_failed_delivery_waits_for_its_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="monitor.notify.outbox")
    clock = Clock()
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    channel = Channel(name="hook", url=f"json://127.0.0.1:{free_port()}/x", tags=["all"])
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(seconds=10))
    deliverer = Deliverer(store, [channel], policy, clock=clock)
    queue(store, make_alert(), ["hook"], at=T0)
    assert deliverer.run_once() == 1
    due = rows(store)[0].next_attempt_at.replace(tzinfo=UTC)
    assert T0 + timedelta(seconds=5) <= due <= T0 + timedelta(seconds=10)
    (line,) = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    wait = round((due - T0).total_seconds())
    assert line.endswith(f"; next try at {due:%Y-%m-%d %H:%M:%S} UTC (in {wait}s)")
    assert "\n" not in line and "attempt 1" in line
    clock.advance(4.9)
    assert deliverer.run_once() == 0
    clock.now = due
    assert deliverer.run_once() == 1


def test_given_up_is_listed_reported_once_to_health_and_can_be_requeued(
    db_url: str, web: TestServer
) -> None:
    web.route("/health", Reply(200, b"{}"))
    state = {"down": True}
    web.route("/hook", lambda _r: Reply(503 if state["down"] else 200, b"{}"))
    clock = Clock()
    hook = Channel(name="hook", url=f"json://{host_of(web)}/hook", tags=["all"])
    health = Channel(name="ops", url=f"json://{host_of(web)}/health", tags=[], health=True)
    policy = RetryPolicy(
        base=timedelta(seconds=1), cap=timedelta(seconds=1), max_age=timedelta(seconds=60)
    )
    store = EventStore(db_url)
    deliverer = Deliverer(store, [hook, health], policy, clock=clock)
    alert = make_alert()
    queue(store, alert, ["hook"], at=T0)
    assert deliverer.run_once() == 1  # failed, still young
    clock.advance(61)
    assert deliverer.run_once() == 2  # given up; the report goes out in the same run
    assert deliverer.run_once() == 0
    reports = posts(web, "/health")
    assert len(reports) == 1
    report = json.loads(reports[0].body)
    assert "delivery given up: hook" in report["title"] and alert.title in report["title"]
    assert alert.alert_id in report["message"] and "503" in report["message"]
    assert f"monitor alerts retry {alert.alert_id}" in report["message"]

    (state_,) = delivery_states(store)[alert.alert_id]
    assert state_.status == "given_up" and state_.attempts == 2
    assert state_.describe().startswith("hook:GIVEN UP after 2 attempts: ")
    outcomes = [(a.channel, a.outcome, a.reports_on) for a in attempts_of(store)]
    assert outcomes == [
        ("hook", "failed", None),
        ("hook", "given_up", None),
        ("ops", "delivered", "hook"),
    ]

    with pytest.raises(RequeueError, match="no deliveries"):
        requeue(store, "ffffffff")
    state["down"] = False
    requeued = requeue(store, alert.alert_id[:8], now=clock.now)
    assert [(s.channel, s.status) for s in requeued] == [("hook", "pending")]
    assert deliverer.run_once() == 1
    assert len(posts(web, "/hook")) == 3 and len(posts(web, "/health")) == 1
    assert delivery_states(store)[alert.alert_id][0].status == "delivered"
    requeues = [e.data for e in store.read(types=["DeliveryRequeued"])]
    assert requeues == [
        DeliveryRequeued(
            alert_id=alert.alert_id, channel="hook", previous_status="given_up", attempts=2
        )
    ]
    with pytest.raises(RequeueError, match="already delivered"):
        requeue(store, alert.alert_id)
    store.close()


def test_max_age_restarts_after_requeue(tmp_path: Path) -> None:
    clock = Clock()
    store = EventStore(f"sqlite:///{tmp_path / 'db'}")
    channel = Channel(name="hook", url=f"json://127.0.0.1:{free_port()}/x", tags=["all"])
    policy = RetryPolicy(base=timedelta(0), cap=timedelta(0), max_age=timedelta(seconds=30))
    deliverer = Deliverer(store, [channel], policy, clock=clock)
    queue(store, make_alert(), ["hook"], at=T0)
    clock.advance(31)
    deliverer.run_once()
    assert rows(store)[0].status == "given_up"
    requeue(store, make_alert().alert_id, now=clock.now)
    deliverer.run_once()
    assert rows(store)[0].status == "pending"  # a fresh 30 s, not given up at once
