"""Schema migrations and schema versions: old databases and old payloads keep working.

``tests/fixtures/v1_log.sqlite`` and ``v1_log.jsonl`` were written by the first release (event
schema v1, no Alembic): see tests/fixtures/README.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from monitor.events import (
    SCHEMA_VERSIONS,
    UPCASTERS,
    ArticleFailed,
    parse_event_data,
    upcast,
)
from monitor.store import migrate
from monitor.store.db import StoreError, make_engine
from monitor.store.log import EventStore
from monitor.store.projections import all_projections, dump_state, rebuild
from monitor.store.transfer import import_jsonl
from tests.conftest import ROOT
from tests.support.cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures"


def schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    store = EventStore(db_url)
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert schema_diff(db_url) == []
    assert store.head() == 0
    store.close()


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    assert migrate.downgrade(engine, "base") is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(engine) == migrate.head_revision()
    engine.dispose()
    assert schema_diff(db_url) == []


@pytest.mark.postgres
def test_positions_are_64_bit_on_postgresql(postgres) -> None:  # type: ignore[no-untyped-def]
    url = postgres.new_database()
    store = EventStore(url)
    with store.engine.connect() as conn:
        kind = conn.execute(
            text(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_name = 'events' AND column_name = 'seq'"
            )
        ).scalar()
    assert kind == "bigint"
    store.close()


def test_db_upgrade_command_migrates_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    up = run_cli("db", "upgrade", "--db", url)
    assert up.returncode == 0, up.stderr
    assert f"empty -> {migrate.head_revision()}" in up.stderr
    current = run_cli("db", "current", "--db", url)
    assert current.stdout.strip() == migrate.head_revision()


def test_two_processes_migrating_at_once_migrate_once(db_url: str) -> None:
    code = "import sys; from monitor.store.log import EventStore; EventStore(sys.argv[1]).close()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert schema_diff(db_url) == []
    store = EventStore(db_url)
    assert store.head() == 0
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM log_head")).scalar() == 1
    store.close()


def test_a_table_without_a_migration_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import Column, Integer, Table

    extra = Table("not_migrated", SQLModel.metadata, Column("id", Integer, primary_key=True))
    try:
        with pytest.raises(StoreError, match=r"not_migrated.*no migration"):
            EventStore(f"sqlite:///{tmp_path / 'x.db'}")
    finally:
        SQLModel.metadata.remove(extra)


# --- the v1 database and log written by the first release ---------------------------------------


def test_a_pre_migration_v1_database_is_stamped_upgraded_and_read_as_v2(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    shutil.copy(FIXTURES / "v1_log.sqlite", path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    assert "alembic_version" not in inspect(engine).get_table_names()
    engine.dispose()

    store = EventStore(url)  # migrations run on start
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert schema_diff(url) == []
    events = list(store.read())
    assert [e.seq for e in events] == list(range(1, 15))
    failures = [e for e in events if e.type == "ArticleFailed"]
    assert [e.schema_version for e in failures] == [1, 1]  # stored as written...
    assert [(e.data.stage, e.data.retryable) for e in failures] == [
        ("fetch", True),
        ("extract", False),
    ]
    # ...and read as the current model, the only way out of the log.
    assert all(isinstance(e.data, ArticleFailed) for e in failures)

    # The projection state the v1 code computed is what a replay computes today.
    before = dump_state(store, all_projections())
    for projection in all_projections():
        rebuild(store, projection)
    assert dump_state(store, all_projections()) == before
    store.close()


def test_a_v1_jsonl_export_imports_into_both_backends_and_reads_as_v2(db_url: str) -> None:
    store = EventStore(db_url)
    lines = (FIXTURES / "v1_log.jsonl").read_text().splitlines()
    result = import_jsonl(store, lines)
    assert (result.written, result.head) == (14, 14)
    raw = [json.loads(line) for line in lines]
    events = list(store.read())
    assert [e.id for e in events] == [r["id"] for r in raw]
    assert [e.schema_version for e in events] == [r["schema_version"] for r in raw]
    failed = [e.data for e in events if e.type == "ArticleFailed"]
    assert [f.retryable for f in failed] == [True, False]
    # New events after the imported ones are written as v2 and continue the positions.
    new = store.append([_failed_v2()]).events[0]
    assert (new.seq, new.schema_version) == (15, 2)
    store.close()


def _failed_v2():  # type: ignore[no-untyped-def]
    from monitor.store.log import NewEvent

    data = ArticleFailed(article_id="z", url="u", stage="normalize", reason="r", retryable=True)
    return NewEvent(stream="article:z", data=data, idempotency_key="failed:z")


# --- the upcaster registry ----------------------------------------------------------------------


def test_every_old_version_has_an_upcaster_chain() -> None:
    for type_, current in SCHEMA_VERSIONS.items():
        for version in range(1, current):
            assert (type_, version) in UPCASTERS, f"{type_} v{version} cannot be read"
    assert all(version < SCHEMA_VERSIONS[t] for t, version in UPCASTERS)


def test_article_failed_v1_upcasts_to_v2() -> None:
    v1 = {"article_id": "a", "url": "u", "stage": "extract", "reason": "no text"}
    assert upcast("ArticleFailed", 1, v1) == {**v1, "retryable": False, "type": "ArticleFailed"}
    assert parse_event_data("ArticleFailed", 1, {**v1, "stage": "fetch"}).retryable is True
    # A v2 payload is taken as written, even where it disagrees with the v1 rule.
    v2 = {**v1, "retryable": True}
    assert parse_event_data("ArticleFailed", 2, v2).retryable is True


def test_versions_this_program_cannot_read_are_refused() -> None:
    with pytest.raises(ValueError, match="newer than this program"):
        upcast("ArticleFailed", 3, {})
    with pytest.raises(ValueError, match="unknown event type"):
        upcast("Nope", 1, {})
    with pytest.raises(ValueError, match="start at 1"):
        upcast("ArticleFailed", 0, {})


def test_head_revision_matches_alembic() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head_revision() == script.get_current_head()
