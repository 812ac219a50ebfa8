"""The long-running service: the poll workers, service jobs, signals, systemd.

Feeds wait in one queue shared by every replica, in the database, ordered by when each is next
due (``monitor.leases``, ``monitor.sources.schedule``): ``poll_workers`` threads claim the
earliest due feed nobody holds as they free up, so a late feed is polled as soon as a worker is
free, never skipped, each due poll is claimed once, and the lease's due time (interval and
jitter, backoff, Retry-After) sets the next poll. Rule evaluation and delivery run in a thread
of their own, paced by ``deliver_interval`` and woken at once by a poll that appended
something (so a poll thread never waits for rules, and the polls that finish during one
evaluation are evaluated together by the next); APScheduler 3 runs the other service jobs:
source health, digests, and the heartbeat that the systemd watchdog ping depends on.

Signals: SIGTERM/SIGINT stop intake, let in-flight polls end once the articles they fetched
are stored, flush the outbox and exit 0 within ``stop_timeout``; SIGHUP reloads the config
file, rules and watches, keeping the running ones when anything new is invalid.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerting.reload import Snapshot, snapshot
from monitor.config import FeedConfig, Settings
from monitor.extract.pool import pool_size
from monitor.health import rules_health
from monitor.leases import Lease, SqliteReplicaLock
from monitor.observability import Endpoints, Metrics, ObservabilityServer
from monitor.runtime import FeedRun, Runtime
from monitor.sources.schedule import Backlog, DueQueue
from monitor.status import status_snapshot
from monitor.store.db import is_sqlite, redact

log = logging.getLogger(__name__)

SERVICE = "default"  # executor for rule evaluation, delivery and health checks
HEARTBEAT = "heartbeat"  # its own thread: a wedged service executor must not look alive
METRICS_EVERY = 5.0  # seconds between reads of the database's numbers for /metrics


def sd_notify(message: str) -> bool:
    """Send one datagram to systemd's NOTIFY_SOCKET, if we run under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec, in seconds, when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Daemon:
    """One replica: its poll queue and workers, its service jobs, its HTTP endpoint."""

    def __init__(
        self,
        settings: Settings,
        *,
        extra_notify: Sequence[str] = (),
        load: Callable[[], Settings] | None = None,
    ) -> None:
        self.load = load
        self.replica_lock = SqliteReplicaLock(settings.db) if is_sqlite(settings.db) else None
        if self.replica_lock is not None:
            self.replica_lock.acquire()  # ReplicaLockError: a second daemon on this SQLite file
        self.metrics = Metrics()
        self.runtime = Runtime(
            settings,
            extra_notify=extra_notify,
            metrics=self.metrics,
            cpu_workers=pool_size(settings.cpu_workers),
        )
        self.cluster_metrics = self.metrics.watch_database(
            self.runtime.store, lambda: self.runtime.settings.feeds
        )
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.news = threading.Event()  # a poll appended events: evaluate and deliver now
        self._rule_files = self._rule_snapshot()  # taken with the rules the runtime loaded
        self.ready = False
        self.abandoned = False  # polls still running when the stop timeout ran out
        self.server: ObservabilityServer | None = None
        self._inflight = 0
        self._idle = threading.Condition()
        self._heartbeat = time.monotonic()
        self._status = ""
        self.delivering = threading.Thread(target=self._deliver_loop, name="deliver", daemon=True)
        self._feeds: tuple[list[FeedConfig], dict[str, FeedConfig]] = ([], {})
        self.queue = DueQueue(self.runtime.leases, self._feeds_by_name)
        self.metrics.watch_queue(self.backlog)
        self.workers = [
            threading.Thread(target=self._work, name=f"poll-{i + 1}", daemon=True)
            for i in range(settings.poll_workers)
        ]
        self.scheduler = BackgroundScheduler(
            executors={
                SERVICE: ThreadPoolExecutor(max_workers=2),
                HEARTBEAT: ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=UTC,
        )

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def _feeds_by_name(self) -> dict[str, FeedConfig]:
        """The configured feeds by name, built again only when a reload changed them: the
        queue asks at every claim, and a config may hold thousands of feeds."""
        feeds = self.runtime.settings.feeds
        if feeds is not self._feeds[0]:
            self._feeds = (feeds, {f.name: f for f in feeds})
        return self._feeds[1]

    # --- life cycle ------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        settings = self.settings
        self.runtime.leases.ensure(settings.feeds)
        self._start_server()
        self.runtime.extract_pool.start()
        for worker in self.workers:
            worker.start()
        threading.Thread(target=self._refresh_metrics, name="metrics", daemon=True).start()
        self.delivering.start()
        self.scheduler.add_job(
            self._health_job,
            IntervalTrigger(seconds=settings.health_check_interval.total_seconds(), timezone=UTC),
            id="health",
            name="source health",
            executor=SERVICE,
        )
        self.scheduler.add_job(
            self._digest_job,
            IntervalTrigger(seconds=60, timezone=UTC),
            id="digest",
            name="daily digests",
            executor=SERVICE,
            next_run_time=datetime.now(UTC),
        )
        watchdog = watchdog_interval()
        self.scheduler.add_job(
            self._beat,
            IntervalTrigger(seconds=min(watchdog or 5.0, 5.0), timezone=UTC),
            id="heartbeat",
            executor=HEARTBEAT,
        )
        self.scheduler.start()
        self.ready = True
        self.metrics.ready.set(1)
        log.info(
            "monitor running as replica %s on %s: %d feeds, %d watches, %d rules, %d channels",
            self.runtime.replica_id,
            redact(settings.db),
            len(settings.feeds),
            len(self.runtime.watches),
            len(self.runtime.rules.rules),
            len(self.runtime.channels),
        )
        sd_notify(f"READY=1\nSTATUS=polling {len(settings.feeds)} feeds")
        self._loop(watchdog)
        return self._shutdown()

    def _loop(self, watchdog: float | None) -> None:
        tick = min(1.0, watchdog or 1.0)
        next_ping = time.monotonic()
        while not self.stopping.is_set():
            self.stopping.wait(timeout=tick)
            now = time.monotonic()
            if watchdog and now >= next_ping:
                # Only a scheduler whose heartbeat job still runs counts as alive.
                if self.scheduler.running and now - self._heartbeat < 3 * max(watchdog, 5.0):
                    sd_notify("WATCHDOG=1")
                else:
                    log.error("scheduler heartbeat is stale: not pinging the watchdog")
                next_ping = now + watchdog
            if self._rule_files_changed():
                log.info("rule or watch files changed: reloading")
                self.reload_requested.set()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()

    def _rule_snapshot(self) -> tuple[Snapshot, Snapshot]:
        rules_dir = self.settings.rules_dir
        return snapshot(rules_dir / "watches"), snapshot(rules_dir / "alerts")

    def _rule_files_changed(self) -> bool:
        """Hot reload: any edit, addition or removal under rules/watches or rules/alerts."""
        current = self._rule_snapshot()
        changed = current != self._rule_files
        self._rule_files = current
        return changed

    def _shutdown(self) -> int:
        deadline = time.monotonic() + self.settings.stop_timeout.total_seconds()
        sd_notify("STOPPING=1\nSTATUS=stopping: finishing in-flight polls")
        log.info("stopping: no new polls; waiting for the ones in flight")
        self.ready = False
        self.metrics.ready.set(0)
        self.queue.close()
        self.scheduler.shutdown(wait=False)
        flush_reserve = min(3.0, self.settings.stop_timeout.total_seconds() / 3)
        with self._idle:
            self._idle.wait_for(
                lambda: self._inflight == 0, max(0.0, deadline - flush_reserve - time.monotonic())
            )
            self.abandoned = self._inflight > 0
        if self.abandoned:
            log.warning("%d polls still running at the stop deadline: abandoned", self._inflight)
        if self.delivering.is_alive():  # its run in progress ends before the final flush
            self.delivering.join(max(0.0, deadline - flush_reserve - time.monotonic()))
        released = self.runtime.leases.release_all()
        if released:
            log.info("released %d feed leases for other replicas", released)
        try:
            sd_notify("STATUS=stopping: flushing the outbox")
            self.runtime.advance()
            while time.monotonic() < deadline and self.runtime.deliver(flush=True):
                pass
        except Exception:
            log.exception("final outbox flush failed")
        if self.server is not None:
            self.server.stop()
        if not self.abandoned:
            self.runtime.close()
        if self.replica_lock is not None:
            self.replica_lock.release()
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stopping.set()
            self.news.set()  # the deliver thread is not left waiting out its interval

        def hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    # --- configuration -----------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read config, rules and watches; on any error keep the running ones and say why."""
        sd_notify("RELOADING=1\nSTATUS=reloading configuration")
        try:
            settings = self.load() if self.load else self.settings
            restart = self.runtime.reload(settings)
        except Exception as exc:  # config, rules, watches, channels: all or nothing
            log.error("reload failed, keeping the running configuration and rules:\n%s", exc)
            sd_notify("READY=1\nSTATUS=reload failed; running on the previous configuration")
            return False
        logging.getLogger().setLevel(self.settings.log_level.upper())
        self.queue.wake()  # new feeds are due at once
        if restart:
            log.warning("changed settings take effect after a restart: %s", ", ".join(restart))
        log.info(
            "reloaded: %d feeds, %d watches, %d rules, %d channels",
            len(self.settings.feeds),
            len(self.runtime.watches),
            len(self.runtime.rules.rules),
            len(self.runtime.channels),
        )
        sd_notify(f"READY=1\nSTATUS=polling {len(self.settings.feeds)} feeds (reloaded)")
        return True

    def backlog(self) -> Backlog:
        return self.queue.backlog()

    # --- jobs --------------------------------------------------------------------------------

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _work(self) -> None:
        """One poll worker: the next due feed claimed from the shared queue, then polled."""
        while not self.stopping.is_set():
            taken = self.queue.take(timeout=1.0)
            if taken is None:
                continue
            feed, lease = taken
            self._poll_job(feed, lease)

    def _poll_job(self, feed: FeedConfig, lease: Lease) -> FeedRun | None:
        try:
            with self._in_flight():
                if self.stopping.is_set():
                    self.runtime.leases.release(lease)  # still due: for whoever runs next
                    return None
                run = self.runtime.run_feed(feed, lease=lease, stopping=self.stopping.is_set)
                if run is None:  # not with a lease given; the type allows it
                    return None
                self._report(run)
                if any(r.new_events for r in run.results):
                    self.news.set()
                return run
        except Exception:  # one bad poll must never take the daemon down
            log.exception("poll of %s failed", feed.name)
            return None

    def _report(self, run: FeedRun) -> None:
        o = run.outcome
        if not o.ok:
            what = f"failed ({o.error_kind})"
        elif o.not_modified:
            what = "not modified"
        else:
            extracted = sum(1 for r in run.results if r.status == "extracted")
            what = f"{o.items} items, {o.new_items} new, {extracted} extracted"
        quiet = o.ok and not o.new_items  # an unchanged feed every few minutes is not news
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "polled %s: %s%s",
            run.feed,
            what,
            "" if run.recorded else " (lease lost)",
        )
        status = f"STATUS=last poll {run.feed} at {datetime.now(UTC):%H:%M:%S}Z: {what}"
        if status != self._status:
            self._status = status
            sd_notify(status)

    def _deliver_loop(self) -> None:
        """Rule evaluation and delivery, ``deliver_interval`` after the previous run ended, or
        as soon as a poll brings news: a run that takes longer under load delays the next one,
        it is not skipped with a warning as an interval job would be; and news that comes
        during a run is evaluated by the next, with whatever else came meanwhile."""
        while not self.stopping.is_set():
            self.news.clear()
            self._deliver_job()
            self.news.wait(self.settings.deliver_interval.total_seconds())

    def _deliver_job(self) -> None:
        try:
            for alert in self.runtime.advance(now=datetime.now(UTC)):
                log.info("alert raised: %s [%s]", alert.title, alert.rule)
            self.runtime.deliver()
        except Exception:
            log.exception("rule evaluation or delivery failed")

    def _health_job(self) -> None:
        try:
            self.runtime.check_health()
        except Exception:
            log.exception("source health check failed")

    def _digest_job(self) -> None:
        try:
            self.runtime.send_digests()
        except Exception:
            log.exception("daily digest failed")

    def _refresh_metrics(self) -> None:
        """The database's numbers for /metrics, read here every few seconds so that a scrape
        only copies them (fast at any number of feeds)."""
        while not self.stopping.is_set():
            self.cluster_metrics.refresh()
            try:
                self.queue.refresh_backlog()
            except Exception:
                log.exception("reading the poll queue's backlog failed")
            self.stopping.wait(METRICS_EVERY)

    def _beat(self) -> None:
        self._heartbeat = time.monotonic()

    # --- HTTP endpoint -----------------------------------------------------------------------

    def _start_server(self) -> None:
        listen = self.settings.http_listen
        if not listen:
            return
        web = None
        if self.settings.web.enabled:
            from monitor.web.app import WebUI

            web = WebUI(
                self.runtime.store,
                lambda: self.runtime.settings.feeds,
                lambda: {w.id: w.name for w in self.runtime.watches},
                token=self.settings.web.token,
            )
        endpoints = Endpoints(self.metrics, self.health, self.request_poll, web)
        try:
            self.server = ObservabilityServer(listen, endpoints).start()
        except (OSError, ValueError) as exc:
            # Health and metrics are not worth refusing to poll over; say so loudly.
            log.error("cannot serve /healthz and /metrics on %s: %s", listen, exc)
            return
        pages = " and the dashboard" if web else ""
        log.info("serving /healthz, /metrics%s on http://%s", pages, self.server.address)

    def health(self) -> tuple[bool, dict[str, Any]]:
        payload: dict[str, Any] = {
            "replica": self.runtime.replica_id,
            "ready": self.ready and not self.stopping.is_set(),
        }
        try:
            snap = status_snapshot(self.runtime.store, self.settings.feeds)
        except Exception as exc:
            payload.update(ready=False, database=f"error: {type(exc).__name__}")
            return False, payload
        payload.update(
            database="ok",
            lag=snap["lag"],
            max_lag=max(snap["lag"].values(), default=0),
            last_poll=snap["last_poll"],
            outbox_pending=snap["outbox_pending"],
            feeds={
                f["feed"]: {
                    k: f[k]
                    for k in ("last_poll", "last_success", "consecutive_failures", "last_error")
                }
                for f in snap["feeds"]
            },
        )
        backlog = self.queue.backlog()
        payload["queue"] = {
            "feeds": len(self.settings.feeds),
            "due": backlog.depth,
            "oldest_due_age": round(backlog.oldest_age, 3),
        }
        rules_ok, payload["rules"] = rules_health(self.runtime.store)
        return bool(payload["ready"]) and rules_ok, payload

    def request_poll(self, name: str) -> tuple[int, str]:
        """``monitor poll FEED`` through the daemon: the feed is made due now in the shared
        queue and this replica's next free worker polls it, ahead of feeds merely due. A
        feed being polled (here or on another replica) stays due and is polled again right
        after that poll."""
        if self.stopping.is_set():
            return 503, "stopping"
        if not any(f.name == name for f in self.settings.feeds):
            return 404, f"no feed named {name!r} in the configuration"
        if not self.queue.request(name):
            return 404, f"feed {name!r} is not in the poll queue"
        return 202, f"poll of {name} requested from replica {self.runtime.replica_id}"
