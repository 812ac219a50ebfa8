"""The tuning/validation split of bench/eval_extract.py: fixed, by country and by conflict.

The rule must not drift (figures in the README compare across commits), and each half must
be big enough to mean something. Tests that read ../shared skip when it is absent.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from types import ModuleType

import pytest

from tests.conftest import ROOT, shared_dir


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_extract", ROOT / "bench/eval_extract.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rule_is_fixed(bench: ModuleType) -> None:
    assert [bench.half_of(n) for n in ("Yemen", "Syria", "nk2020")] == ["tuning"] * 3
    assert [bench.half_of(n) for n in ("Ukraine", "Mexico", "India", "rus-ukr")] == [
        "validation"
    ] * 4


def test_acled_halves_are_comparable(bench: ModuleType) -> None:
    path = shared_dir("eval") / "acled-2020-05.csv"
    deaths: Counter[str] = Counter()
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if (row["fatalities"] or "0").strip() not in ("", "0"):
                deaths[bench.half_of(row["country"])] += 1
    assert min(deaths.values()) >= 0.4 * sum(deaths.values())


def test_devset_halves_are_comparable(bench: ModuleType) -> None:
    path = shared_dir("eval") / "devset.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    halves = Counter(bench.half_of(item["conflict"]) for item in items)
    assert min(halves.values()) >= 0.4 * len(items)


def test_devset_report_prints_both_halves(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.eval_devset(shared_dir("eval") / "devset.jsonl", show=0)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "F1" in line)
    assert "tuning" in header and "validation" in header
