"""What the commands print for people: feed text shown as it is (never read as console
markup), tables that fit an 80-column terminal."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from monitor.cli import main
from tests.conftest import ROOT, RULES

HOSTILE_ARTICLE = """\
Turkey [/] pledges [bold]support[/bold] to Azerbaijan

Meanwhile, Turkey [/] stressed that it will continue to provide various types of support to \
Azerbaijan [link=https://evil.example]here[/link] :warning:.
"""


def quoting_rules(tmp_path: Path) -> Path:
    """The shipped rules, with the third-party title quoting the article's sentence."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / "alerts" / "third-party.yaml"
    text, count = re.subn(r"(?m)^title: .*$", 'title: "{{ watch }}: {{ quote }}"', path.read_text())
    assert count == 1
    path.write_text(text)
    return rules


def test_replay_and_alerts_list_print_markup_like_titles_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    article = tmp_path / "article.txt"
    article.write_text(HOSTILE_ARTICLE)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    rules = quoting_rules(tmp_path)
    assert main(["replay", str(article), "--db", db, "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "Turkey [/] stressed" in out
    assert "[link=https://evil.example]here[/link] :warning:" in out
    assert main(["alerts", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "[/]" in listed and "[bold]" not in listed.replace("[/]", "")  # title cut, not parsed


# --- commands that behave as they read ---------------------------------------------------------


@pytest.fixture
def seeded(replayed_seeds_file: Path) -> str:
    """The session's database holding the seed feeds' log and alerts: these commands only
    read it (test_cli_database shows that readers write nothing)."""
    return f"sqlite:///{replayed_seeds_file}"


def test_tables_fit_80_columns_and_alerts_list_shows_when(
    seeded: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("MONITOR_HTTP_LISTEN", "")
    capsys.readouterr()
    for command in (["alerts", "list"], ["status"]):
        assert main([*command, "--db", seeded]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 80, out
    assert main(["alerts", "list", "--db", seeded]) == 0
    out = capsys.readouterr().out
    assert "raised (UTC)" in out and re.search(r"\b\d\d-\d\d \d\d:\d\d", out)


def test_events_show_by_sequence_number_or_id_prefix_prints_the_whole_event(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.store.log import EventStore

    store = EventStore(seeded)
    event = next(store.read(types=["FactReported"]))
    store.close()
    capsys.readouterr()
    assert main(["events", "show", str(event.seq), "--db", seeded]) == 0
    by_seq = capsys.readouterr().out
    assert main(["events", "show", event.id[:8], "--db", seeded]) == 0
    assert capsys.readouterr().out == by_seq
    assert f"event {event.seq}  FactReported" in by_seq and event.id in by_seq
    assert event.data.fact.quote[:40] in by_seq  # type: ignore[union-attr]
    assert '"article"' in by_seq and '"span"' in by_seq  # the data, whole
    assert main(["events", "show", "nosuchid", "--db", seeded]) == 2
    assert "no event with sequence number or id 'nosuchid'" in capsys.readouterr().err


def test_global_flags_after_the_command_and_since_as_people_write_it(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.alerting.backtest import parse_when

    now = datetime(2024, 5, 8, tzinfo=UTC)
    assert parse_when("7d ago", now) == parse_when("7d", now) == now - timedelta(days=7)
    rules = str(ROOT / "rules")
    args = ["rules", "backtest", "--rules", rules, "--db", seeded, "--since", "7d ago"]
    assert main([*args, "--log-level", "ERROR"]) == 0
    assert "database" not in capsys.readouterr().err  # INFO lines are off: the flag took
    with pytest.raises(SystemExit):
        main(["rules", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--against OLD_RULES_DIR" in help_text and "the OLD side" in help_text
    assert "the NEW side" in help_text


def test_silenced_alerts_are_listed_with_their_silence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.events import AlertSuppressed
    from monitor.store.log import EventStore, NewEvent

    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = EventStore(url)
    reason = "silenced by silence 9f1c [rule=ceasefire-collapse] until 2030-01-01T00:00:00+00:00"
    quiet = AlertSuppressed(
        rule="ceasefire-collapse",
        dedup_key="ceasefire-collapse:w:RUS",
        reason=reason,
        trigger_event_id="e1",
        kind="silence",
        alert_id="7a1d9c2e-0000-4000-8000-000000000001",
        title="w: ceasefire brokered by Russia collapsed",
    )
    store.append([NewEvent(stream="rule:ceasefire-collapse", data=quiet)])
    store.close()
    rules = ["--rules", str(ROOT / "rules")]
    assert main(["alerts", "list", "--db", url, *rules, "--format", "jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["state"] == "silenced" and row["alert_id"] == quiet.alert_id
    assert row["silence"].startswith("silence 9f1c [rule=ceasefire-collapse]")
    assert row["severity"] == "critical"  # from the rule, since the alert was never raised
    assert main(["alerts", "list", "--db", url, *rules]) == 0
    assert "silenced by 9f1c" in capsys.readouterr().out


def test_silence_add_shows_its_default_and_warns_on_a_matcher_no_rule_can_meet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.store.log import EventStore

    monkeypatch.setenv("MONITOR_RULES_DIR", str(ROOT / "rules"))
    url = f"sqlite:///{tmp_path / 'm.db'}"
    EventStore(url).close()
    with pytest.raises(SystemExit):
        main(["silence", "--help"])
    assert "default: 2h" in capsys.readouterr().out
    assert main(["silence", "add", "--match", "rule=casualty-jmup", "--db", url]) == 0
    err = capsys.readouterr().err
    assert "warning: no rule in" in err and "rule=casualty-jmup" in err
    assert main(["silence", "add", "--match", "rule=casualty-jump", "--db", url]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["silence", "add", "--match", "severity=critical", "--db", url]) == 0
    assert "warning" not in capsys.readouterr().err


def test_watch_and_template_mistakes_are_reported_once_with_their_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "watches" / "sudan.yaml").write_text(
        "id: sudan\nname: Sudan\nparties:\n  SAF: {name: Sudanese Armed Forces}\n"
        "  RSF: {nam: Rapid Support Forces}\n"
    )
    path = rules / "alerts" / "third-party.yaml"
    path.write_text(
        re.sub(r"(?m)^title: .*$", 'title: "{{ wacth }}: {{ actor | name }}"', path.read_text())
    )
    assert main(["rules", "check", str(rules)]) == 1
    err = capsys.readouterr().err
    watch = rules / "watches" / "sudan.yaml"
    assert f"{watch}:5:9: parties.RSF.nam: unknown key; did you mean 'name'?" in err
    assert f"{watch}:5:8: parties.RSF.name: Field required" in err
    assert (
        f"{path}:13:8: title: template uses 'wacth', which is not defined; did you mean 'watch'?"
        in err
    )
    assert "pydantic" not in err and "input_value" not in err
    assert err.count("parties.RSF.nam:") == 1
    article = tmp_path / "a.txt"
    article.write_text("Nothing to see.\n")
    assert main(["replay", str(article), "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert err.count("parties.RSF.nam:") == 1 and "Traceback" not in err
