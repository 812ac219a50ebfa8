"""The long-running service: APScheduler 3 jobs, signals, and systemd notifications.

Each feed is one interval job (jitter, one instance at a time, coalesced, immediate first run);
delivery is one more job. SIGTERM and SIGINT stop intake, let running jobs finish, flush the
outbox once more and exit 0; SIGHUP reloads rules and keeps the old ones when the new are bad.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerting.rules import RuleError
from monitor.config import FeedConfig, Settings
from monitor.runtime import Runtime
from monitor.watches import WatchError

log = logging.getLogger(__name__)


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
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Daemon:
    def __init__(self, settings: Settings, *, extra_notify: Sequence[str] = ()) -> None:
        self.settings = settings
        self.runtime = Runtime(settings, extra_notify=extra_notify)
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=UTC,
        )

    def run(self) -> int:
        self._install_signals()
        now = datetime.now(UTC)
        for feed in self.settings.feeds:
            self.scheduler.add_job(
                self._poll_job,
                IntervalTrigger(seconds=feed.interval.total_seconds(), jitter=_jitter(feed)),
                args=[feed],
                id=f"feed:{feed.name}",
                name=f"poll {feed.name}",
                next_run_time=now,
            )
        self.scheduler.add_job(
            self._deliver_job,
            IntervalTrigger(seconds=self.settings.deliver_interval.total_seconds()),
            id="deliver",
            name="deliver outbox",
        )
        self.scheduler.start()
        log.info(
            "monitor running: %d feeds, %d watches, %d rules, %d channels",
            len(self.settings.feeds),
            len(self.runtime.watches),
            len(self.runtime.rules.rules),
            len(self.runtime.channels),
        )
        sd_notify("READY=1\nSTATUS=polling feeds")
        watchdog = watchdog_interval()
        tick = min(1.0, watchdog or 1.0)
        while not self.stopping.is_set():
            self.stopping.wait(timeout=tick)
            if watchdog:
                sd_notify("WATCHDOG=1")
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
        return self._shutdown()

    def _shutdown(self) -> int:
        sd_notify("STOPPING=1\nSTATUS=stopping")
        log.info("stopping: finishing running jobs")
        self.scheduler.shutdown(wait=True)
        try:
            self.runtime.advance()
            while self.runtime.deliver():
                pass
        finally:
            self.runtime.close()
        log.info("stopped")
        return 0

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stopping.set()

        def hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    def _reload(self) -> None:
        try:
            self.runtime.reload_rules()
        except (RuleError, WatchError) as exc:
            log.error("reload failed, keeping the previous rules:\n%s", exc)
            return
        log.info("reloaded %d rules", len(self.runtime.rules.rules))

    def _poll_job(self, feed: FeedConfig) -> None:
        if self.stopping.is_set():
            return
        try:
            alerts = self.runtime.poll_and_ingest(feed)
        except Exception:  # one bad poll must never take the daemon down
            log.exception("poll of %s failed", feed.name)
            return
        for alert in alerts:
            log.info("alert raised: %s [%s]", alert.title, alert.rule)

    def _deliver_job(self) -> None:
        try:
            self.runtime.deliver()
        except Exception:
            log.exception("delivery run failed")


def _jitter(feed: FeedConfig) -> float:
    """Up to a tenth of the interval, so feeds of one host are not polled in lockstep."""
    return max(0.0, feed.interval.total_seconds() / 10)
