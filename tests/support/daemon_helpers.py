"""Helpers for tests that run the real daemon in a subprocess: config, notify socket, waiting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT
from tests.support.httpserver import Reply, Request

MONITOR = [sys.executable, "-m", "monitor.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, every: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sdn")  # short: socket paths are limited to 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, msg in list(self.messages) for line in msg.splitlines()]

    def times(self, line: str) -> list[float]:
        return [t for t, msg in list(self.messages) if line in msg.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def conditional_file(path: Path, etag: str) -> Callable[[Request], Reply]:
    """Serve a file with an ETag, answering 304 to a client that sends it back."""

    def handler(req: Request) -> Reply:
        if req.headers.get("If-None-Match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, path.read_bytes(), {"ETag": etag, "Content-Type": "application/rss+xml"})

    return handler


def feed_toml(name: str, url: str, interval: str = "1h", **extra: str) -> str:
    more = "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    return f'[[feeds]]\nname = "{name}"\nurl = "{url}"\ninterval = "{interval}"\n{more}'


def write_config(
    path: Path,
    db: str,
    rules: Path,
    port: int,
    feeds: str,
    extra: str = "",
    channel: str | None = "console://",
) -> Path:
    channels = f'[[channels]]\nname = "console"\nurl = "{channel}"\n' if channel else ""
    path.write_text(
        f'db = "{db}"\nrules_dir = "{rules}"\ndeliver_interval = "1s"\n'
        f'http_listen = "127.0.0.1:{port}"\nstop_timeout = "8s"\n{extra}\n{feeds}{channels}'
    )
    return path


def start(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    full = {**os.environ, **(env or {})}
    full.pop("MONITOR_CONFIG", None)
    return subprocess.Popen(
        [*MONITOR, "run", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=full,
    )


def stop(proc: subprocess.Popen, timeout: float = 15) -> tuple[int, float]:
    """SIGTERM, then the exit status and how long the process took to exit."""
    started = time.monotonic()
    proc.terminate()
    code = proc.wait(timeout=timeout)
    return code, time.monotonic() - started
