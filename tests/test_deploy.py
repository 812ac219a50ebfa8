"""deploy/: the unit passes systemd's own checks; the sysusers and tmpfiles snippets apply."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "monitor.service"
INSTALLED_BINARY = "/opt/monitor/venv/bin/monitor"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


@needs_systemd
def test_unit_exposure_is_1_5_or_better() -> None:
    result = analyze("security", "--offline=true", "--threshold=15", str(UNIT))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    found = re.search(r"Overall exposure level for monitor\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout[-500:]
    assert float(found[1]) <= 1.5


def unit_text() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_is_a_notify_service_with_watchdog_state_and_config_dirs() -> None:
    unit = unit_text()
    assert unit["Type"] == ["notify"] and unit["WatchdogSec"]
    assert unit["StateDirectory"] == ["monitor"] and unit["ConfigurationDirectory"] == ["monitor"]
    assert unit["User"] == ["monitor"]  # created by deploy/monitor.sysusers.conf
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["ExecStart"][0].startswith(INSTALLED_BINARY + " run --config /etc/monitor/")
    # Secrets never in the unit: the environment file holds them.
    assert not any("password" in v.lower() or "@" in v for v in unit.get("Environment", []))


@needs_systemd
def test_unit_verifies_with_its_binary_present(tmp_path: Path) -> None:
    """`systemd-analyze verify` checks ExecStart exists: point it at this venv's `monitor`."""
    binary = Path(sys.executable).parent / "monitor"
    if not binary.exists():
        pytest.skip(f"{binary} is absent (package not installed in this venv)")
    copy = tmp_path / "monitor.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_BINARY, str(binary)))
    result = analyze("verify", str(copy))
    assert result.returncode == 0, result.stderr
    assert "monitor.service" not in result.stderr, result.stderr  # no warnings about it either


@needs_systemd
@pytest.mark.skipif(not Path(INSTALLED_BINARY).exists(), reason=f"{INSTALLED_BINARY} not installed")
def test_installed_unit_verifies() -> None:
    result = analyze("verify", str(UNIT))
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_and_tmpfiles_snippets_apply_to_a_scratch_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    users = subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(DEPLOY / "monitor.sysusers.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert users.returncode == 0, users.stderr
    passwd = (root / "etc" / "passwd").read_text()
    assert re.search(r"^monitor:x:\d+:\d+:.*:/var/lib/monitor:/usr/sbin/nologin$", passwd, re.M)
    dirs = subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(DEPLOY / "monitor.tmpfiles.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dirs.returncode == 0, dirs.stderr
    assert (root / "var" / "lib" / "monitor").stat().st_mode & 0o777 == 0o750
    assert (root / "etc" / "monitor").stat().st_mode & 0o777 == 0o750


def test_environment_example_holds_no_live_secret() -> None:
    for line in (DEPLOY / "monitor.env.example").read_text().splitlines():
        assert not line.strip() or line.startswith("#"), f"uncommented setting: {line}"


def test_the_database_is_named_in_the_config_the_unit_points_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The unit sets no database of its own: the service and `sudo -u monitor monitor ...
    --config /etc/monitor/config.toml` read the database the config names."""
    from monitor.config import load_settings

    unit = unit_text()
    assert not [v for v in unit.get("Environment", []) if v.startswith("MONITOR_DB")]
    assert unit["ExecStart"] == [INSTALLED_BINARY + " run --config /etc/monitor/config.toml"]
    for name in ("MONITOR_DB", "MONITOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(DEPLOY / "config.toml")
    assert settings.db == "sqlite:////var/lib/monitor/monitor.db"
    readme = (DEPLOY / "README.md").read_text()
    assert (
        "sudo -u monitor /opt/monitor/venv/bin/monitor status --config /etc/monitor/config.toml"
        in readme
    )
    assert "install -m 0640 -g monitor deploy/config.toml /etc/monitor/config.toml" in readme
