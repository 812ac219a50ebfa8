"""Delivery worker processes for the crash tests: each opens the store and runs the real Deliverer.

    python -m tests.support.delivery_driver --db URL --channels JSON --drain
        one worker that delivers until nothing is pending, then exits 0 (a clean restart);
    python -m tests.support.delivery_driver --db URL --channels JSON --zygote
        a fork server: every ``spawn`` line on stdin forks a fresh worker process (which opens
        its own store and delivers until killed) and prints its pid; ``wait PID`` reaps that
        worker and prints its wait status. Forking from a process that has already imported
        everything makes a worker start in milliseconds, so a test can SIGKILL many workers at
        random moments of their work without paying Python's start-up each time.

``--channels`` is a JSON list of channel configs (the ``[[channels]]`` table of config.toml).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from datetime import timedelta

from monitor.config import ChannelConfig
from monitor.notify.channels import Channel, build_channels
from monitor.notify.outbox import Deliverer, RetryPolicy
from monitor.store.db import make_engine
from monitor.store.log import EventStore


def work(db: str, channels: list[Channel], lease: float, drain: bool, timeout: float) -> int:
    """The worker: the same Deliverer loop the daemon runs, with quick retries."""
    policy = RetryPolicy(
        base=timedelta(milliseconds=20),
        cap=timedelta(milliseconds=100),
        max_age=timedelta(hours=1),
        lease=timedelta(seconds=lease),
    )
    store = EventStore(db)
    deliverer = Deliverer(store, channels, policy, random.Random())
    deadline = time.monotonic() + timeout
    while True:
        if not deliverer.run_once(limit=5):
            if drain and deliverer.pending() == 0:
                return 0
            if drain and time.monotonic() > deadline:
                return 1
            time.sleep(0.01)


def zygote(args: argparse.Namespace, channels: list[Channel]) -> int:
    """Fork workers on request; the zygote itself opens no database and starts no thread."""
    make_engine(args.db).dispose()  # imports the database driver; connects nowhere
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "spawn":
            pid = os.fork()
            if pid == 0:  # the worker: never returns into this loop
                os._exit(work(args.db, channels, args.lease, False, args.timeout))
            print(pid, flush=True)
        elif command == "wait":
            _pid, status = os.waitpid(int(arg), 0)
            print(status, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--channels", required=True, help="JSON list of channel configs")
    parser.add_argument("--drain", action="store_true", help="exit when nothing is pending")
    parser.add_argument("--zygote", action="store_true", help="fork workers on request")
    parser.add_argument("--lease", type=float, default=5.0, help="lease in seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up draining after")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    configs = [ChannelConfig.model_validate(c) for c in json.loads(args.channels)]
    channels, warnings = build_channels(configs)  # also loads the Apprise plugins, pre-fork
    assert not warnings, warnings
    if args.zygote:
        return zygote(args, channels)
    return work(args.db, channels, args.lease, args.drain, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
