"""`monitor extract`: where each fact is (line:column), which pattern read it, and with
--explain, what every pattern did sentence by sentence."""

from __future__ import annotations

import json
from itertools import takewhile
from pathlib import Path

import pytest

from monitor.cli import main

ARTICLE = (
    "\n\nSudan: fighting in Omdurman\n\n"
    "The army said it shot down an RSF drone over Omdurman on Tuesday.\n"
    "At least 12 civilians were killed in the 2023 shelling of the market, and 40 people "
    "were wounded.\n"
)


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "omdurman.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["extract", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_facts_are_placed_by_line_and_column_of_the_file(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, str(article))
    assert code == 0
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    assert heads[0].startswith(f"{article}:5:1 downing ")
    assert heads[0].endswith("[downing.object-after-verb]")
    assert heads[1].startswith(f"{article}:6:1 casualties ") and "count=12" in heads[1]


def test_jsonl_rows_carry_line_column_and_pattern(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, str(article), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["type"], r["line"], r["column"]) for r in rows] == [
        ("downing", 5, 1),
        ("casualties", 6, 1),
        ("casualties", 6, 1),
    ]
    assert all(r["pattern"].startswith(r["type"] + ".") for r in rows)
    text = article.read_text(encoding="utf-8").strip("\n")
    assert all(text[r["span"][0] : r["span"][1]] == r["quote"] for r in rows)


def test_explain_shows_what_fired_and_what_was_vetoed(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, str(article), "--explain")
    lines = out.splitlines()
    at = lines.index(next(line for line in lines if line.startswith(f"{article}:6:1 ")))
    block = [line.split() for line in takewhile(lambda x: x.startswith(" "), lines[at + 1 :])]
    assert ["fired", "casualties.outcome-later", "12"] in block
    assert ["vetoed", "casualties.not-a-count-of-people", "2023"] in block
    assert any(line[:2] == ["=>", "casualties"] and "count=40" in line for line in block)


def test_explain_jsonl_gives_one_object_per_sentence(
    article: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, str(article), "--explain", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in rows] == [5, 6]
    downing = rows[0]
    assert downing["notes"] == [
        {"pattern": "downing.object-after-verb", "verdict": "fired", "detail": "shot down / drone"}
    ]
    assert [f["type"] for f in downing["facts"]] == ["downing"]
    assert {n["verdict"] for n in rows[1]["notes"]} == {"fired", "vetoed"}
