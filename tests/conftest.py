"""Shared fixtures: real databases (SQLite files and a throwaway PostgreSQL), paths to fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.watches import Party, Watch
from tests.pg import PostgresServer, PostgresUnavailable

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
RULES = ROOT / "rules"
SHARED = ROOT.parent / "shared"

# The delivery tests' real receivers (the smtp and web fixtures).
pytest_plugins = ["tests.notify_helpers"]


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
