"""Shared fixtures: real databases (SQLite files and a throwaway PostgreSQL), paths to fixtures."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.logs import QUIETENED
from monitor.watches import Party, Watch
from tests.support.pg import PostgresServer, PostgresUnavailable

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
RULES = ROOT / "rules"
SHARED = ROOT.parent / "shared"

# Test servers listen on 127.0.0.1, and their feeds link to pages on it: the test settings let
# links reach that one address (the product default allows no private address at all).
# Subprocesses inherit this; tests of the refusals build their limits without it.
os.environ.setdefault("MONITOR_FETCH__ALLOW_NETWORKS", '["127.0.0.1/32"]')

# The delivery tests' real receivers (the smtp and web fixtures).
pytest_plugins = ["tests.support.notify_helpers"]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Tests that call ``monitor.cli.main`` in-process run its logging set-up, which replaces
    the root handlers (with one on this test's captured stderr) and quietens libraries; the
    next test gets the logging it started with."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in QUIETENED}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI has the binaries: a failure to start is a failure, not a skip
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against both backends: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture(scope="session")
def replayed_seeds_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeds replayed once by `monitor replay`, for tests that only read."""
    from tests.support.cli import run_cli

    path = tmp_path_factory.mktemp("seeds") / "seeds.db"
    done = run_cli("replay", "seeds", "--db", f"sqlite:///{path}")
    assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.fixture
def replayed_seeds(replayed_seeds_file: Path, tmp_path: Path) -> str:
    """A private copy of the replayed seeds' database, as a SQLAlchemy URL."""
    copy = tmp_path / "seeds.db"
    shutil.copyfile(replayed_seeds_file, copy)
    return f"sqlite:///{copy}"


def make_watch(parties: dict[str, list[str]], names: dict[str, str] | None = None) -> Watch:
    """A watch for extraction tests: party codes with their aliases, names default to codes."""
    names = names or {}
    return Watch(
        id="test",
        name="test",
        parties={c: Party(name=names.get(c, c), aliases=a) for c, a in parties.items()},
    )


def shared_dir(*parts: str) -> Path:
    """A folder under ../shared, or skip the test saying it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (shared test material not available)")
    return path
