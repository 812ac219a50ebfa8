"""What the commands print for people: feed text shown as it is (never read as console
markup), tables that fit an 80-column terminal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from monitor.cli import main
from tests.conftest import RULES

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
    text = path.read_text()
    old = re.search(r"^title: .*$", text, re.M)
    assert old is not None
    path.write_text(text.replace(old[0], 'title: "{{ watch }}: {{ quote }}"'))
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
