"""A database that cannot be used stops `replay`, `status` and `run` at start-up with one line
that names the database and the cause, exit status 2, no traceback: a file that is not SQLite,
a directory the user cannot write, a full disk (a real tmpfs, filled)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.store.log import EventStore
from tests.conftest import ROOT, SEEDS

ARTICLE = str(SEEDS / "000_81398aff7cddd8a7.txt")
COMMANDS = {
    "replay": ["replay", ARTICLE],
    "status": ["status"],
    "run": ["run"],
}


def monitor(args: list[str], *, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_HTTP_LISTEN"] = ""  # `run` must not reach its health endpoint anyway
    return subprocess.run(
        [*prefix, sys.executable, "-m", "monitor.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("monitor: ")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_file_that_is_not_sqlite(tmp_path: Path, command: str) -> None:
    db = tmp_path / "notes.db"
    db.write_text("shopping list: eggs, flour\n")
    result = monitor([*COMMANDS[command], "--db", f"sqlite:///{db}"])
    assert_one_line(result, str(db), "not an SQLite database")
    assert db.read_text() == "shopping list: eggs, flour\n"


def without_root_override() -> list[str]:
    """Root writes anywhere: run as root without the capabilities that bypass permissions."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only directory is writable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_directory_the_user_cannot_write(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    db = folder / "monitor.db"
    EventStore(f"sqlite:///{db}").close()  # the log exists; its directory became read-only
    folder.chmod(0o555)
    try:
        result = monitor(
            [*COMMANDS[command], "--db", f"sqlite:///{db}"], prefix=without_root_override()
        )
    finally:
        folder.chmod(0o755)
    assert_one_line(result, str(db), f"directory {folder} is not writable")
    assert [p.name for p in folder.iterdir()] == ["monitor.db"]


@pytest.fixture
def full_disk(tmp_path: Path) -> list[str]:
    """A command prefix that runs in a private mount namespace where /mnt is a 1 MiB tmpfs
    holding a fresh log, filled up to the last byte."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare to mount a tmpfs")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    EventStore(f"sqlite:///{tmp_path / 'fresh.db'}").close()
    script = (
        f"mount -t tmpfs -o size=1m tmpfs /mnt && cp {tmp_path / 'fresh.db'} /mnt/monitor.db"
        ' && { dd if=/dev/zero of=/mnt/fill bs=1k 2>/dev/null; true; } && exec "$@"'
    )
    return ["unshare", "-m", "sh", "-c", script, "-"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_full_disk(full_disk: list[str], command: str) -> None:
    result = monitor([*COMMANDS[command], "--db", "sqlite:////mnt/monitor.db"], prefix=full_disk)
    assert_one_line(result, "/mnt/monitor.db", "the disk is full")
