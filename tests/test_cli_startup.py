"""`monitor --help` and argument parsing import no heavy library: each command imports what
it uses. The errors `main` reports are still reported the same way (message, exit status)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.log import EventStore

ROOT = Path(__file__).resolve().parent.parent
HEAVY = [
    "rich",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlmodel",
    "monitor.store.tables",
    "prometheus_client",
    "apprise",
    "trafilatura",
    "httpx",
    "pydantic",
    "monitor.runtime",
    "monitor.alerting.evaluator",
    "monitor.notify.channels",
]


def imported_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after running ``code``."""
    probe = (
        f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_help_and_parsing_import_no_heavy_module() -> None:
    code = (
        "import contextlib, io\n"
        "from monitor.cli import build_parser, main\n"
        "build_parser().parse_args(['rules', 'check', 'rules'])\n"
        "build_parser().parse_args(['replay', 'seeds', '--format', 'jsonl'])\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert imported_after(code) == []


def test_rules_check_imports_neither_settings_nor_database() -> None:
    code = (
        "import contextlib, io\n"
        "from monitor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['rules', 'check', 'rules']) == 0\n"
        "import sys\n"
        "assert 'pydantic_settings' not in sys.modules, 'rules check imported the settings'"
    )
    assert imported_after(code) == ["pydantic"]


def test_status_imports_neither_the_orm_nor_http_client_nor_extractor(tmp_path: Path) -> None:
    """`monitor status` reads the database through SQLAlchemy Core: not SQLModel and the table
    classes, not the daemon's metrics, not httpx, apprise or trafilatura."""
    db = tmp_path / "m.db"
    EventStore(f"sqlite:///{db}").close()  # here: creating the schema imports the ORM
    config = tmp_path / "config.toml"
    config.write_text(
        f'db = "sqlite:///{db}"\nhttp_listen = "127.0.0.1:9"\n'
        '[[feeds]]\nname = "a"\nurl = "http://127.0.0.1:9/feed.xml"\n',
        encoding="utf-8",
    )
    for fmt in ("text", "jsonl"):
        code = (
            "import contextlib, io\n"
            "from monitor.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['status', '--config', {str(config)!r}, '--format', {fmt!r}]) == 0"
        )
        found = imported_after(code)
        assert "sqlalchemy" in found  # the probe sees what status really imported
        heavy = {
            "sqlalchemy.orm",
            "sqlmodel",
            "monitor.store.tables",
            "prometheus_client",
            "httpx",
            "apprise",
            "trafilatura",
            "monitor.runtime",
        }
        assert not heavy & set(found), fmt


def test_log_setup_does_not_import_apprise() -> None:
    code = "from monitor.logs import setup_logging\nsetup_logging('INFO')"
    assert imported_after(code) == []


def test_invalid_watch_is_reported_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = tmp_path / "watch.yaml"
    watch.write_text("id: [unclosed\n", encoding="utf-8")
    article = tmp_path / "a.txt"
    article.write_text("Two drones were shot down on Monday.\n", encoding="utf-8")
    code = main(["extract", str(article), "--watch", str(watch)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("monitor: invalid watches:\n")
    assert "not valid YAML" in err


def test_invalid_rules_are_reported_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    (rules / "alerts").mkdir(parents=True)
    (rules / "alerts" / "bad.yaml").write_text("rules: [unclosed\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'none.db'}"
    code = main(["rules", "backtest", "--rules", str(rules), "--db", db])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("monitor: invalid rules:\n")


def test_missing_database_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["events", "list", "--db", f"sqlite:///{tmp_path / 'absent.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not exist" in err and "nothing was created" in err
