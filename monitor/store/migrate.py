"""Schema migrations through Alembic's API, with a configuration built in code.

The migration scripts ship inside the package (``monitor/store/migrations``), so an installed
``monitor`` can upgrade its database with no ``alembic.ini`` anywhere: ``monitor db upgrade``
and every start of the store call ``upgrade``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from monitor.store.db import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    # Alembic is imported only when a migration runs: a store at head never needs it.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def head_revision() -> str:
    """The newest revision, read from the scripts without importing Alembic (start-up time)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found:
            revisions.add(found.group(1))
        down = _DOWN_REVISION.search(source)
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise StoreError(f"migration scripts must have one head, found {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The schema revision, or None for an empty database (read without Alembic's chatter)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        return versions[0] if len(versions) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; a no-op (one query) when it is already there."""
    before = current_revision(engine)
    if revision == "head" and before == head_revision():
        return before
    from alembic import command

    _run(engine, lambda cfg: command.upgrade(cfg, revision))
    after = current_revision(engine)
    if after != before:
        log.info("database schema upgraded: %s -> %s", before or "empty", after)
    if revision == "head":
        _check_complete(engine)
    return after


def downgrade(engine: Engine, revision: str) -> str | None:
    from alembic import command

    _run(engine, lambda cfg: command.downgrade(cfg, revision))
    return current_revision(engine)


def _run(engine: Engine, action: Callable[[Config], None]) -> None:
    config = alembic_config()
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        action(config)


def _check_complete(engine: Engine) -> None:
    """Fail clearly when tables.py has a table that no migration creates."""
    # Imported here: reading the revision (every read-only command) needs no table class.
    from sqlmodel import SQLModel

    import monitor.store.tables  # noqa: F401  (every table on the metadata)

    present = set(inspect(engine).get_table_names())
    missing = sorted(set(SQLModel.metadata.tables) - present)
    if missing:
        raise StoreError(
            f"tables {', '.join(missing)} are defined in monitor/store/tables.py but no migration "
            "creates them: add one under monitor/store/migrations/versions"
        )
