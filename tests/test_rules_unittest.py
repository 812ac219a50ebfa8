"""`monitor rules test`: the YAML rule tests, including the ones shipped for every rule."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from monitor.alerting.commands import rules_test
from monitor.alerting.rules import RuleError, load_rules
from monitor.alerting.ruletest import run_test_file
from tests.conftest import RULES


def test_shipped_rule_tests_pass_and_cover_every_shipped_rule() -> None:
    tested: set[str] = set()
    for path in sorted((RULES / "tests").glob("*.yaml")):
        for result in run_test_file(path):
            assert result.ok, f"{path}: {result.name}: {result.problems}"
            tested |= {a.rule for a in result.alerts}
    shipped = {r.id for r in load_rules(RULES / "alerts").rules}
    examples = {r.id for r in load_rules(RULES / "examples").rules}
    assert shipped | examples <= tested


TEST = """
rule_files: [rule.yaml]
tests:
  - name: t
    input:
      - {at: 0h, fact: {type: ceasefire, status: collapsed, broker: RUS}}
    expect:
      - {rule: c, data: {broker: %s}}
"""


def setup(tmp_path: Path, broker: str) -> Path:
    (tmp_path / "rule.yaml").write_text("id: c\ntype: match\nevent: ceasefire\n")
    path = tmp_path / "t.yaml"
    path.write_text(TEST % broker)
    return path


def test_a_wrong_expectation_fails_and_says_what_was_raised(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert rules_test([setup(tmp_path, "USA")], out, err) == 1
    text = out.getvalue()
    assert "FAIL" in text and "missing: {'rule': 'c', 'data': {'broker': 'USA'}}" in text
    assert "unexpected: c [firing]" in text and "'broker': 'RUS'" in text
    out = io.StringIO()
    assert rules_test([setup(tmp_path, "RUS")], out, err) == 0
    assert "PASS" in out.getvalue()


def test_expect_none_fails_when_something_fires(tmp_path: Path) -> None:
    (tmp_path / "rule.yaml").write_text("id: c\ntype: match\nevent: ceasefire\n")
    path = tmp_path / "t.yaml"
    path.write_text(
        (TEST % "RUS").replace("expect:\n      - {rule: c, data: {broker: RUS}}", "expect: []")
    )
    [result] = run_test_file(path)
    assert not result.ok and "expected 0 alert(s), got 1" in result.problems[0]


def test_invalid_test_files_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "rule.yaml").write_text("id: c\ntype: match\nevent: ceasefire\n")
    path = tmp_path / "t.yaml"
    path.write_text((TEST % "RUS").replace("{at: 0h,", "{at: 0h, tick: true,"))
    with pytest.raises(RuleError, match=r"t.yaml:6:9: tests.0.input.0: .*exactly one"):
        run_test_file(path)
    path.write_text((TEST % "RUS").replace("status: collapsed", "status: kaput"))
    with pytest.raises(RuleError, match=r"t.yaml:6:\d+: tests.0.input.0.fact"):
        run_test_file(path)
    path.write_text((TEST % "RUS").replace("rule_files: [rule.yaml]", "rule_files: [nope.yaml]"))
    with pytest.raises(RuleError, match=r"nothing matches 'nope\.yaml'"):
        run_test_file(path)
    out, err = io.StringIO(), io.StringIO()
    assert rules_test([path], out, err) == 2
