"""Settings: file, then environment, then flags; paths relative to the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_settings, parse_duration
from tests.conftest import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_seed_feeds() -> None:
    settings = load_settings(ROOT / "config.example.toml")
    assert [f.name for f in settings.feeds] == ["ap", "rferl", "levant-wire"]
    assert all(f.url.startswith("file:///") and Path(f.url[7:]).is_file() for f in settings.feeds)
    assert settings.rules_dir == ROOT / "rules"
    assert settings.db == f"sqlite:///{ROOT / 'var' / 'monitor.db'}"


def test_environment_beats_file_and_flags_beat_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'db = "sqlite:///file.db"\nlog_level = "INFO"\n')
    monkeypatch.setenv("MONITOR_DB", "sqlite:////env.db")
    monkeypatch.setenv("MONITOR_LOG_LEVEL", "DEBUG")
    settings = load_settings(path)
    assert (settings.db, settings.log_level) == ("sqlite:////env.db", "DEBUG")
    assert load_settings(path, db="sqlite:////flag.db").db == "sqlite:////flag.db"


def test_monitor_config_variable_selects_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_CONFIG", str(write(tmp_path, 'log_format = "json"\n')))
    assert load_settings().log_format == "json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db = \n", "monitor.toml"),
        ("unknown_key = 1\n", "unknown_key"),
        ('[[channels]]\nname = "x"\n', "exactly one of url, url_env, url_file"),
        ('[[feeds]]\nname = "f"\nurl = "x.xml"\ninterval = "soon"\n', "not a duration"),
        ('[[feeds]]\nname = "f"\nurl = "x.xml"\ninterval = true\n', r"feeds\[0\]\.interval: not a"),
        (
            '[[feeds]]\nname = "f"\nurl = "x.xml"\ninterval = "0s"\n',
            r"feeds\[0\]\.interval: must be",
        ),
        ("[fetch]\ntotal_timeout = 0\n", "fetch.total_timeout: must be longer than 0"),
        ('[fetch]\nconnect_timeout = "0m"\n', "fetch.connect_timeout: must be longer than 0"),
        ('stop_timeout = "0s"\n', "stop_timeout: must be longer than 0"),
        ('[delivery]\nlease = "0s"\n', "delivery.lease: must be longer than 0"),
        ('http_listen = "localhost"\n', "http_listen: not host:port"),
        ('http_listen = "127.0.0.1:70000"\n', "http_listen: not host:port"),
        ("unknown_key = 1\n", "unknown_key: unknown setting"),
    ],
)
def test_bad_config_names_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


def test_good_listen_addresses_and_zero_waits_are_accepted(tmp_path: Path) -> None:
    for listen in ("127.0.0.1:9311", "[::1]:9311", ":9311", ""):
        assert load_settings(write(tmp_path, f'http_listen = "{listen}"\n')).http_listen == listen
    text = '[[channels]]\nname = "c"\nurl = "json://h"\ngroup_wait = "0s"\n'
    assert load_settings(write(tmp_path, text)).channels[0].group_wait.total_seconds() == 0


def test_a_bad_config_is_one_line_without_pydantic_boilerplate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, '[[feeds]]\nname = "f"\nurl = "x.xml"\ninterval = "0s"\n'))
    assert "\n" not in str(caught.value) and "pydantic" not in str(caught.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml")


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("7d").days == 7
    assert parse_duration(30).total_seconds() == 30
    with pytest.raises(ValueError):
        parse_duration("7 weeks")


def test_delivery_retries_are_settings_that_reach_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.runtime import retry_policy

    path = write(tmp_path, '[delivery]\nretry_base = "1s"\nmax_age = "2h"\n')
    monkeypatch.setenv("MONITOR_DELIVERY__RETRY_CAP", "10m")
    policy = retry_policy(load_settings(path))
    assert (policy.base.total_seconds(), policy.cap.total_seconds()) == (1, 600)
    assert policy.max_age.total_seconds() == 7200 and policy.lease.total_seconds() == 120
