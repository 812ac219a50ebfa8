"""Which database a command opens, and what reading commands never do to it: create it,
migrate it, or leave root's files beside the service's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store import migrate
from monitor.store.db import make_engine
from monitor.store.log import EventStore
from tests.conftest import ROOT

READERS = [
    ["status"],
    ["alerts", "list"],
    ["events", "list"],
    ["events", "show", "1"],
    ["silence", "list"],
    ["rules", "backtest", "--rules", str(ROOT / "rules")],
]
CHANGERS = [["silence", "add", "--match", "rule=casualty-jump"], ["alerts", "retry", "abc"]]


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONITOR_DB", "MONITOR_CONFIG", "MONITOR_HTTP_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITOR_HTTP_LISTEN", "")


def service_config(tmp_path: Path) -> Path:
    """A config that names its database, as the deployed one does."""
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'db = "sqlite:///../state/monitor.db"\nrules_dir = "{ROOT / "rules"}"\n')
    return config


@pytest.mark.parametrize("command", READERS + CHANGERS, ids=" ".join)
def test_commands_on_a_missing_database_create_nothing_and_say_which(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(tmp_path)
    assert main([*command, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    expected = tmp_path / "state" / "monitor.db"
    assert f"database {expected} does not exist (from {config}); nothing was created" in err
    assert not (tmp_path / "state").exists() and not (tmp_path / "etc" / "monitor.db").exists()


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_reading_an_empty_database_says_so_and_writes_nothing(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    assert main([*command, "--db", f"sqlite:///{db}"]) == 0
    assert f"database {db} (from --db) is empty: nothing recorded yet" in capsys.readouterr().err
    assert db.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_reading_an_older_schema_asks_for_an_upgrade_instead_of_migrating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0002")
    engine.dispose()
    assert main(["alerts", "list", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "has schema 0002" in err and "monitor db upgrade" in err
    engine = make_engine(url)
    assert migrate.current_revision(engine) == "0002"
    engine.dispose()


def test_status_names_the_database_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(tmp_path)
    EventStore(f"sqlite:///{tmp_path / 'state' / 'monitor.db'}").close()
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"database {tmp_path / 'state' / 'monitor.db'} (from {config})\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can leave root-owned files behind")
@pytest.mark.parametrize("command", [*READERS, *CHANGERS, ["run"]], ids=" ".join)
def test_root_is_sent_to_the_service_user_and_leaves_no_file_behind(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    EventStore(f"sqlite:///{state / 'monitor.db'}").close()
    for path in (state, state / "monitor.db"):
        os.chown(path, 65534, 65534)
    before = sorted(p.name for p in state.iterdir())
    assert main([*command, "--db", f"sqlite:///{state / 'monitor.db'}"]) == 2
    err = capsys.readouterr().err
    assert "belongs to nobody: run this as that user (sudo -u nobody monitor" in err
    assert sorted(p.name for p in state.iterdir()) == before
    assert {p.stat().st_uid for p in state.iterdir()} == {65534}
