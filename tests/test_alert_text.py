"""Alert titles and summaries read as a person writes: actors by the gazetteer's names, the
article's headline, never bare codes like SAU or MINSK."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monitor.alerting.templates import render
from monitor.cli import main
from monitor.extract.gazetteer import display_name, gazetteer
from tests.conftest import SEEDS


def test_codes_have_readable_names() -> None:
    assert display_name("SAU") == "Saudi Arabia"
    assert display_name("ARE") == "the United Arab Emirates"
    assert display_name("MINSK") == "the OSCE Minsk Group"
    assert display_name("USA") == "the United States"  # not a ministry's name
    assert display_name("NKR") is None  # a watch's own party: the gazetteer does not know it
    rendered = render(
        "{{ a | name }}, {{ b | name }}, {{ c | name }}", {"a": "SAU", "b": "NKR", "c": None}
    )
    assert rendered == "Saudi Arabia, NKR,"  # render strips the end


def test_seed_alerts_name_actors_and_cite_the_headline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["replay", str(SEEDS), "--db", db, "--format", "jsonl"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alerts
    codes = {e.code for e in gazetteer().values()}
    for alert in alerts:
        words = set(re.findall(r"\b[A-Z]{2,}\b", alert["title"] + " " + alert["summary"]))
        assert not {w for w in words if w in codes and display_name(w) != w} - {"OSCE"}, alert
    titles = {a["title"] for a in alerts}
    assert "nagorno-karabakh: the OSCE Minsk Group involved (mediation, reported)" in titles
    assert "nagorno-karabakh: Turkey involved (political, confirmed)" in titles
    third = [a for a in alerts if a["rule"] == "new-third-party"]
    assert all(re.search(r' in "[A-Z][^"]{10,}"\.$', a["summary"]) for a in third)
